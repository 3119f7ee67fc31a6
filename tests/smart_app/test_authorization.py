"""Only a launched session sees anything, and only its own patient; headers allow EHR framing."""

from __future__ import annotations

from fhir_bridge.sandbox import EhrServer
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import PlannedMessage, StaffInboxItem
from tests.smart_app.conftest import NOW, PanelApp
from tests.smart_app.records import OTHER_PATIENT_ID, PATIENT_ID, seed_messages


def test_panel_without_a_session_asks_to_launch_from_the_chart(panel: PanelApp) -> None:
    response = panel.client.get("/smart/panel")
    assert response.status_code == 401
    assert "again from the patient" in response.text


def test_json_timeline_without_a_session_is_401(panel: PanelApp) -> None:
    response = panel.client.get("/smart/api/timeline")
    assert response.status_code == 401
    assert response.json() == {"error": "session-required"}


def test_unknown_session_cookie_is_treated_as_no_session(panel: PanelApp) -> None:
    panel.client.cookies.set("fhir_bridge_staff", "guessed", domain="testserver.local")
    assert panel.client.get("/smart/api/timeline").status_code == 401


def test_timeline_of_another_patient_is_forbidden(panel: PanelApp) -> None:
    panel.sign_in()
    response = panel.client.get(
        "/smart/api/timeline", params={"patient": f"Patient/{OTHER_PATIENT_ID}"}
    )
    assert response.status_code == 403


def test_panel_for_another_patient_is_forbidden(panel: PanelApp) -> None:
    panel.sign_in()
    response = panel.client.get("/smart/panel", params={"patient": f"Patient/{OTHER_PATIENT_ID}"})
    assert response.status_code == 403


def test_cancelling_another_patients_message_is_forbidden(panel: PanelApp) -> None:
    others = seed_messages(panel.sessions, NOW, patient_id=OTHER_PATIENT_ID)
    staff = panel.sign_in()
    response = panel.client.post(
        f"/smart/messages/{others['planned']}/cancel", data={"csrf_token": staff.csrf_token}
    )
    assert response.status_code == 403
    with transaction(panel.sessions) as session:
        assert session.get(PlannedMessage, others["planned"]).status == "planned"  # type: ignore[union-attr]


def test_timeline_lists_only_the_launch_patients_messages(panel: PanelApp) -> None:
    mine = seed_messages(panel.sessions, NOW)
    seed_messages(panel.sessions, NOW, patient_id=OTHER_PATIENT_ID)
    panel.sign_in()
    ids = {m["id"] for m in panel.client.get("/smart/api/timeline").json()["messages"]}
    assert ids == set(mine.values())


def test_panel_may_be_framed_by_the_ehr_only(panel: PanelApp, ehr: EhrServer) -> None:
    panel.sign_in()
    policy = panel.client.get("/smart/panel").headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert f"frame-ancestors 'self' {ehr.origin}" in policy


def test_refusals_carry_the_security_headers_too(panel: PanelApp) -> None:
    response = panel.client.get("/smart/panel")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "no-referrer"


def test_staff_inbox_without_a_session_is_401(panel: PanelApp) -> None:
    assert panel.client.get("/smart/api/inbox").status_code == 401


def test_staff_inbox_lists_only_the_launch_patients_items(panel: PanelApp) -> None:
    with transaction(panel.sessions) as session:
        for inbound_id, patient_id in ((1, PATIENT_ID), (2, OTHER_PATIENT_ID)):
            session.add(
                StaffInboxItem(
                    inbound_id=inbound_id,
                    patient_ref=f"Patient/{patient_id}",
                    kind="message",
                    priority="routine",
                    communication_ref=f"Communication/c{inbound_id}",
                    created_at=NOW,
                )
            )
    panel.sign_in()

    items = panel.client.get("/smart/api/inbox").json()

    assert [item["communication"] for item in items] == ["Communication/c1"]
