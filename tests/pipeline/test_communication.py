"""The Communication recording each message is strict R4, and is written to the EHR once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from fhirclient.models.communication import Communication

from fhir_bridge import jobs
from fhir_bridge.outreach.communication import WritebackOptions, build_communication
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import PlannedMessage
from tests.pipeline.messages import APPOINTMENT_REF, PATIENT_REF, planned_row

OPTIONS = WritebackOptions(
    identifier_system="urn:fhir-bridge:message-id",
    sender_reference="Organization/eYg3-1aJmCMq-umIIq2Njxw3",
)


def _sent(now: datetime) -> PlannedMessage:
    return planned_row(
        now,
        status="sent",
        channel="email",
        address="camila.lopez@example.net",
        provider="smtp",
        provider_message_id="<20261201140000.4f2a@riverside.example.org>",
        delivery_status="accepted",
        sent_at=now,
        subject_line="Reminder: your visit on Tuesday",
        text="Hi Camila, this is a reminder of your visit on Tuesday at 10:30 AM.",
        consent_used=["Consent/eR5fQ2pd3zRk3rbX8W6mQpA3"],
        communication_status="pending",
    )


def _withheld(now: datetime) -> PlannedMessage:
    return planned_row(
        now,
        status="withheld",
        reason="no-consent",
        reason_detail="no active Consent permits email reminders",
        communication_status="pending",
    )


def _unknown(now: datetime) -> PlannedMessage:
    return planned_row(
        now,
        status="unknown",
        channel="email",
        reason="delivery-unconfirmed",
        reason_detail="worker stopped between the provider call and its record",
        sent_at=now,
        text="Hi Camila, this is a reminder of your visit on Tuesday at 10:30 AM.",
        communication_status="pending",
    )


@pytest.mark.parametrize(
    ("make", "status"),
    [
        pytest.param(_sent, "completed", id="sent"),
        pytest.param(_withheld, "not-done", id="withheld"),
        pytest.param(_unknown, "unknown", id="unknown"),
    ],
)
def test_communication_is_strict_r4_with_the_status_of_its_message(
    fixed_now: datetime, make: Any, status: str
) -> None:
    resource = build_communication(make(fixed_now), OPTIONS)

    Communication(resource, strict=True)
    assert resource["status"] == status
    assert resource["subject"] == {"reference": PATIENT_REF}
    assert resource["about"] == [{"reference": APPOINTMENT_REF}]


def test_withheld_communication_carries_its_coded_reason(fixed_now: datetime) -> None:
    resource = build_communication(_withheld(fixed_now), OPTIONS)

    assert resource["statusReason"]["coding"][0]["code"] == "no-consent"
    assert "payload" not in resource
    assert "recipient" not in resource


def test_sent_communication_records_medium_recipient_and_content(fixed_now: datetime) -> None:
    resource = build_communication(_sent(fixed_now), OPTIONS)

    assert resource["medium"][0]["coding"][0]["code"] == "EMAILWRIT"
    assert resource["recipient"] == [{"reference": PATIENT_REF}]
    assert resource["payload"][0]["contentString"].startswith("Hi Camila")
    assert "consent=Consent/eR5fQ2pd3zRk3rbX8W6mQpA3" in resource["note"][0]["text"]


def _communications(ehr: EhrServer) -> list[dict[str, Any]]:
    bundle = ehr.search("Communication", subject=PATIENT_REF)
    return [entry["resource"] for entry in bundle.get("entry", [])]


def test_writing_back_twice_creates_one_communication(
    ehr: EhrServer, ehr_runtime: Runtime, fixed_now: datetime
) -> None:
    row = _sent(fixed_now)
    with transaction(ehr_runtime.sessions) as session:
        session.add(row)

    outcomes = [jobs.write_back(ehr_runtime, row.id), jobs.write_back(ehr_runtime, row.id)]

    assert outcomes == ["written", "already"]
    assert len(_communications(ehr)) == 1


def test_a_write_retried_after_losing_its_record_does_not_duplicate(
    ehr: EhrServer, ehr_runtime: Runtime, fixed_now: datetime
) -> None:
    row = _sent(fixed_now - timedelta(minutes=5))
    with transaction(ehr_runtime.sessions) as session:
        session.add(row)
    jobs.write_back(ehr_runtime, row.id)
    with transaction(ehr_runtime.sessions) as session:
        stored = session.get(PlannedMessage, row.id)
        assert stored is not None
        first_id = stored.communication_id
        stored.communication_status = "pending"

    assert jobs.write_back(ehr_runtime, row.id) == "written"

    communications = _communications(ehr)
    assert [c["id"] for c in communications] == [first_id]
    assert communications[0]["identifier"][0]["value"] == row.id
