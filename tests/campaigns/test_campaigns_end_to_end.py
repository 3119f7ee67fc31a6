"""Campaigns and broadcasts end to end against the development EHR (issue #14).

Patients, appointments and Consents are seeded through the EHR's FHIR API; the campaign
is drafted, approved by a second person, run, delivered (outbox SMS) and written back.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fhir_bridge import jobs
from fhir_bridge.campaigns import service
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import AuditEventRecord, PlannedMessage
from rules.consent import opt_in_consent
from tests.pipeline.conftest import make_runtime
from tests.support.databases import sqlite_database

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 10:00 in New York: inside the window
DRAFTER, APPROVER = "Practitioner/pr-ana-ortiz", "Practitioner/pr-ben-cole"
CLOSED = "Location/loc-eastside"
OPEN = "Location/loc-main-st"


@pytest.fixture(scope="module")
def ehr_server() -> Iterator[EhrServer]:
    with EhrServer() as server:
        yield server


@pytest.fixture
def rt(ehr_server: EhrServer, tmp_path: Path) -> Iterator[Runtime]:
    ehr_server.reset()
    with sqlite_database(tmp_path) as url:
        runtime = make_runtime(url, tmp_path, ehr_base_url=ehr_server.base_url)
        runtime.clock = lambda: NOW
        yield runtime
        runtime.ehr.close()
        runtime.engine.dispose()


def patient(pid: str, given: str, phone: str, language: str = "en") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "active": True,
        "name": [{"family": "Reyes" if language == "es" else "Miller", "given": [given]}],
        "birthDate": "1971-04-09",
        "telecom": [{"system": "phone", "value": phone, "use": "mobile"}],
        "communication": [
            {
                "language": {
                    "coding": [{"system": "urn:ietf:bcp:47", "code": language}],
                    "text": "Español" if language == "es" else "English",
                },
                "preferred": True,
            }
        ],
    }


def appointment(aid: str, pid: str, location: str, start: datetime) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "id": aid,
        "status": "booked",
        "serviceType": [{"text": "Follow-up visit"}],
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=30)).isoformat(),
        "participant": [
            {"actor": {"reference": f"Patient/{pid}"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/pr-lee"}, "status": "accepted"},
            {"actor": {"reference": location}, "status": "accepted"},
        ],
    }


def run_and_deliver(rt: Runtime, campaign_id: str) -> service.RunResult:
    """One run; what it queued is delivered and every decision written back (the workers'
    ``deliver`` and ``write_communication`` tasks, in-process)."""
    queued: list[str] = []
    result = service.run(rt, campaign_id, enqueue=queued.extend)
    for message_id in queued:
        jobs.deliver_message(rt, message_id)
    for message_id in [row.id for row in messages(rt)]:
        jobs.write_back(rt, message_id)
    return result


def messages(rt: Runtime) -> list[PlannedMessage]:
    with transaction(rt.sessions) as session:
        rows = session.query(PlannedMessage).filter(PlannedMessage.key.like("campaign|%")).all()
        session.expunge_all()
        return rows


def approved(rt: Runtime, request: service.Draft) -> str:
    campaign_id = service.draft(rt, request)
    service.approve(rt, campaign_id, APPROVER)
    return campaign_id


def test_a_health_tip_reaches_only_the_opted_in_patients_of_its_audience(
    rt: Runtime, ehr_server: EhrServer
) -> None:
    ehr_server.update(patient("pt-opted", "Grace", "+16175550101"))
    ehr_server.update(patient("pt-silent", "Henry", "+16175550102"))
    consent = opt_in_consent(
        "Patient/pt-opted", "sms", None, NOW - timedelta(days=30), purposes=["health-tips"]
    )
    ehr_server.create(consent)
    campaign_id = approved(
        rt,
        service.Draft(
            name="Winter walking",
            kind="health-tips",
            audience=service.audience_of(rt, "adults"),
            by=DRAFTER,
        ),
    )

    result = run_and_deliver(rt, campaign_id)

    by_patient = {row.patient_ref: row for row in messages(rt)}
    assert result.audience == 2
    assert by_patient["Patient/pt-opted"].status == "sent"
    assert by_patient["Patient/pt-silent"].status == "withheld"
    assert by_patient["Patient/pt-silent"].reason == "opt-in-required"
    assert by_patient["Patient/pt-silent"].text is None
    communications = ehr_server.search("Communication")["entry"]
    statuses = sorted(e["resource"]["status"] for e in communications)
    assert statuses == ["completed", "not-done"]  # the outbox provider completes at once
    categories = {e["resource"]["category"][0]["coding"][0]["code"] for e in communications}
    assert categories == {"notification"}
    assert not [e for e in communications if "priority" in e["resource"]]


def test_an_opt_in_recorded_later_adds_the_patient_on_the_next_run(
    rt: Runtime, ehr_server: EhrServer
) -> None:
    ehr_server.update(patient("pt-late", "Irene", "+16175550103"))
    campaign_id = approved(
        rt,
        service.Draft(
            name="Tips",
            kind="health-tips",
            audience=service.audience_of(rt, "adults"),
            by=DRAFTER,
            cadence_days=7,
        ),
    )
    first = run_and_deliver(rt, campaign_id)
    ehr_server.create(opt_in_consent("Patient/pt-late", "sms", None, NOW, purposes=["health-tips"]))
    second = run_and_deliver(rt, campaign_id)

    assert dict(first.withheld) == {"opt-in-required": 1}
    assert second.planned == 1
    sent = [row for row in messages(rt) if row.status == "sent"]
    assert [row.template for row in sent] == ["tip-water"]  # run 2 rotates to the next tip


def test_a_closure_broadcast_reaches_each_patient_with_an_appointment_there_once(
    rt: Runtime, ehr_server: EhrServer
) -> None:
    tomorrow = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
    ehr_server.update(patient("pt-two-visits", "Lucia", "+16175550104", "es"))
    ehr_server.update(patient("pt-one-visit", "Mark", "+16175550105"))
    ehr_server.update(patient("pt-elsewhere", "Nora", "+16175550106"))
    ehr_server.update(appointment("ap-1", "pt-two-visits", CLOSED, tomorrow))
    ehr_server.update(appointment("ap-2", "pt-two-visits", CLOSED, tomorrow + timedelta(hours=2)))
    ehr_server.update(appointment("ap-3", "pt-one-visit", CLOSED, tomorrow + timedelta(hours=1)))
    ehr_server.update(appointment("ap-4", "pt-elsewhere", OPEN, tomorrow))
    audience = service.broadcast_audience(
        CLOSED, datetime(2026, 12, 2, 5, 0, tzinfo=UTC), datetime(2026, 12, 3, 5, 0, tzinfo=UTC)
    )
    campaign_id = approved(
        rt,
        service.Draft(
            name="Eastside closure",
            kind="broadcast",
            audience=audience,
            by=DRAFTER,
            templates=("closure",),
            priority="alert",
            cancels_appointments=True,
        ),
    )

    result = run_and_deliver(rt, campaign_id)

    rows = messages(rt)
    assert result.audience == 2
    assert sorted(row.patient_ref for row in rows) == [
        "Patient/pt-one-visit",
        "Patient/pt-two-visits",
    ]
    assert [(row.status, row.reason, row.reason_detail) for row in rows] == [
        ("sent", None, None)
    ] * 2
    texts = {row.patient_ref: row.text or "" for row in rows}
    assert texts["Patient/pt-two-visits"].startswith("Aviso: oficina cerrada mié 2 dic.")
    assert texts["Patient/pt-one-visit"].startswith("Notice: our office is closed Wed Dec 2.")
    communications = [e["resource"] for e in ehr_server.search("Communication")["entry"]]
    assert sorted(c["subject"]["reference"] for c in communications) == [
        "Patient/pt-one-visit",
        "Patient/pt-two-visits",
    ]
    assert {(c["category"][0]["coding"][0]["code"], c["priority"]) for c in communications} == {
        ("alert", "urgent")  # R4 communication-category and request-priority
    }


def test_approval_by_the_staff_member_who_drafted_it_is_refused(rt: Runtime) -> None:
    campaign_id = service.draft(
        rt,
        service.Draft(
            name="Tips", kind="health-tips", audience=service.audience_of(rt, "adults"), by=DRAFTER
        ),
    )

    with pytest.raises(service.SameApprover):
        service.approve(rt, campaign_id, DRAFTER)

    with pytest.raises(service.CampaignError):
        service.run(rt, campaign_id, enqueue=lambda ids: None)
    service.approve(rt, campaign_id, APPROVER)
    with transaction(rt.sessions) as session:
        what = sorted(
            e["description"]
            for row in session.query(AuditEventRecord).all()
            for e in row.resource["entity"]
            if "description" in e
        )
    assert what == ["campaign-approve", "campaign-draft"]
