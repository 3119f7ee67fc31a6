"""A PostgreSQL cluster of a test's own, which the test may stop and start at will.

The machine's shared cluster (port 5432) serves every other test and must never be stopped,
so an outage test runs its own: ``initdb`` in a temporary folder, a free loopback port,
trust authentication, no fsync. ``initdb`` refuses to run as root, so as root (CI) every
PostgreSQL binary runs as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.support.bridge import free_port

DATABASE = "fhir_bridge"


def _bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("pg_ctl")
    if found is None:
        raise AssertionError("PostgreSQL server binaries (pg_ctl, initdb) are not installed")
    return Path(found).parent


class PrivatePostgres:
    """``initdb`` + ``pg_ctl`` on a free port; :meth:`stop` and :meth:`start` make an outage."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="fhir-bridge-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str) -> None:
        command = [*args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise AssertionError(
                f"{Path(args[0]).name} failed ({result.returncode}):\n"
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}\n{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def init(self) -> None:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"),
            "-D", str(self.data),
            "-U", "postgres",
            "-A", "trust",
            "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        self.start()
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')  # type: ignore[arg-type,unused-ignore]

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(self.bin / "pg_ctl"), "start", "-w", "-t", "30",
            "-D", str(self.data), "-l", str(self.log), "-o", options,
        )  # fmt: skip
        self._wait_accepting()

    def _wait_accepting(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(
                    f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                    connect_timeout=2,
                ):
                    return
            except psycopg.OperationalError:
                time.sleep(0.2)
        raise AssertionError("private PostgreSQL did not accept connections\n" + self._log_tail())

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: sessions are disconnected, the port closes."""
        self._run(str(self.bin / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data))

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop()
            except AssertionError:
                self._run(
                    str(self.bin / "pg_ctl"), "stop", "-w", "-m", "immediate", "-D", str(self.data)
                )
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running private cluster with an empty database ``fhir_bridge``; removed afterwards."""
    cluster = PrivatePostgres()
    try:
        cluster.init()
        yield cluster
    finally:
        cluster.destroy()
