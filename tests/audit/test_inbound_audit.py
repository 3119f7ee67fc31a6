"""A patient's SMS reply leaves AuditEvents: the consent change a STOP makes, and the reply
handled, each with the patient as the one who asked."""

from __future__ import annotations

from sqlalchemy import select

from fhir_bridge.inbound.jobs import process_inbound_message
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import AuditEventRecord
from tests.inbound.conftest import PATIENT_REF, TwoWay, appointment, seed_reminder

SID = "SM" + "a7" * 16


def _audit_events(world: TwoWay) -> dict[str, AuditEventRecord]:
    with transaction(world.runtime.sessions) as session:
        rows = session.scalars(select(AuditEventRecord))
        return {_what(row): row for row in rows}


def _what(row: AuditEventRecord) -> str:
    return next(e["description"] for e in row.resource["entity"] if "description" in e)


def test_a_spanish_stop_reply_leaves_a_consent_change_and_a_reply_handled(two_way: TwoWay) -> None:
    seed_reminder(two_way.runtime)
    two_way.ehr.put(appointment())
    assert two_way.inbound("Alto", sid=SID).status_code == 200
    process_inbound_message(two_way.runtime, two_way.enqueued[-1][1][0])

    audits = _audit_events(two_way)
    assert set(audits) == {"sms-opt-out", "reply:opt-out"}
    consent, reply = audits["sms-opt-out"], audits["reply:opt-out"]
    assert (consent.action, consent.agent_ref, consent.patient_ref) == (
        "C",
        PATIENT_REF,
        PATIENT_REF,
    )
    consent_what = next(e["what"] for e in consent.resource["entity"] if "description" in e)
    assert consent_what == {
        "type": "Consent",
        "identifier": {"system": "urn:fhir-bridge:inbound-sms", "value": SID},
    }
    [communication] = two_way.ehr.of_type("Communication")
    reply_what = next(e["what"] for e in reply.resource["entity"] if "description" in e)
    assert reply_what == {"reference": f"Communication/{communication['id']}"}


def test_a_reply_from_an_unknown_number_is_audited_without_a_patient(two_way: TwoWay) -> None:
    assert two_way.inbound("Hola, ¿quién es?", sid=SID, sender="+16175550199").status_code == 200
    process_inbound_message(two_way.runtime, two_way.enqueued[-1][1][0])

    [reply] = _audit_events(two_way).values()
    assert (reply.patient_ref, reply.agent_ref) == (None, None)
    assert reply.resource["meta"]["profile"][0].endswith("IHE.BasicAudit.Create")
