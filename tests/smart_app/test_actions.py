"""Staff actions: cancel only pending messages, record opt-in/out; CSRF-checked and audited."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from fhir_bridge.fhir.auth import StaticBearerAuth
from fhir_bridge.fhir.client import EhrClient, RetryPolicy
from fhir_bridge.sandbox import EhrServer
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import LedgerEntry, PlannedMessage
from smart_app import service as smart_service
from tests.smart_app.conftest import NOW, PanelApp
from tests.smart_app.records import (
    EMAIL,
    MOBILE,
    OTHER_PATIENT_ID,
    PATIENT_ID,
    PRACTITIONER_ID,
    REPLY_TEXT,
    seed_inbox,
    seed_messages,
)


def _message(panel: PanelApp, message_id: str) -> PlannedMessage:
    with transaction(panel.sessions) as session:
        row = session.get(PlannedMessage, message_id)
        assert row is not None
        return row


ALL_PURPOSES = (
    "appointment-reminder",
    "care-coordination",
    "discharge-checkin",
    "health-tips",
    "refill-notice",
)


def _opt_out(csrf_token: str, *purposes: str) -> dict[str, object]:
    """The opt-out dialog's form: every purpose ticked unless some are named."""
    chosen = list(purposes) or list(ALL_PURPOSES)
    return {
        "csrf_token": csrf_token,
        "channel": "sms",
        "action": "opt-out",
        "purpose": chosen,
        "reason": "patient-request-phone",
        "note": "Daughter called; Sra. Okafor prefers a call",
    }


def _sms_reminder(panel: PanelApp) -> dict[str, object]:
    consent = panel.client.get(f"{panel.base}/api/timeline").json()["consent"]
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
        f"{panel.base}/messages/{ids['planned']}/cancel",
        data={"csrf_token": staff.csrf_token, "reason": "patient-request"},
    )
    assert response.status_code == 303
    row = _message(panel, ids["planned"])
    assert (row.status, row.reason) == ("cancelled", "cancelled-by-staff")


def test_cancellation_trace_records_the_staff_user(panel: PanelApp) -> None:
    ids = seed_messages(panel.sessions, NOW)
    staff = panel.sign_in()
    panel.client.post(
        f"{panel.base}/messages/{ids['planned']}/cancel",
        data={"csrf_token": staff.csrf_token, "reason": "patient-request"},
    )
    action = _message(panel, ids["planned"]).trace["staff_action"]
    assert action["by"] == f"Practitioner/{PRACTITIONER_ID}"
    assert action["action"] == "cancel"


@pytest.mark.parametrize("label", ["sent", "withheld"], ids=["sent", "withheld"])
def test_only_pending_messages_can_be_cancelled(panel: PanelApp, label: str) -> None:
    ids = seed_messages(panel.sessions, NOW)
    staff = panel.sign_in()
    response = panel.client.post(
        f"{panel.base}/messages/{ids[label]}/cancel",
        data={"csrf_token": staff.csrf_token, "reason": "patient-request"},
    )
    assert response.status_code == 409
    assert _message(panel, ids[label]).status == label


@pytest.mark.parametrize("token", ["", "not-the-session-token"], ids=["missing", "wrong"])
def test_cancel_without_the_sessions_csrf_token_is_refused(panel: PanelApp, token: str) -> None:
    ids = seed_messages(panel.sessions, NOW)
    panel.sign_in()
    response = panel.client.post(
        f"{panel.base}/messages/{ids['planned']}/cancel",
        data={"csrf_token": token, "reason": "patient-request"},
    )
    assert response.status_code == 403
    assert _message(panel, ids["planned"]).status == "planned"


def test_consent_action_without_csrf_token_records_nothing(panel: PanelApp) -> None:
    panel.sign_in()
    response = panel.client.post(
        f"{panel.base}/consent", data={"channel": "sms", "action": "opt-out"}
    )
    assert response.status_code == 403
    with transaction(panel.sessions) as session:
        assert session.query(LedgerEntry).count() == 0


def test_staff_sms_opt_out_is_a_staff_ledger_entry_for_the_patient(panel: PanelApp) -> None:
    staff = panel.sign_in()
    panel.client.post(
        f"{panel.base}/consent",
        data=_opt_out(staff.csrf_token),
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
        f"{panel.base}/consent",
        data=_opt_out(staff.csrf_token),
    )
    assert _sms_reminder(panel) | {"used": None} == {
        "allowed": False,
        "reason": "denied-by-consent",
        "source": "staff",
        "used": None,
    }


def test_unknown_channel_is_refused(panel: PanelApp) -> None:
    staff = panel.sign_in()
    response = panel.client.post(
        f"{panel.base}/consent",
        data={"csrf_token": staff.csrf_token, "channel": "fax", "action": "opt-out"},
    )
    assert response.status_code == 400


def test_actions_are_audited_with_ids_only(panel: PanelApp, audit_lines: list[str]) -> None:
    ids = seed_messages(panel.sessions, NOW)
    staff = panel.sign_in()
    panel.client.post(
        f"{panel.base}/messages/{ids['planned']}/cancel",
        data={"csrf_token": staff.csrf_token, "reason": "patient-request"},
    )
    panel.client.post(
        f"{panel.base}/consent",
        data=_opt_out(staff.csrf_token),
    )
    assert len([line for line in audit_lines if line.startswith("staff_")]) >= 2
    assert ids["planned"] in audit_lines[0]
    text = " ".join(audit_lines)
    assert f"Practitioner/{PRACTITIONER_ID}" in text
    for phi in (MOBILE, "617-555-0123", EMAIL, "Okafor", "Mary"):
        assert phi not in text


def test_timeline_shows_the_sent_text_only_for_sent_messages(panel: PanelApp) -> None:
    seed_messages(panel.sessions, NOW)
    panel.sign_in()
    messages = panel.client.get(f"{panel.base}/api/timeline").json()["messages"]
    with_text = {m["status"] for m in messages if m["text"]}
    assert with_text == {"sent"}


def test_timeline_masks_the_address_a_message_went_to(panel: PanelApp) -> None:
    seed_messages(panel.sessions, NOW)
    panel.sign_in()
    body = panel.client.get(f"{panel.base}/api/timeline").text
    assert "***0123" in body
    assert MOBILE not in body


def _our_consents(ehr: EhrServer) -> list[dict[str, Any]]:
    bundle = ehr.search("Consent", patient=f"Patient/{PATIENT_ID}")
    found = [entry["resource"] for entry in bundle.get("entry") or []]
    return [c for c in found if c.get("performer")]


def test_staff_opt_out_is_written_to_the_ehr_as_a_consent_signed_by_the_practitioner(
    panel: PanelApp, ehr: EhrServer
) -> None:
    staff = panel.sign_in()
    panel.client.post(f"{panel.base}/consent", data=_opt_out(staff.csrf_token))
    (consent,) = _our_consents(ehr)
    assert consent["performer"] == [{"reference": f"Practitioner/{PRACTITIONER_ID}"}]
    assert consent["provision"]["type"] == "deny"
    assert consent["provision"]["action"][0]["coding"][0]["code"] == "sms"
    assert "Okafor" not in str(consent)  # the free-text note stays in this app


def test_staff_opt_out_of_one_purpose_is_scoped_to_that_purpose(
    panel: PanelApp, ehr: EhrServer
) -> None:
    staff = panel.sign_in()
    panel.client.post(
        f"{panel.base}/consent", data=_opt_out(staff.csrf_token, "appointment-reminder")
    )
    (consent,) = _our_consents(ehr)
    assert [p["code"] for p in consent["provision"]["purpose"]] == ["appointment-reminder"]
    with transaction(panel.sessions) as session:
        purposes = [e.purpose for e in session.query(LedgerEntry)]
    assert purposes == ["appointment-reminder"]


def test_staff_opt_out_waits_for_the_relay_while_the_ehr_is_down(
    panel: PanelApp, ehr: EhrServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    staff = panel.sign_in()
    runtime = panel.app.state.runtime
    working = runtime.ehr
    down = EhrClient(
        "http://127.0.0.1:9/fhir",
        auth=StaticBearerAuth("t"),
        retry=RetryPolicy(max_attempts=1),
        timeout=2,
    )
    monkeypatch.setitem(runtime._cache, "ehr", down)
    response = panel.client.post(f"{panel.base}/consent", data=_opt_out(staff.csrf_token))
    assert response.status_code == 303
    assert _our_consents(ehr) == []
    monkeypatch.setitem(runtime._cache, "ehr", working)
    (pending,) = smart_service.staff_consents_to_relay(runtime)
    assert smart_service.write_staff_consent(runtime, pending) == "written"
    assert len(_our_consents(ehr)) == 1


def test_consent_action_without_a_reason_is_refused(panel: PanelApp) -> None:
    staff = panel.sign_in()
    form = _opt_out(staff.csrf_token) | {"reason": ""}
    assert panel.client.post(f"{panel.base}/consent", data=form).status_code == 400


def test_cancel_without_a_reason_is_refused(panel: PanelApp) -> None:
    ids = seed_messages(panel.sessions, NOW)
    staff = panel.sign_in()
    response = panel.client.post(
        f"{panel.base}/messages/{ids['planned']}/cancel", data={"csrf_token": staff.csrf_token}
    )
    assert response.status_code == 400
    assert _message(panel, ids["planned"]).status == "planned"


def test_staff_cancel_writes_a_not_done_communication_naming_the_practitioner(
    panel: PanelApp, ehr: EhrServer
) -> None:
    ids = seed_messages(panel.sessions, NOW)
    staff = panel.sign_in()
    panel.client.post(
        f"{panel.base}/messages/{ids['planned']}/cancel",
        data={"csrf_token": staff.csrf_token, "reason": "wrong-details"},
    )
    row = _message(panel, ids["planned"])
    assert (row.communication_status, row.communication_id is not None) == ("written", True)
    communication = ehr.read("Communication", str(row.communication_id))
    assert communication["status"] == "not-done"
    assert communication["statusReason"]["coding"][0]["code"] == "cancelled-by-staff"
    authors = [n.get("authorReference") for n in communication["note"]]
    assert {"reference": f"Practitioner/{PRACTITIONER_ID}"} in authors


def test_timeline_names_the_appointment_in_the_place_of_cares_local_time(
    panel: PanelApp,
) -> None:
    ids = seed_messages(panel.sessions, NOW)
    panel.sign_in()
    messages = panel.client.get(f"{panel.base}/api/timeline").json()["messages"]
    planned = next(m for m in messages if m["id"] == ids["planned"])
    assert planned["about"] == "Appointment · Thu Dec 3, 2:30 PM EST"
    assert planned["when_local"].endswith("EST")
    withheld = next(m for m in messages if m["id"] == ids["withheld"])
    assert (withheld["status_label"], withheld["reason_label"]) == ("Not sent", "Patient opted out")


def test_inbox_shows_the_replies_text_with_a_crisis_first(panel: PanelApp) -> None:
    seed_inbox(panel.sessions, NOW)
    panel.sign_in()
    items = panel.client.get(f"{panel.base}/api/inbox").json()
    assert [i["kind"] for i in items] == ["crisis", "message"]
    assert items[1]["text"] == REPLY_TEXT
    assert "crisis-alert" in panel.client.get(f"{panel.base}/panel").text


def test_marking_a_reply_handled_records_who_and_keeps_it_listed(panel: PanelApp) -> None:
    ids = seed_inbox(panel.sessions, NOW)
    staff = panel.sign_in()
    response = panel.client.post(
        f"{panel.base}/inbox/{ids['message']}/handled", data={"csrf_token": staff.csrf_token}
    )
    assert response.status_code == 303
    item = next(
        i for i in panel.client.get(f"{panel.base}/api/inbox").json() if i["id"] == ids["message"]
    )
    assert (item["open"], item["handled_by"]) == (False, f"Practitioner/{PRACTITIONER_ID}")


def test_assigning_a_reply_to_me_names_me(panel: PanelApp) -> None:
    ids = seed_inbox(panel.sessions, NOW)
    staff = panel.sign_in()
    panel.client.post(
        f"{panel.base}/inbox/{ids['crisis']}/assign",
        data={"csrf_token": staff.csrf_token, "to": "me"},
    )
    item = next(
        i for i in panel.client.get(f"{panel.base}/api/inbox").json() if i["id"] == ids["crisis"]
    )
    assert (item["assigned_to"], item["assigned_label"]) == (
        f"Practitioner/{PRACTITIONER_ID}",
        "You",
    )


def test_another_patients_reply_cannot_be_handled(panel: PanelApp) -> None:
    ids = seed_inbox(panel.sessions, NOW, patient_id=OTHER_PATIENT_ID)
    staff = panel.sign_in()
    response = panel.client.post(
        f"{panel.base}/inbox/{ids['message']}/handled", data={"csrf_token": staff.csrf_token}
    )
    assert response.status_code == 409
