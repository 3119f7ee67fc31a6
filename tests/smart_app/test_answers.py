"""Staff answer a patient's reply with an approved template, from the panel.

The answer is a planned message of its own kind: re-planning leaves it alone, delivery
sends it once on the reply channel, and the EHR gets a Communication answering the reply.
The broker hop is the only thing not real here: what the API would enqueue after its
commit is collected, and the job the worker runs for it is run in the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from channels.outbox import read_outbox
from fhir_bridge import jobs, tasks
from fhir_bridge.api.app import create_app
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox import EhrServer
from fhir_bridge.settings import load_settings
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import LedgerEntry, PlannedMessage, StaffInboxItem
from tests.smart_app.conftest import CLIENT_ID, NOW, PanelApp
from tests.smart_app.records import (
    OTHER_PATIENT_ID,
    PATIENT_ID,
    PRACTITIONER_ID,
    patient_resource,
    seed_inbox,
)
from tests.support.databases import sqlite_database

CALL_US_EN = "Thank you for your message. Please call us so we can help you."
CALL_US_ES = "Gracias por su mensaje. Para ayudarle, por favor llame a nuestra oficina."


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    """Tasks handed to the broker after a commit, instead of a broker."""
    sent: list[tuple[str, tuple[Any, ...]]] = []

    def collect(task_name: str, *args: Any) -> bool:
        sent.append((task_name, args))
        return True

    monkeypatch.setattr(tasks, "try_enqueue", collect)
    return sent


@pytest.fixture
def runtime(tmp_path: Path, ehr: EhrServer) -> Iterator[Runtime]:
    with sqlite_database(tmp_path) as url:
        settings = load_settings(
            database_url=url,
            data_dir=tmp_path,
            outbox_dir=tmp_path / "outbox",
            ehr_base_url=ehr.base_url,
            ehr_auth="static",
            ehr_static_token=ehr.static_token,
            public_base_url="http://testserver",
            smart_client_id=CLIENT_ID,
            notification_secret="test-notification-secret-0123456789-Wq7ZkP2xR9mVt4LsN8cYb3HjG6dFa5Ue",
            log_level="WARNING",
        )
        yield Runtime(settings=settings, clock=lambda: NOW)


@pytest.fixture
def panel(runtime: Runtime, enqueued: list[tuple[str, tuple[Any, ...]]]) -> Iterator[PanelApp]:
    app = create_app(runtime)
    with TestClient(app, follow_redirects=False) as client:
        yield PanelApp(app, client, runtime.sessions)


def _answer(
    panel: PanelApp, item_id: int, answer: str = "call-us", csrf: str | None = None
) -> httpx.Response:
    staff = panel.sign_in()
    return panel.client.post(
        panel.url(f"/inbox/{item_id}/answer"),
        data={"csrf_token": staff.csrf_token if csrf is None else csrf, "answer": answer},
    )


def _answers(panel: PanelApp) -> list[PlannedMessage]:
    with transaction(panel.sessions) as session:
        rows = session.query(PlannedMessage).filter(PlannedMessage.rule == "staff-answer").all()
        session.expunge_all()
        return rows


def _item(panel: PanelApp, item_id: int) -> StaffInboxItem:
    with transaction(panel.sessions) as session:
        item = session.get(StaffInboxItem, item_id)
        assert item is not None
        session.expunge(item)
        return item


def _inbox_entry(panel: PanelApp, item_id: int) -> dict[str, Any]:
    items = panel.client.get(panel.url("/api/inbox")).json()
    return dict(next(i for i in items if i["id"] == item_id))


def test_answering_a_reply_sends_it_now_and_marks_the_reply_handled(
    panel: PanelApp, enqueued: list[tuple[str, tuple[Any, ...]]]
) -> None:
    ids = seed_inbox(panel.sessions, NOW)

    response = _answer(panel, ids["message"])

    assert response.status_code == 303
    assert response.headers["location"].endswith("/panel?notice=answer-sending")
    (row,) = _answers(panel)
    assert (row.status, row.purpose, row.language) == ("queued", "care-coordination", "en")
    assert enqueued == [("fhir_bridge.deliver", (row.id,))]
    item = _item(panel, ids["message"])
    assert (item.status, item.handled_by) == ("handled", f"Practitioner/{PRACTITIONER_ID}")
    (note,) = _inbox_entry(panel, ids["message"])["answers"]
    assert (note["label"], note["status_label"]) == ("Please call us", "Sending soon")


def test_answer_survives_a_replan_and_is_delivered_once_with_a_communication(
    panel: PanelApp, runtime: Runtime, ehr: EhrServer
) -> None:
    ids = seed_inbox(panel.sessions, NOW)
    _answer(panel, ids["message"])
    (row,) = _answers(panel)

    with transaction(runtime.sessions) as session:
        jobs.patient_changed_hook(runtime, NOW)(session, f"Patient/{PATIENT_ID}")
    assert _answers(panel)[0].status == "queued"

    assert jobs.deliver_message(runtime, row.id) == "sent"
    assert jobs.deliver_message(runtime, row.id) == "skipped"
    (sent,) = read_outbox(runtime.settings.outbox_dir / "sms.jsonl")
    assert (sent["to"], sent["message_id"]) == ("+16175550123", row.id)
    assert sent["text"].startswith(CALL_US_EN)
    assert jobs.write_back(runtime, row.id) == "written"
    communication = ehr.read("Communication", str(_answers(panel)[0].communication_id))
    assert communication["status"] == "completed"
    assert communication["inResponseTo"] == [{"reference": f"Communication/in-{_inbound(panel)}"}]
    assert communication["payload"] == [{"contentString": sent["text"]}]
    authors = [n.get("authorReference") for n in communication["note"]]
    assert {"reference": f"Practitioner/{PRACTITIONER_ID}"} in authors


def _inbound(panel: PanelApp) -> int:
    with transaction(panel.sessions) as session:
        (item,) = session.query(StaffInboxItem).filter(StaffInboxItem.kind == "message").all()
        return item.inbound_id


def test_answer_to_a_patient_who_texted_stop_is_withheld_and_the_reply_stays_open(
    panel: PanelApp, enqueued: list[tuple[str, tuple[Any, ...]]]
) -> None:
    ids = seed_inbox(panel.sessions, NOW)
    with transaction(panel.sessions) as session:
        session.add(
            LedgerEntry(
                patient_ref=f"Patient/{PATIENT_ID}",
                channel="sms",
                address="+16175550123",
                purpose="*",
                action="opt-out",
                source="sms-keyword",
                recorded_at=NOW,
            )
        )

    response = _answer(panel, ids["message"])

    assert response.headers["location"].endswith("/panel?notice=answer-withheld")
    (row,) = _answers(panel)
    assert (row.status, row.reason) == ("withheld", "opted-out")
    assert enqueued == [("fhir_bridge.write_communication", (row.id,))]
    assert _item(panel, ids["message"]).status == "open"
    page = panel.client.get(panel.url("/panel")).text
    assert "Answer \u201cPlease call us\u201d not sent: Patient opted out" in page


def test_the_reply_dialog_shows_each_answer_in_the_patients_language(
    panel: PanelApp, ehr: EhrServer
) -> None:
    spanish = patient_resource()
    spanish["communication"][0]["language"]["coding"][0]["code"] = "es-MX"
    ehr.update(spanish)
    ids = seed_inbox(panel.sessions, NOW)
    panel.sign_in()

    page = panel.client.get(panel.url("/panel")).text

    assert f'id="answer-{ids["message"]}"' in page
    assert "The patient reads it in Spanish" in page
    assert CALL_US_ES in page


@pytest.mark.parametrize(
    ("answer", "csrf", "status"),
    [("call-us", "not-the-sessions-token", 403), ("your-test-results", None, 400)],
    ids=["wrong-csrf-token", "answer-not-approved"],
)
def test_a_bad_answer_request_is_refused_and_nothing_is_planned(
    panel: PanelApp, answer: str, csrf: str | None, status: int
) -> None:
    ids = seed_inbox(panel.sessions, NOW)

    response = _answer(panel, ids["message"], answer=answer, csrf=csrf)

    assert response.status_code == status
    assert _answers(panel) == []


def test_another_patients_reply_cannot_be_answered(panel: PanelApp) -> None:
    ids = seed_inbox(panel.sessions, NOW, patient_id=OTHER_PATIENT_ID)

    assert _answer(panel, ids["message"]).status_code == 409
    assert _answers(panel) == []


def test_a_reply_is_answered_once(panel: PanelApp) -> None:
    ids = seed_inbox(panel.sessions, NOW)
    _answer(panel, ids["message"])

    assert _answer(panel, ids["message"], answer="we-will-call-you").status_code == 409
    assert len(_answers(panel)) == 1
