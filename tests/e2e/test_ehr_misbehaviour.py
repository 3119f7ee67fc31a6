"""End to end, on real processes: the reminder still arrives exactly once when the EHR
gives up on us while our API is down, has no Subscriptions at all, or drops
notifications and lacks ``$events``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fhir_bridge.sandbox.process import DEV_TOKEN, EhrServer
from tests.e2e.fixtures import appointment, patient
from tests.e2e.harness import (
    NOTIFICATION_SECRET,
    REDIS_BROKER,
    Stack,
    running_stack,
    wait_for,
    write_rules,
)
from tests.support.bridge import BridgeProcesses
from tests.support.databases import postgres_database
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.integration

LEAD = timedelta(hours=1)


def _book(stack: Stack, mrn: str, email: str, delay: timedelta) -> str:
    created_patient = stack.ehr.create(patient(mrn, "Ana", "Lopez", email))
    start = datetime.now(UTC) + LEAD + delay
    stack.ehr.create(appointment(created_patient["id"], start))
    return str(created_patient["id"])


def _completed(stack: Stack, patient_id: str) -> list[dict[str, object]]:
    return [c for c in stack.communications(patient_id) if c["status"] == "completed"]


def _assert_reminded_once(stack: Stack, patient_id: str, email: str) -> None:
    wait_for(
        lambda: _completed(stack, patient_id),
        timeout=75,
        what="a completed Communication",
        logs=stack.bridge.logs,
    )
    assert [str(m["To"]) for m in stack.smtp.messages] == [email]
    assert len(stack.communications(patient_id)) == 1


def _subscription_status(stack: Stack, resource_type: str) -> str:
    bundle = stack.ehr.search("Subscription", _count="100")
    for entry in bundle.get("entry", []):
        if entry["resource"]["criteria"].endswith(f"{resource_type.lower()}-change"):
            return str(entry["resource"]["status"])
    raise AssertionError(f"no {resource_type} Subscription on the EHR")


def test_subscription_the_ehr_put_in_error_while_our_api_was_down_recovers(
    tmp_path: Path,
) -> None:
    with running_stack(tmp_path, offsets=["PT1H"]) as stack:
        stack.ehr.settings(max_delivery_failures=1)
        assert stack.bridge.api is not None
        stack.bridge.api.terminate()
        stack.bridge.api.wait(timeout=10)

        patient_id = _book(stack, "MRN-3001", "ana.lopez@example.net", timedelta(seconds=30))
        wait_for(
            lambda: _subscription_status(stack, "Appointment") == "error",
            timeout=20,
            what="the EHR to give up on the Subscription",
            logs=stack.bridge.logs,
        )
        stack.bridge.start_api()
        stack.bridge.start_worker()

        _assert_reminded_once(stack, patient_id, "ana.lopez@example.net")
        wait_for(
            lambda: _subscription_status(stack, "Appointment") == "active",
            timeout=20,
            what="the Subscription to be active again",
            logs=stack.bridge.logs,
        )


def test_dropped_notifications_are_recovered_by_search_without_events_operation(
    tmp_path: Path,
) -> None:
    with running_stack(tmp_path, offsets=["PT1H"], supports_events=False) as stack:
        stack.ehr.set_chaos(drop_next=1)
        stack.bridge.start_worker()

        patient_id = _book(stack, "MRN-3002", "ben.okafor@example.net", timedelta(seconds=20))

        _assert_reminded_once(stack, patient_id, "ben.okafor@example.net")
        assert stack.ehr.stats()["deliveries_dropped"] == 1


@contextmanager
def _polling_stack(tmp_path: Path) -> Iterator[Stack]:
    """fhir-bridge against an EHR it never subscribes to: it polls by ``_lastUpdated``."""
    with ExitStack() as stack:
        ehr = stack.enter_context(EhrServer())
        smtp = stack.enter_context(SmtpServer())
        database_url = stack.enter_context(postgres_database())
        env = {
            "FHIR_BRIDGE_DATABASE_URL": database_url,
            "FHIR_BRIDGE_BROKER_URL": REDIS_BROKER,
            "FHIR_BRIDGE_QUEUE_NAME": f"e2e-{uuid.uuid4().hex[:10]}",
            "FHIR_BRIDGE_DATA_DIR": str(tmp_path),
            "FHIR_BRIDGE_EHR_BASE_URL": ehr.base_url,
            "FHIR_BRIDGE_EHR_AUTH": "static",
            "FHIR_BRIDGE_EHR_STATIC_TOKEN": DEV_TOKEN,
            "FHIR_BRIDGE_INGEST_MODE": "polling",
            "FHIR_BRIDGE_POLL_INTERVAL_SECONDS": "2",
            "FHIR_BRIDGE_POLL_PAGE_SIZE": "2",
            "FHIR_BRIDGE_NOTIFICATION_SECRET": NOTIFICATION_SECRET,
            "FHIR_BRIDGE_EMAIL_PROVIDER": "smtp",
            "FHIR_BRIDGE_SMTP_HOST": "127.0.0.1",
            "FHIR_BRIDGE_SMTP_PORT": str(smtp.port),
            "FHIR_BRIDGE_SMTP_SECURITY": "none",
            "FHIR_BRIDGE_SMTP_FROM": "reminders@riverside.example.org",
            "FHIR_BRIDGE_SMS_PROVIDER": "none",
            "FHIR_BRIDGE_RULES_FILE": str(write_rules(tmp_path / "rules.yaml", ["PT1H"])),
            "FHIR_BRIDGE_DISPATCH_INTERVAL_SECONDS": "1",
            "FHIR_BRIDGE_RELAY_INTERVAL_SECONDS": "1",
            "FHIR_BRIDGE_LEASE_SECONDS": "8",
            "FHIR_BRIDGE_CLOCK_SKEW_SECONDS": "2",
        }
        bridge = BridgeProcesses(env, tmp_path)
        stack.callback(bridge.stop)
        bridge.cli("migrate")
        yield Stack(ehr=ehr, smtp=smtp, bridge=bridge, database_url=database_url)


def test_an_ehr_without_subscriptions_is_polled_and_reminders_still_go_out(
    tmp_path: Path,
) -> None:
    with _polling_stack(tmp_path) as stack:
        stack.bridge.start_worker()
        others = [
            _book(stack, f"MRN-310{n}", f"other{n}@example.net", timedelta(days=2 + n))
            for n in range(3)
        ]
        time.sleep(0.1)
        patient_id = _book(stack, "MRN-3100", "chen.wei@example.net", timedelta(seconds=15))

        _assert_reminded_once(stack, patient_id, "chen.wei@example.net")
        assert stack.ehr.search("Subscription").get("total", 0) == 0
        assert all(stack.communications(other) == [] for other in others)
