"""The README's run command on its embedded default: SQLite, a filesystem broker and the
development outbox, all in one ``fhir-bridge run`` process tree — no external server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from fhir_bridge.sandbox.process import EhrServer
from tests.e2e.fixtures import appointment, patient
from tests.e2e.harness import write_rules
from tests.support.bridge import free_port

pytestmark = pytest.mark.integration


def _wait(condition, timeout: float, what: str, log: Path):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-5000:]}")


def test_run_on_sqlite_and_filesystem_broker_delivers_to_the_outbox(tmp_path: Path) -> None:
    port = free_port()
    with EhrServer() as ehr:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("FHIR_BRIDGE_")},
            "FHIR_BRIDGE_PORT": str(port),
            "FHIR_BRIDGE_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "FHIR_BRIDGE_EHR_BASE_URL": ehr.base_url,
            "FHIR_BRIDGE_EHR_STATIC_TOKEN": ehr.static_token,
            "FHIR_BRIDGE_RULES_FILE": str(write_rules(tmp_path / "rules.yaml", ["PT1H"])),
            "FHIR_BRIDGE_DISPATCH_INTERVAL_SECONDS": "1",
            "FHIR_BRIDGE_RELAY_INTERVAL_SECONDS": "1",
        }
        log = tmp_path / "run.log"
        with open(log, "wb") as out:
            service = subprocess.Popen(
                [sys.executable, "-m", "fhir_bridge", "run"],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait(lambda: _ready(port), 60, "the API", log)
            secret = (tmp_path / "var" / "notification-secret").read_text().strip()
            created = subprocess.run(
                [sys.executable, "-m", "fhir_bridge", "subscriptions", "create"],
                cwd=tmp_path,
                env={**env, "FHIR_BRIDGE_NOTIFICATION_SECRET": secret},
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            assert len(json.loads(created.stdout)) == 3
            person = ehr.create(patient("MRN-3001", "Lena", "Park", "lena.park@example.net"))
            start = datetime.now(UTC) + timedelta(hours=1, seconds=6)
            booked = ehr.create(appointment(person["id"], start))

            outbox = tmp_path / "var" / "outbox" / "email.jsonl"
            _wait(outbox.exists, 90, "a message in the outbox", log)
            records = [json.loads(line) for line in outbox.read_text().splitlines()]
            assert len(records) == 1
            communications = _wait(
                lambda: ehr.search("Communication", subject=f"Patient/{person['id']}").get("entry"),
                60,
                "the Communication",
                log,
            )
            assert communications[0]["resource"]["about"] == [
                {"reference": f"Appointment/{booked['id']}"}
            ]
            assert (tmp_path / "var" / "fhir-bridge.db").exists()
            workers = _children(service.pid)
            assert workers, "run starts a worker process"
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(timeout=30)
        time.sleep(1)
        assert [pid for pid in workers if _alive(pid)] == [], "run left its worker behind"


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(child) for child in found.stdout.split()]


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0]
    except (OSError, IndexError):
        return "zombie"


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
