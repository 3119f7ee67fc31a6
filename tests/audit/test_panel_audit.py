"""The staff panel leaves one AuditEvent per panel open, staff action and refused request,
with the practitioner and patient, and nothing from the URL's query (launch code, state)."""

from __future__ import annotations

import json

from sqlalchemy import select

from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import AuditEventRecord
from tests.smart_app.conftest import NOW, PanelApp
from tests.smart_app.records import PATIENT_ID, PRACTITIONER_ID, seed_messages

PATIENT = f"Patient/{PATIENT_ID}"
PRACTITIONER = f"Practitioner/{PRACTITIONER_ID}"


def _audit_events(panel: PanelApp) -> list[AuditEventRecord]:
    with transaction(panel.sessions) as session:
        return list(session.scalars(select(AuditEventRecord).order_by(AuditEventRecord.recorded)))


def test_opening_the_panel_leaves_one_patient_read_by_the_practitioner(panel: PanelApp) -> None:
    panel.sign_in()
    assert panel.client.get(panel.url("/panel")).status_code == 200
    [audit] = _audit_events(panel)
    assert (audit.type_code, audit.subtype_code, audit.action) == ("rest", "read", "R")
    assert (audit.agent_ref, audit.patient_ref, audit.push_status) == (
        PRACTITIONER,
        PATIENT,
        "pending",
    )


def test_a_refused_callback_leaves_one_security_alert_without_the_code_or_state(
    panel: PanelApp,
) -> None:
    response = panel.client.get(
        "/smart/callback",
        params={"code": "auth-code-7Hq2", "state": "state-x9Lm3"},
        headers={"accept": "application/json"},
    )
    assert response.status_code == 400
    [audit] = _audit_events(panel)
    assert (audit.type_code, audit.subtype_code, audit.outcome) == ("110113", "110122", "4")
    assert audit.resource["outcomeDesc"] == response.json()["error"]
    stored = json.dumps(audit.resource)
    assert "auth-code-7Hq2" not in stored and "state-x9Lm3" not in stored
    assert "GET /smart/callback" in stored


def test_a_refused_action_in_a_session_names_the_practitioner_and_patient(
    panel: PanelApp,
) -> None:
    ids = seed_messages(panel.sessions, NOW)
    panel.sign_in()
    response = panel.client.post(
        panel.url(f"/messages/{ids['planned']}/cancel"),
        data={"csrf_token": "not-the-session-token", "reason": "patient-request"},
    )
    assert response.status_code == 403
    [audit] = _audit_events(panel)
    assert (audit.type_code, audit.resource["outcomeDesc"]) == ("110113", "csrf-token-invalid")
    assert (audit.agent_ref, audit.patient_ref) == (PRACTITIONER, PATIENT)


def test_a_staff_cancel_is_audited_as_an_update_of_the_message_from_the_panel(
    panel: PanelApp,
) -> None:
    ids = seed_messages(panel.sessions, NOW)
    staff = panel.sign_in()
    response = panel.client.post(
        panel.url(f"/messages/{ids['planned']}/cancel"),
        data={"csrf_token": staff.csrf_token, "reason": "patient-request"},
    )
    assert response.status_code == 303
    [audit] = _audit_events(panel)
    assert (audit.action, audit.agent_ref, audit.patient_ref) == ("U", PRACTITIONER, PATIENT)
    data = next(e for e in audit.resource["entity"] if e["role"]["code"] == "4")
    assert data["what"]["identifier"]["value"] == ids["planned"]
    panel_agent = next(
        a for a in audit.resource["agent"] if a["type"]["coding"][0]["code"] == "110153"
    )
    assert panel_agent["network"]["address"] == "testclient"
