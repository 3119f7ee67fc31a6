"""The README's first step: ``fhir-bridge run`` in an empty folder with no settings at all.

With no EHR configured, ``run`` starts the bundled development EHR (the sandbox), points
the service at it, creates the Subscriptions, loads the sample patients, and the first
reminder reaches the development outbox and is written back to the sandbox as a
Communication -- with the shipped rules, quiet hours included. One ``run`` is shared by
the tests of this module (it is started once, observed, then stopped).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_bridge.sandbox.process import DEV_TOKEN
from fhir_bridge.sandbox.samples import APPOINTMENT_ID, APPOINTMENT_PATIENT_ID
from tests.support.bridge import free_port

pytestmark = pytest.mark.integration

OUTBOX_TIMEOUT_SECONDS = 240.0


@dataclass
class FinishedRun:
    folder: Path
    log: str
    sandbox_base_url: str
    outbox: list[dict[str, Any]]
    communications: list[dict[str, Any]]
    children_left: list[int]
    exit_code: int


def _clean_env() -> dict[str, str]:
    """The caller's environment without a single FHIR_BRIDGE_* variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FHIR_BRIDGE_")}


def _wait(condition: Callable[[], Any], timeout: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-6000:]}")


def _outbox_records(folder: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted((folder / "var" / "outbox").glob("*.jsonl")):
        records += [json.loads(line) for line in path.read_text().splitlines() if line]
    return records


def _communications(base_url: str) -> list[dict[str, Any]]:
    try:
        response = httpx.get(
            f"{base_url}/Communication",
            headers={"Authorization": f"Bearer {DEV_TOKEN}"},
            timeout=5,
        )
    except httpx.TransportError:
        return []
    if response.status_code != 200:
        return []
    resources = [entry["resource"] for entry in response.json().get("entry", [])]
    # `run` gives the sample patients new ids on each start: <sample id>-<run id>.
    return [
        r
        for r in resources
        if r.get("subject", {})
        .get("reference", "")
        .startswith(f"Patient/{APPOINTMENT_PATIENT_ID}-")
    ]


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(child) for child in found.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0]
    except (OSError, IndexError):
        return False
    return "zombie" not in state


def _run_until_a_reminder(folder: Path, already: int) -> FinishedRun:
    """Start ``fhir-bridge run`` in ``folder``, wait for a new reminder, then stop it."""
    sandbox_port = free_port()
    # Ports only (other tests run beside this one); nothing about the EHR, secrets or paths.
    env = {
        **_clean_env(),
        "FHIR_BRIDGE_PORT": str(free_port()),
        "FHIR_BRIDGE_SANDBOX_PORT": str(sandbox_port),
    }
    sandbox_base_url = f"http://127.0.0.1:{sandbox_port}/fhir"
    log = folder.parent / f"{folder.name}-run-{already}.log"
    with open(log, "wb") as out:
        service = subprocess.Popen(
            [sys.executable, "-m", "fhir_bridge", "run"],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait(
            lambda: len(_reminders(_outbox_records(folder))) > already,
            OUTBOX_TIMEOUT_SECONDS,
            "a reminder in the outbox",
            log,
        )
        communications = _wait(
            lambda: _communications(sandbox_base_url),
            OUTBOX_TIMEOUT_SECONDS,
            "the Communication in the sandbox",
            log,
        )
        children = _children(service.pid)
    finally:
        service.send_signal(signal.SIGTERM)
        exit_code = service.wait(timeout=60)
    time.sleep(1)
    return FinishedRun(
        folder=folder,
        log=log.read_text(),
        sandbox_base_url=sandbox_base_url,
        outbox=_outbox_records(folder),
        communications=communications,
        children_left=[pid for pid in children if _alive(pid)],
        exit_code=exit_code,
    )


def _reminders(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["text"].startswith("Hi Grace, reminder:")]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    return _run_until_a_reminder(tmp_path_factory.mktemp("fresh-clone"), already=0)


def test_run_without_an_ehr_sends_the_sample_appointment_reminder_to_the_outbox(
    finished_run: FinishedRun,
) -> None:
    reminders = _reminders(finished_run.outbox)
    assert len(reminders) == 1, finished_run.outbox
    assert reminders[0]["channel"] == "sms"
    assert reminders[0]["status"] == "sent"


def test_run_without_an_ehr_writes_the_reminder_back_to_the_sandbox_as_a_communication(
    finished_run: FinishedRun,
) -> None:
    communication = finished_run.communications[0]
    run_id = communication["subject"]["reference"].rsplit("-", 1)[1]
    assert communication["about"] == [{"reference": f"Appointment/{APPOINTMENT_ID}-{run_id}"}]
    assert communication["status"] == "completed"


def test_run_narrates_the_sandbox_the_subscriptions_and_the_staff_panel_link(
    finished_run: FinishedRun,
) -> None:
    log = finished_run.log
    assert f"sandbox EHR at {finished_run.sandbox_base_url} with 3 sample patients" in log
    assert "created Subscriptions for Appointment" in log
    assert "/smart/launch?iss=" in log


def test_stopping_run_stops_the_sandbox_and_the_worker(finished_run: FinishedRun) -> None:
    assert finished_run.children_left == []
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{finished_run.sandbox_base_url}/metadata", timeout=2)


def test_run_keeps_every_runtime_folder_inside_the_data_folder(
    finished_run: FinishedRun,
) -> None:
    assert sorted(p.name for p in finished_run.folder.iterdir()) == ["var"]
    assert (finished_run.folder / "var" / "broker" / "control").is_dir()


def test_subscriptions_list_afterwards_in_the_same_folder_needs_nothing_exported(
    finished_run: FinishedRun,
) -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "fhir_bridge", "subscriptions", "list"],
        cwd=finished_run.folder,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted(row["resource_type"] for row in rows) == [
        "Appointment",
        "Encounter",
        "MedicationRequest",
    ]


def test_a_second_run_in_the_same_folder_shows_a_new_reminder_again(
    finished_run: FinishedRun,
) -> None:
    # Runs last: it adds to the folder the tests above look at.
    again = _run_until_a_reminder(finished_run.folder, already=1)
    assert len(_reminders(again.outbox)) == 2
    assert again.communications
