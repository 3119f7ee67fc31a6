"""``fhir-bridge audit purge``: bodies past FHIR_BRIDGE_RETAIN_BODIES_DAYS are blanked,
records past FHIR_BRIDGE_RETAIN_RECORDS_DAYS deleted, what an audit needs is kept."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fhirclient.models.communication import Communication
from sqlalchemy import select, update

from fhir_bridge.fhir_api.repository import communication_id, record_version
from fhir_bridge.outreach.communication import WritebackOptions, build_communication
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import (
    AuditEventRecord,
    CommunicationVersion,
    InboundMessage,
    PlannedMessage,
)
from tests.audit_ops.conftest import IDENTIFIER_SYSTEM, NOW, SPANISH_TEXT, run_cli, sent_reminder

OPTIONS = WritebackOptions(identifier_system=IDENTIFIER_SYSTEM)
YEAR_AND_A_MONTH = timedelta(days=400)
SEVEN_YEARS = timedelta(days=7 * 365)
AUDIT_FIELDS = (
    "id",
    "rule",
    "purpose",
    "patient_ref",
    "about",
    "send_at",
    "status",
    "template",
    "language",
    "channel",
    "provider_message_id",
    "sent_at",
    "reason",
    "consent_used",
    "created_at",
)


def stored(rt: Runtime, *messages: PlannedMessage, written: bool = True) -> list[str]:
    """Messages as the pipeline leaves them, their Communication versions recorded then."""
    with transaction(rt.sessions) as session:
        for message in messages:
            session.add(message)
            if written and message.communication_status == "written":
                record_version(
                    session,
                    build_communication(message, OPTIONS),
                    ehr_id="8812",
                    recorded_at=message.updated_at,
                )
    return [m.id for m in messages]


def snapshot(rt: Runtime, message_id: str) -> dict[str, Any]:
    with transaction(rt.sessions) as session:
        row = session.get(PlannedMessage, message_id)
        assert row is not None
        return {c.key: getattr(row, c.key) for c in PlannedMessage.__table__.columns}


def purge(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    assert run_cli("audit", "purge", "--json", *extra) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def old_reminder(**changes: Any) -> PlannedMessage:
    fields: dict[str, Any] = {
        "communication_status": "written",
        "trace": {
            "consent": {"used": "Consent/eR5fQ2pd3zRk3rbX8W6mQpA3", "basis": "opt-in"},
            "zone": "America/Los_Angeles",
            "note": "Lucía prefiere mensajes por la tarde",
        },
    }
    fields.update(changes)
    return sent_reminder(NOW - YEAR_AND_A_MONTH, **fields)


def test_a_purged_message_keeps_its_audit_fields_and_a_hash_of_its_body(
    bridge: Callable[..., Runtime], capsys: pytest.CaptureFixture[str]
) -> None:
    rt = bridge()
    (message_id,) = stored(rt, old_reminder(reason_detail="pidió llamada"))
    before = snapshot(rt, message_id)

    result = purge(capsys)

    after = snapshot(rt, message_id)
    assert result["bodies_blanked"]["messages"] == 1
    assert {k: after[k] for k in AUDIT_FIELDS} == {k: before[k] for k in AUDIT_FIELDS}
    assert (after["text"], after["address"], after["reason_detail"], after["variables"]) == (
        None,
        None,
        None,
        {},
    )
    assert after["body_sha256"] == hashlib.sha256(f"\x1f{SPANISH_TEXT}\x1f".encode()).hexdigest()
    assert after["trace"] == {
        "consent": {"used": "Consent/eR5fQ2pd3zRk3rbX8W6mQpA3", "basis": "opt-in"},
        "zone": "America/Los_Angeles",
    }


def test_a_purged_communication_version_loses_its_payload_and_stays_valid_r4(
    bridge: Callable[..., Runtime], capsys: pytest.CaptureFixture[str]
) -> None:
    rt = bridge()
    (message_id,) = stored(rt, old_reminder())

    purge(capsys)

    with transaction(rt.sessions) as session:
        version = session.scalars(
            select(CommunicationVersion).where(
                CommunicationVersion.resource_id == communication_id(IDENTIFIER_SYSTEM, message_id)
            )
        ).one()
        body, digest = dict(version.body), version.body_sha256
    assert "payload" not in body and body["status"] == "completed"
    assert digest == hashlib.sha256(f"\x1f{SPANISH_TEXT}".encode()).hexdigest()
    Communication(body, strict=True)


def test_a_patients_reply_loses_its_text_and_number_once_handled(
    bridge: Callable[..., Runtime], capsys: pytest.CaptureFixture[str]
) -> None:
    rt = bridge()
    with transaction(rt.sessions) as session:
        for status in ("done", "pending"):
            session.add(
                InboundMessage(
                    provider_message_id=f"SM-{status}",
                    from_address="+15035550143",
                    body="Sí, confirmo. Pero tengo dolor en el pecho",
                    received_at=NOW - YEAR_AND_A_MONTH,
                    status=status,
                    steps_done=[],
                )
            )

    purge(capsys)

    with transaction(rt.sessions) as session:
        rows = {r.status: r for r in session.scalars(select(InboundMessage))}
        assert (rows["done"].body, rows["done"].from_address) == ("", "")
        assert rows["done"].body_sha256 is not None
        assert rows["pending"].body.startswith("Sí, confirmo")


def test_messages_still_in_flight_are_never_touched_however_old(
    bridge: Callable[..., Runtime], capsys: pytest.CaptureFixture[str]
) -> None:
    rt = bridge()
    in_flight = stored(
        rt,
        old_reminder(status="queued", communication_status="none", sent_at=None),
        old_reminder(communication_status="pending"),
        sent_reminder(NOW - SEVEN_YEARS, status="sending", communication_status="none"),
        written=False,
    )
    before = [snapshot(rt, message_id) for message_id in in_flight]

    result = purge(capsys)

    assert [snapshot(rt, message_id) for message_id in in_flight] == before
    assert result["bodies_blanked"]["messages"] == 0 and result["records_deleted"]["messages"] == 0


def test_records_past_six_years_are_deleted_and_the_purge_is_audited(
    bridge: Callable[..., Runtime], capsys: pytest.CaptureFixture[str]
) -> None:
    rt = bridge()
    ancient, recent = stored(
        rt,
        sent_reminder(NOW - SEVEN_YEARS, communication_status="written"),
        old_reminder(),
    )

    result = purge(capsys)

    assert result["records_deleted"]["messages"] == 1
    assert result["records_deleted"]["communications"] == 1
    with transaction(rt.sessions) as session:
        assert session.get(PlannedMessage, ancient) is None
        assert session.get(PlannedMessage, recent) is not None
        assert session.scalars(select(CommunicationVersion.identifier_value)).all() == [recent]
        audit = session.get(AuditEventRecord, result["audit_event"])
        assert audit is not None and (audit.subtype_code, audit.action) == ("purge", "D")


def test_old_audit_events_go_once_pushed_never_while_pending(
    bridge: Callable[..., Runtime], capsys: pytest.CaptureFixture[str]
) -> None:
    rt = bridge()
    first = purge(capsys)["audit_event"]
    second = purge(capsys)["audit_event"]
    with transaction(rt.sessions) as session:
        session.execute(update(AuditEventRecord).values(recorded=NOW - SEVEN_YEARS))
        session.execute(
            update(AuditEventRecord)
            .where(AuditEventRecord.id == first)
            .values(push_status="written")
        )

    result = purge(capsys)

    assert result["records_deleted"]["audit_events"] == 1
    with transaction(rt.sessions) as session:
        left = set(session.scalars(select(AuditEventRecord.id)))
    assert left == {second, result["audit_event"]}


def test_a_dry_run_counts_and_changes_nothing(
    bridge: Callable[..., Runtime], capsys: pytest.CaptureFixture[str]
) -> None:
    rt = bridge()
    ids = stored(
        rt, old_reminder(), sent_reminder(NOW - SEVEN_YEARS, communication_status="written")
    )
    before = [snapshot(rt, message_id) for message_id in ids]

    result = purge(capsys, "--dry-run")

    assert result["bodies_blanked"]["messages"] == 2
    assert result["records_deleted"]["messages"] == 1 and result["audit_event"] is None
    assert [snapshot(rt, message_id) for message_id in ids] == before
    with transaction(rt.sessions) as session:
        assert session.scalars(select(AuditEventRecord)).all() == []
