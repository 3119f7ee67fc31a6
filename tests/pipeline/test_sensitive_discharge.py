"""After an involuntary psychiatric hold the patient gets no text: staff are asked to call.

Driven like production: the stay is on the (fake) EHR, polling picks it up and re-plans the
patient, the write-back job records the withheld check-in as a not-done Communication and
writes an urgent Task for clinic staff - once, however often the write-back runs.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fhir_bridge import jobs
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import PlannedMessage
from tests.pipeline.conftest import make_runtime
from tests.pipeline.samples import patient

pytestmark = pytest.mark.integration

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ADMIT_SOURCE = "http://terminology.hl7.org/CodeSystem/admit-source"
DISCHARGE_DISPOSITION = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
SNOMED = "http://snomed.info/sct"


def _instant(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _involuntary_hold(patient_id: str, discharged: datetime) -> dict[str, Any]:
    """An inpatient stay as Epic sends it after a 72-hour hold: the reason only in free text."""
    return {
        "resourceType": "Encounter",
        "identifier": [
            {"system": "urn:oid:1.2.840.114350.1.13.0.1.7.3.698084.8", "value": "88231907"}
        ],
        "status": "finished",
        "class": {"system": ACT_CODE, "code": "IMP", "display": "inpatient encounter"},
        "type": [
            {
                "coding": [{"system": SNOMED, "code": "32485007", "display": "Hospital admission"}],
                "text": "Involuntary psychiatric hold",
            }
        ],
        "subject": {"reference": f"Patient/{patient_id}", "display": "Lopez, Camila"},
        "participant": [
            {
                "individual": {
                    "reference": "Practitioner/eM5kq2Z7Qd1vXr9",
                    "display": "Okafor, Daniel, MD",
                }
            }
        ],
        "period": {
            "start": _instant(discharged - timedelta(days=3)),
            "end": _instant(discharged),
        },
        "hospitalization": {
            "admitSource": {
                "coding": [
                    {
                        "system": ADMIT_SOURCE,
                        "code": "emd",
                        "display": "From accident/emergency department",
                    }
                ],
                "text": "ED - 5150 hold",
            },
            "dischargeDisposition": {
                "coding": [{"system": DISCHARGE_DISPOSITION, "code": "home", "display": "Home"}]
            },
        },
        "location": [
            {
                "location": {
                    "reference": "Location/e4W4rmGe9QzuGm2Dy4NBqVc0.3-4w",
                    "display": "4 West",
                },
                "status": "completed",
            }
        ],
        "serviceProvider": {"reference": "Organization/eYg3-1aJmCMq-umIIq2Njxw3"},
    }


def _created(ehr: EhrServer, resource: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(resource)
    body.pop("id", None)
    body.pop("meta", None)
    return ehr.create(body)


@pytest.fixture
def polling_runtime(ehr: EhrServer, sqlite_url: str, tmp_path: Path) -> Runtime:
    return make_runtime(sqlite_url, tmp_path, ehr_base_url=ehr.base_url, ingest_mode="polling")


@pytest.fixture
def discharged_after_hold(ehr: EhrServer, polling_runtime: Runtime) -> str:
    """The hold is on the EHR and polling has planned the patient; returns the Patient ref."""
    patient_id = str(_created(ehr, patient())["id"])
    discharged = datetime.now(UTC) - timedelta(hours=2)
    _created(ehr, _involuntary_hold(patient_id, discharged))
    jobs.poll(polling_runtime)
    return f"Patient/{patient_id}"


def _messages(rt: Runtime, patient_ref: str) -> list[PlannedMessage]:
    with transaction(rt.sessions) as session:
        rows = session.scalars(
            select(PlannedMessage).where(PlannedMessage.patient_ref == patient_ref)
        )
        return list(rows)


def _write_back_all(rt: Runtime, patient_ref: str) -> None:
    for message in _messages(rt, patient_ref):
        if message.communication_status == "pending":
            jobs.write_back(rt, message.id)


def _communications(ehr: EhrServer, patient_ref: str) -> list[dict[str, Any]]:
    bundle = ehr.search("Communication", subject=patient_ref)
    return [entry["resource"] for entry in bundle.get("entry", [])]


def _tasks(ehr: EhrServer, patient_ref: str) -> list[dict[str, Any]]:
    """The Tasks for the patient (the fake EHR does not index ``Task.for``)."""
    bundle = ehr.search("Task", _count="100")
    tasks = [entry["resource"] for entry in bundle.get("entry", [])]
    return [task for task in tasks if task.get("for") == {"reference": patient_ref}]


def test_no_check_in_is_planned_and_the_message_is_withheld_for_a_staff_call(
    polling_runtime: Runtime, discharged_after_hold: str
) -> None:
    messages = _messages(polling_runtime, discharged_after_hold)

    assert [(m.purpose, m.status, m.reason) for m in messages] == [
        ("discharge-checkin", "withheld", "staff-call-instead")
    ]
    assert messages[0].text is None
    assert messages[0].trace["withheld"]["sensitive_policy"] == {
        "action": "staff-call",
        "entry": "mental-health",
    }


def test_staff_get_an_urgent_task_to_call_the_patient(
    ehr: EhrServer, polling_runtime: Runtime, discharged_after_hold: str
) -> None:
    _write_back_all(polling_runtime, discharged_after_hold)

    tasks = _tasks(ehr, discharged_after_hold)
    assert len(tasks) == 1
    task = tasks[0]
    assert (task["status"], task["intent"], task["priority"]) == ("requested", "order", "urgent")
    assert task["code"]["text"] == "Call patient after discharge"
    assert task["for"] == {"reference": discharged_after_hold}
    assert task["focus"]["reference"].startswith("Encounter/")


def test_the_task_carries_no_clinical_detail(
    ehr: EhrServer, polling_runtime: Runtime, discharged_after_hold: str
) -> None:
    _write_back_all(polling_runtime, discharged_after_hold)

    task = _tasks(ehr, discharged_after_hold)[0]
    written = str(task).lower()
    assert not any(word in written for word in ("psychiatr", "hold", "5150", "involuntary"))


def test_the_withheld_check_in_is_recorded_as_a_not_done_communication(
    ehr: EhrServer, polling_runtime: Runtime, discharged_after_hold: str
) -> None:
    _write_back_all(polling_runtime, discharged_after_hold)

    communications = _communications(ehr, discharged_after_hold)
    assert [(c["status"], c["statusReason"]["coding"][0]["code"]) for c in communications] == [
        ("not-done", "staff-call-instead")
    ]
    task = _tasks(ehr, discharged_after_hold)[0]
    assert task["reasonReference"] == {"reference": f"Communication/{communications[0]['id']}"}


def test_writing_back_again_never_doubles_the_task(
    ehr: EhrServer, polling_runtime: Runtime, discharged_after_hold: str
) -> None:
    _write_back_all(polling_runtime, discharged_after_hold)
    message = _messages(polling_runtime, discharged_after_hold)[0]
    with transaction(polling_runtime.sessions) as session:
        row = session.get(PlannedMessage, message.id)
        assert row is not None
        row.communication_status = "pending"

    assert jobs.write_back(polling_runtime, message.id) == "written"

    assert len(_tasks(ehr, discharged_after_hold)) == 1
    assert len(_communications(ehr, discharged_after_hold)) == 1
