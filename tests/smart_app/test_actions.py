"""Staff actions: cancel only pending messages, record opt-in/out; CSRF-checked and audited."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import LedgerEntry, PlannedMessage
from tests.smart_app.conftest import NOW, PanelApp
from tests.smart_app.records import EMAIL, MOBILE, PATIENT_ID, PRACTITIONER_ID, seed_messages


def _message(panel: PanelApp, message_id: str) -> PlannedMessage:
    with transaction(panel.sessions) as session:
        row = session.get(PlannedMessage, message_id)
        assert row is not None
        return row


def _sms_reminder(panel: PanelApp) -> dict[str, object]:
    consent = panel.client.get("/smart/api/timeline").json()["consent"]
    sms = next(row for row in consent if row["channel"] == "sms")
    return dict(sms["purposes"]["appointment-reminder"])


@pytest.fixture
def audit_lines() -> Iterator[list[str]]:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage() + " " + str(record.__dict__))

    handler = Collect()
    logger = logging.getLogger("smart_app.audit")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    yield lines
    logger.setLevel(previous)
    logger.removeHandler(handler)


def test_cancelling_a_planned_message_marks_it_cancelled_by_staff(panel: PanelApp) -> None:
    ids = seed_messages(panel.sessions, NOW)
    staff = panel.sign_in()
    response = panel.client.post(
        f"/smart/messages/{ids['planned']}/cancel", data={"csrf_token": staff.csrf_token}
    )
    assert response.status_code == 303
    row = _message(panel, ids["planned"])
    assert (row.status, row.reason) == ("cancelled", "cancelled-by-staff")


def test_cancellation_trace_records_the_staff_user(panel: PanelApp) -> None:
    ids = seed_messages(panel.sessions, NOW)
    staff = panel.sign_in()
    panel.client.post(
        f"/smart/messages/{ids['planned']}/cancel", data={"csrf_token": staff.csrf_token}
    )
    action = _message(panel, ids["planned"]).trace["staff_action"]
    assert action["by"] == f"Practitioner/{PRACTITIONER_ID}"
    assert action["action"] == "cancel"


@pytest.mark.parametrize("label", ["sent", "withheld"], ids=["sent", "withheld"])
def test_only_pending_messages_can_be_cancelled(panel: PanelApp, label: str) -> None:
    ids = seed_messages(panel.sessions, NOW)
    staff = panel.sign_in()
    response = panel.client.post(
        f"/smart/messages/{ids[label]}/cancel", data={"csrf_token": staff.csrf_token}
    )
    assert response.status_code == 409
    assert _message(panel, ids[label]).status == label


@pytest.mark.parametrize("token", ["", "not-the-session-token"], ids=["missing", "wrong"])
def test_cancel_without_the_sessions_csrf_token_is_refused(panel: PanelApp, token: str) -> None:
    ids = seed_messages(panel.sessions, NOW)
    panel.sign_in()
    response = panel.client.post(
        f"/smart/messages/{ids['planned']}/cancel", data={"csrf_token": token}
    )
    assert response.status_code == 403
    assert _message(panel, ids["planned"]).status == "planned"


def test_consent_action_without_csrf_token_records_nothing(panel: PanelApp) -> None:
    panel.sign_in()
    response = panel.client.post("/smart/consent", data={"channel": "sms", "action": "opt-out"})
    assert response.status_code == 403
    with transaction(panel.sessions) as session:
        assert session.query(LedgerEntry).count() == 0


def test_staff_sms_opt_out_is_a_staff_ledger_entry_for_the_patient(panel: PanelApp) -> None:
    staff = panel.sign_in()
    panel.client.post(
        "/smart/consent",
        data={"csrf_token": staff.csrf_token, "channel": "sms", "action": "opt-out"},
    )
    with transaction(panel.sessions) as session:
        entry = session.query(LedgerEntry).one()
    assert (entry.patient_ref, entry.channel, entry.action, entry.source, entry.purpose) == (
        f"Patient/{PATIENT_ID}",
        "sms",
        "opt-out",
        "staff",
        "*",
    )


def test_staff_sms_opt_out_turns_sms_consent_off(panel: PanelApp) -> None:
    staff = panel.sign_in()
    assert _sms_reminder(panel)["allowed"] is True
    panel.client.post(
        "/smart/consent",
        data={"csrf_token": staff.csrf_token, "channel": "sms", "action": "opt-out"},
    )
    assert _sms_reminder(panel) | {"used": None} == {
        "allowed": False,
        "reason": "opted-out",
        "used": None,
    }


def test_unknown_channel_is_refused(panel: PanelApp) -> None:
    staff = panel.sign_in()
    response = panel.client.post(
        "/smart/consent",
        data={"csrf_token": staff.csrf_token, "channel": "fax", "action": "opt-out"},
    )
    assert response.status_code == 400


def test_actions_are_audited_with_ids_only(panel: PanelApp, audit_lines: list[str]) -> None:
    ids = seed_messages(panel.sessions, NOW)
    staff = panel.sign_in()
    panel.client.post(
        f"/smart/messages/{ids['planned']}/cancel", data={"csrf_token": staff.csrf_token}
    )
    panel.client.post(
        "/smart/consent",
        data={"csrf_token": staff.csrf_token, "channel": "sms", "action": "opt-out"},
    )
    assert len(audit_lines) == 2
    assert ids["planned"] in audit_lines[0]
    text = " ".join(audit_lines)
    assert f"Practitioner/{PRACTITIONER_ID}" in text
    for phi in (MOBILE, "617-555-0123", EMAIL, "Okafor", "Mary"):
        assert phi not in text


def test_timeline_shows_the_sent_text_only_for_sent_messages(panel: PanelApp) -> None:
    seed_messages(panel.sessions, NOW)
    panel.sign_in()
    messages = panel.client.get("/smart/api/timeline").json()["messages"]
    with_text = {m["status"] for m in messages if m["text"]}
    assert with_text == {"sent"}


def test_timeline_masks_the_address_a_message_went_to(panel: PanelApp) -> None:
    seed_messages(panel.sessions, NOW)
    panel.sign_in()
    body = panel.client.get("/smart/api/timeline").text
    assert "***0123" in body
    assert MOBILE not in body
