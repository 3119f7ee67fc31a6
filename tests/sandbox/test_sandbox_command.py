"""``fhir-bridge sandbox``: the development EHR with sample patients, until stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fhir_bridge.sandbox.process import DEV_TOKEN
from fhir_bridge.sandbox.samples import PATIENT_IDS
from tests.support.bridge import free_port

pytestmark = pytest.mark.integration


def _wait_for_line(log: Path, text: str, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        content = log.read_text()
        if text in content:
            return content
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"no {text!r} on the console:\n{log.read_text()[-3000:]}")


def test_sandbox_serves_the_sample_patients_on_loopback_until_stopped(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_BRIDGE_")}
    log = tmp_path / "sandbox.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "fhir_bridge", "sandbox", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}/fhir"
    try:
        console = _wait_for_line(log, "static bearer token", process)
        assert f"sandbox EHR at {base_url} with 3 sample patients" in console
        bundle = httpx.get(
            f"{base_url}/Patient", headers={"Authorization": f"Bearer {DEV_TOKEN}"}, timeout=5
        ).json()
        assert sorted(e["resource"]["id"] for e in bundle["entry"]) == sorted(PATIENT_IDS)
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=30)
    assert exit_code == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base_url}/metadata", timeout=2)


def test_sandbox_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_BRIDGE_")}
        result = subprocess.run(
            [sys.executable, "-m", "fhir_bridge", "sandbox", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode != 0
    assert "FHIR_BRIDGE_SANDBOX_PORT" in result.stderr
    assert "Traceback" not in result.stderr
