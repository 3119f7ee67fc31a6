"""fhir-bridge itself as real processes: the API under uvicorn, Celery workers, the CLI."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class BridgeProcesses:
    """Starts and stops fhir-bridge processes sharing one environment."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("FHIR_BRIDGE_")},
            **env,
            "FHIR_BRIDGE_PORT": str(self.port),
            "FHIR_BRIDGE_PUBLIC_BASE_URL": f"http://127.0.0.1:{self.port}",
        }
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}-{len(self._logs)}.log", "wb")  # noqa: SIM115
        self._logs.append(log)
        return subprocess.Popen(
            [sys.executable, "-m", "fhir_bridge", *args],
            env=self.env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "fhir_bridge", *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"fhir-bridge {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result

    def start_api(self) -> None:
        self.api = self._spawn("api", "serve")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.api.poll() is not None:
                raise AssertionError("API exited early:\n" + self.logs())
            try:
                if httpx.get(f"{self.base_url}/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("API did not become ready:\n" + self.logs())

    def start_worker(self, *, beat: bool = True, concurrency: int = 2) -> subprocess.Popen[bytes]:
        args = ["worker", "--concurrency", str(concurrency)]
        if beat:
            args.append("--beat")
        worker = self._spawn("worker", *args)
        self.workers.append(worker)
        return worker

    def start_scheduler(self) -> subprocess.Popen[bytes]:
        """The scheduler as its own role (stopped, and killed, with the workers)."""
        scheduler = self._spawn("scheduler", "scheduler")
        self.workers.append(scheduler)
        return scheduler

    def kill_workers(self) -> None:
        """SIGKILL the whole worker process group (parent and prefork children)."""
        for worker in self.workers:
            if worker.poll() is None:
                _kill_tree(worker.pid, signal.SIGKILL)
                worker.wait(timeout=10)
        self.workers.clear()

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                _kill_tree(worker.pid, signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _kill_tree(worker.pid, signal.SIGKILL)
        if self.api is not None and self.api.poll() is None:
            self.api.terminate()
            try:
                self.api.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.api.kill()
        for log in self._logs:
            log.close()

    def logs(self) -> str:
        chunks = []
        for path in sorted(self.workdir.glob("*.log")):
            chunks.append(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(chunks)

    def all_log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("*.log")))


def _kill_tree(pid: int, sig: signal.Signals) -> None:
    children = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True
    ).stdout.split()
    for child in children:
        _kill_tree(int(child), sig)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
