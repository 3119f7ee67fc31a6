"""POST /twilio/status: signed, idempotent, never backwards; Communication updated after."""

from __future__ import annotations

from sqlalchemy import func, select

from fhir_bridge.inbound.jobs import relay, sync_message_communication
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import DeliveryReceipt, LedgerEntry, PlannedMessage
from tests.inbound.conftest import (
    PATIENT_PHONE,
    TwoWay,
    reminder_communication,
    seed_reminder,
)

SID = "SMa1b2c3d4e5f60718293a4b5c6d7e8f90"


def _message(two_way: TwoWay) -> PlannedMessage:
    with transaction(two_way.runtime.sessions) as session:
        row = session.get(PlannedMessage, "msg-1")
        assert row is not None
        return row


def _receipts(two_way: TwoWay) -> int:
    with transaction(two_way.runtime.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(DeliveryReceipt)) or 0)


def test_tampered_signature_is_refused_and_changes_nothing(two_way: TwoWay) -> None:
    seed_reminder(two_way.runtime)
    form = {"MessageSid": SID, "MessageStatus": "delivered", "To": PATIENT_PHONE}
    signed = two_way.post_signed("/twilio/status?message_id=msg-1", form, token="wrong-token")

    assert signed.status_code == 403
    assert _message(two_way).delivery_status == "queued"
    assert _receipts(two_way) == 0


def test_missing_signature_is_refused(two_way: TwoWay) -> None:
    seed_reminder(two_way.runtime)
    response = two_way.client.post(
        "/twilio/status?message_id=msg-1", data={"MessageSid": SID, "MessageStatus": "delivered"}
    )

    assert response.status_code == 403
    assert _message(two_way).delivery_status == "queued"


def test_delivered_callback_records_delivery_and_enqueues_the_communication_update(
    two_way: TwoWay,
) -> None:
    seed_reminder(two_way.runtime)

    response = two_way.status("msg-1", SID, "delivered")

    assert response.status_code == 204
    assert _message(two_way).delivery_status == "delivered"
    assert two_way.enqueued == [("fhir_bridge.sync_communication", ("msg-1",))]


def test_duplicate_callback_is_processed_once(two_way: TwoWay) -> None:
    seed_reminder(two_way.runtime)

    two_way.status("msg-1", SID, "sent")
    two_way.status("msg-1", SID, "sent")

    assert _receipts(two_way) == 1
    assert len(two_way.enqueued) == 1


def test_late_sent_after_delivered_is_ignored(two_way: TwoWay) -> None:
    seed_reminder(two_way.runtime)

    two_way.status("msg-1", SID, "delivered")
    two_way.status("msg-1", SID, "sent")

    assert _message(two_way).delivery_status == "delivered"


def test_callback_for_another_provider_message_changes_nothing(two_way: TwoWay) -> None:
    seed_reminder(two_way.runtime)

    two_way.status("msg-1", "SM" + "f" * 32, "delivered")

    assert _message(two_way).delivery_status == "queued"


def test_callback_before_the_send_is_recorded_is_applied_by_the_relay(two_way: TwoWay) -> None:
    seed_reminder(two_way.runtime, status="sending", sid=None, communication_id=None)
    two_way.status("msg-1", SID, "delivered")
    with transaction(two_way.runtime.sessions) as session:
        row = session.get(PlannedMessage, "msg-1")
        assert row is not None
        row.status, row.provider_message_id = "sent", SID

    relay(two_way.runtime)

    assert _message(two_way).delivery_status == "delivered"


def test_unsubscribed_error_records_an_opt_out_for_that_number(two_way: TwoWay) -> None:
    seed_reminder(two_way.runtime)

    two_way.status("msg-1", SID, "failed", error_code="21610")

    with transaction(two_way.runtime.sessions) as session:
        entries = list(session.scalars(select(LedgerEntry)))
    assert [(e.address, e.action, e.source) for e in entries] == [
        (PATIENT_PHONE, "opt-out", "provider")
    ]


def test_landline_error_marks_the_number_unusable_for_sms(two_way: TwoWay) -> None:
    seed_reminder(two_way.runtime)

    two_way.status("msg-1", SID, "undelivered", error_code="21614")

    with transaction(two_way.runtime.sessions) as session:
        entries = list(session.scalars(select(LedgerEntry)))
    assert [(e.channel, e.address, e.action) for e in entries] == [
        ("sms", PATIENT_PHONE, "opt-out")
    ]


def test_delivered_message_completes_its_communication_with_if_match(two_way: TwoWay) -> None:
    seed_reminder(two_way.runtime)
    two_way.ehr.put(reminder_communication())
    two_way.status("msg-1", SID, "delivered")

    outcome = sync_message_communication(two_way.runtime, "msg-1")

    assert outcome == "updated"
    assert two_way.ehr.resources["Communication/comm-5551"]["status"] == "completed"
    assert two_way.ehr.updates == [("Communication/comm-5551", "1")]


def test_undelivered_message_makes_its_communication_not_done_with_a_coded_reason(
    two_way: TwoWay,
) -> None:
    seed_reminder(two_way.runtime)
    two_way.ehr.put(reminder_communication())
    two_way.status("msg-1", SID, "undelivered", error_code="30003")

    sync_message_communication(two_way.runtime, "msg-1")

    communication = two_way.ehr.resources["Communication/comm-5551"]
    assert communication["status"] == "not-done"
    assert communication["statusReason"]["coding"][0] == {
        "system": "urn:fhir-bridge:delivery-failure",
        "code": "undelivered",
    }
    assert "30003" in communication["statusReason"]["text"]


def test_version_conflict_is_re_read_and_retried(two_way: TwoWay) -> None:
    seed_reminder(two_way.runtime)
    two_way.ehr.put(reminder_communication())
    two_way.ehr.conflicts["Communication/comm-5551"] = 1
    two_way.status("msg-1", SID, "delivered")

    outcome = sync_message_communication(two_way.runtime, "msg-1")

    assert outcome == "updated"
    assert two_way.ehr.updates == [
        ("Communication/comm-5551", "1"),
        ("Communication/comm-5551", "2"),
    ]
    assert two_way.ehr.resources["Communication/comm-5551"]["status"] == "completed"


def test_persistent_conflict_leaves_the_update_for_the_relay(two_way: TwoWay) -> None:
    seed_reminder(two_way.runtime)
    two_way.ehr.put(reminder_communication())
    two_way.ehr.conflicts["Communication/comm-5551"] = 10
    two_way.status("msg-1", SID, "delivered")

    outcome = sync_message_communication(two_way.runtime, "msg-1")

    assert outcome == "retry"
    assert two_way.ehr.resources["Communication/comm-5551"]["status"] == "in-progress"


def test_update_waits_until_the_communication_was_written(two_way: TwoWay) -> None:
    seed_reminder(two_way.runtime, communication_id=None)
    two_way.status("msg-1", SID, "delivered")

    assert sync_message_communication(two_way.runtime, "msg-1") == "waiting"
