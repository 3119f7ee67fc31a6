"""End to end, on real parts: an Appointment booked in the EHR becomes one reminder
email and one Communication in the EHR, even when the EHR misbehaves and the
worker is killed mid-flight."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.fixtures import appointment, patient
from tests.e2e.harness import Stack, running_stack, wait_for

pytestmark = pytest.mark.integration

LEAD = timedelta(hours=1)


def _book(stack: Stack, mrn: str, email: str, delay: timedelta) -> tuple[str, str]:
    created_patient = stack.ehr.create(patient(mrn, "Ana", "Lopez", email))
    start = datetime.now(UTC) + LEAD + delay
    created = stack.ehr.create(appointment(created_patient["id"], start))
    return created_patient["id"], created["id"]


def _emails_to(stack: Stack, address: str) -> list[object]:
    return [m for m in stack.smtp.messages if address in str(m["To"])]


def test_booked_appointment_is_reminded_once_and_written_back(tmp_path: Path) -> None:
    with running_stack(tmp_path, offsets=["PT1H"]) as stack:
        stack.bridge.start_worker()
        patient_id, appointment_id = _book(
            stack, "MRN-1001", "ana.lopez@example.net", timedelta(seconds=8)
        )

        communications = wait_for(
            lambda: [c for c in stack.communications(patient_id) if c["status"] == "completed"],
            timeout=90,
            what="a completed Communication",
            logs=stack.bridge.logs,
        )

        emails = _emails_to(stack, "ana.lopez@example.net")
        assert len(emails) == 1
        assert len(communications) == 1
        communication = communications[0]
        assert communication["about"] == [{"reference": f"Appointment/{appointment_id}"}]
        assert communication["recipient"] == [{"reference": f"Patient/{patient_id}"}]
        assert communication["medium"][0]["coding"][0]["code"] == "EMAILWRIT"
        body = emails[0].get_body(preferencelist=("plain",)).get_content()  # type: ignore[attr-defined]
        delivered = body.replace("\r\n", "\n").strip()
        assert communication["payload"][0]["contentString"].strip() == delivered
        assert "Hypertensive" not in body


def test_reminders_survive_duplicates_reordering_drops_and_a_killed_worker(
    tmp_path: Path,
) -> None:
    with running_stack(tmp_path, offsets=["PT1H"]) as stack:
        stack.ehr.set_chaos(duplicate=0.5, reorder_window=3, drop=0.25, seed=7)
        stack.bridge.start_worker()
        booked = []
        for n in range(6):
            email = f"patient{n}@example.net"
            patient_id, appointment_id = _book(
                stack, f"MRN-20{n:02d}", email, timedelta(seconds=12 + n)
            )
            booked.append((patient_id, appointment_id, email))
        cancelled_patient, cancelled_appointment, cancelled_email = booked[-1]
        current = stack.ehr.read("Appointment", cancelled_appointment)
        stack.ehr.update({**current, "status": "cancelled"})
        stack.ehr.flush()

        wait_for(
            lambda: len(stack.smtp.messages) >= 1,
            timeout=90,
            what="the first reminder",
            logs=stack.bridge.logs,
        )
        stack.bridge.kill_workers()
        stack.bridge.start_worker()
        stack.ehr.flush()

        expected = booked[:-1]
        wait_for(
            lambda: all(
                any(c["status"] in ("completed", "unknown") for c in stack.communications(p))
                for p, _, _ in expected
            ),
            timeout=150,
            what="a Communication for every reminder",
            logs=stack.bridge.logs,
        )
        stack.ehr.flush()

        per_address = Counter(str(m["To"]) for m in stack.smtp.messages)
        for patient_id, _, email in expected:
            assert per_address[email] == 1, (email, per_address)
            assert len(stack.communications(patient_id)) == 1
        assert per_address[cancelled_email] == 0
        assert stack.communications(cancelled_patient) == []
        message_ids = Counter(str(m["Message-ID"]) for m in stack.smtp.messages)
        assert all(count == 1 for count in message_ids.values())
        deliveries = stack.ehr.deliveries()
        assert any(d["dropped"] for d in deliveries), "the EHR dropped nothing"
        assert any(d["duplicated"] for d in deliveries), "the EHR duplicated nothing"
        assert any(d["reordered"] for d in deliveries), "the EHR reordered nothing"


def test_logs_of_a_full_run_contain_no_phi(tmp_path: Path) -> None:
    with running_stack(tmp_path, offsets=["PT1H"]) as stack:
        stack.bridge.start_worker()
        patient_id, _ = _book(stack, "MRN-4242", "zoe.quintana@example.net", timedelta(seconds=6))
        wait_for(
            lambda: [c for c in stack.communications(patient_id) if c["status"] == "completed"],
            timeout=90,
            what="a completed Communication",
            logs=stack.bridge.logs,
        )
        body = stack.communications(patient_id)[0]["payload"][0]["contentString"]
        logs = stack.bridge.all_log_text()

    assert "notification accepted" in logs and "sent message" in logs
    for phi in ("Ana", "Lopez", "zoe.quintana@example.net", "MRN-4242", "1968-04-12"):
        assert phi not in logs
    for line in body.splitlines():
        if len(line.strip()) > 20:
            assert line.strip() not in logs
