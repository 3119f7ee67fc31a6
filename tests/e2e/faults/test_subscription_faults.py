"""Subscriptions that go quiet, on real processes (PostgreSQL, Redis, API, worker + beat).

(a) An EHR restart forgets its Subscriptions' delivery state: heartbeats and notifications
stop until each Subscription is re-requested. The periodic check notices the missing
heartbeats, re-requests (new handshake) and searches the gap: the appointment booked in the
silence is reminded exactly once, heartbeats resume and ``heartbeat-late`` clears.

(b) A classic Subscription has no heartbeats or event numbers, so a lost notification shows
nowhere: the periodic ``_lastUpdated`` catch-up search finds it, reminded exactly once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.fixtures import appointment, patient
from tests.e2e.harness import Stack, running_stack, wait_for

pytestmark = pytest.mark.integration

LEAD = timedelta(hours=1)


def _book(stack: Stack, mrn: str, email: str, due_in: timedelta) -> str:
    created_patient = stack.ehr.create(patient(mrn, "Rosa", "Delgado", email))
    stack.ehr.create(appointment(created_patient["id"], datetime.now(UTC) + LEAD + due_in))
    return str(created_patient["id"])


def _assert_reminded_once(stack: Stack, patient_id: str, email: str) -> None:
    wait_for(
        lambda: [c for c in stack.communications(patient_id) if c["status"] == "completed"],
        timeout=75,
        what="a completed Communication",
        logs=stack.bridge.logs,
    )
    assert [str(m["To"]) for m in stack.smtp.messages] == [email]
    assert len(stack.communications(patient_id)) == 1


def _remote_ids(stack: Stack) -> list[str]:
    bundle = stack.ehr.search("Subscription", _count="100")
    return [entry["resource"]["id"] for entry in bundle.get("entry", [])]


def _heartbeats_since(stack: Stack, first: int) -> set[str]:
    """Subscriptions whose heartbeat reached us after delivery number ``first``."""
    return {
        entry["subscription_id"]
        for entry in stack.ehr.deliveries()[first:]
        if entry["type"] == "heartbeat" and entry["ok"]
    }


def test_heartbeats_lost_in_an_ehr_restart_are_re_requested_and_the_gap_is_caught_up(
    tmp_path: Path,
) -> None:
    with running_stack(tmp_path, offsets=["PT1H"]) as stack:
        worker = stack.bridge.start_worker()
        subscriptions = set(_remote_ids(stack))
        wait_for(
            lambda: _heartbeats_since(stack, 0) == subscriptions,
            timeout=30,
            what="a heartbeat from every Subscription",
            logs=stack.bridge.logs,
        )

        stack.ehr.simulate_restart()
        silent_from = len(stack.ehr.deliveries())
        patient_id = _book(stack, "MRN-5101", "rosa.delgado@example.net", timedelta(seconds=35))

        _assert_reminded_once(stack, patient_id, "rosa.delgado@example.net")
        wait_for(
            lambda: _heartbeats_since(stack, silent_from) == subscriptions,
            timeout=30,
            what="heartbeats to resume after the new handshakes",
            logs=stack.bridge.logs,
        )
        status = stack.bridge.cli("subscriptions", "status", check=False)
        assert status.returncode == 0, status.stderr
        assert set(json.loads(status.stdout).values()) == {"ok"}
        assert "heartbeat overdue" in stack.bridge.all_log_text()
        assert worker.poll() is None


def test_a_classic_subscription_losing_a_notification_is_caught_up_by_a_periodic_search(
    tmp_path: Path,
) -> None:
    with running_stack(
        tmp_path,
        offsets=["PT1H"],
        subscription_kind="classic",
        payload="full-resource",
        extra_env={"FHIR_BRIDGE_CLASSIC_CATCH_UP_SECONDS": "10"},
    ) as stack:
        worker = stack.bridge.start_worker()
        stack.ehr.set_chaos(drop_next=1)

        patient_id = _book(stack, "MRN-5102", "ivan.petrov@example.net", timedelta(seconds=30))

        _assert_reminded_once(stack, patient_id, "ivan.petrov@example.net")
        assert stack.ehr.stats()["deliveries_dropped"] == 1
        logs = stack.bridge.all_log_text()
        assert "heartbeat" not in logs, "classic Subscriptions have no heartbeats to miss"
        assert worker.poll() is None
