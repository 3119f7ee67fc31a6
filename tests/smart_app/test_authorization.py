"""Only a launched session sees anything, and only its own patient; headers allow EHR framing;
refusals read in plain words; no launch code, state or handle reaches a log line."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from fhir_bridge.logging_setup import configure_logging, redact_path
from fhir_bridge.sandbox import EhrServer
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import PlannedMessage, StaffInboxItem
from tests.smart_app.conftest import NOW, PanelApp
from tests.smart_app.records import OTHER_PATIENT_ID, PATIENT_ID, seed_messages


def test_panel_without_a_session_asks_to_launch_from_the_chart(panel: PanelApp) -> None:
    response = panel.client.get("/smart/l/no-such-launch/panel")
    assert response.status_code == 401
    assert "Your session has ended" in response.text
    assert "again from the patient" in response.text
    assert '<code id="error-code">session-required</code>' in response.text


def test_json_timeline_without_a_session_is_401(panel: PanelApp) -> None:
    response = panel.client.get("/smart/l/no-such-launch/api/timeline")
    assert response.status_code == 401
    assert response.json() == {"error": "session-required"}


def test_a_guessed_handle_is_treated_as_no_session(panel: PanelApp) -> None:
    panel.sign_in()
    guessed = panel.base[:-4] + "AAAA"
    assert panel.client.get(f"{guessed}/api/timeline").status_code == 401


def test_the_old_unbound_panel_address_no_longer_exists(panel: PanelApp) -> None:
    panel.sign_in()
    assert panel.client.get("/smart/panel").status_code == 404


def test_error_pages_are_styled_without_a_session(panel: PanelApp) -> None:
    response = panel.client.get("/smart/static/shell.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")


def test_timeline_of_another_patient_is_forbidden(panel: PanelApp) -> None:
    panel.sign_in()
    response = panel.client.get(
        panel.url("/api/timeline"), params={"patient": f"Patient/{OTHER_PATIENT_ID}"}
    )
    assert response.status_code == 403


def test_panel_for_another_patient_is_forbidden(panel: PanelApp) -> None:
    panel.sign_in()
    response = panel.client.get(
        panel.url("/panel"), params={"patient": f"Patient/{OTHER_PATIENT_ID}"}
    )
    assert response.status_code == 403


def test_cancelling_another_patients_message_is_forbidden(panel: PanelApp) -> None:
    others = seed_messages(panel.sessions, NOW, patient_id=OTHER_PATIENT_ID)
    staff = panel.sign_in()
    response = panel.client.post(
        panel.url(f"/messages/{others['planned']}/cancel"),
        data={"csrf_token": staff.csrf_token, "reason": "patient-request"},
    )
    assert response.status_code == 403
    with transaction(panel.sessions) as session:
        assert session.get(PlannedMessage, others["planned"]).status == "planned"  # type: ignore[union-attr]


def test_timeline_lists_only_the_launch_patients_messages(panel: PanelApp) -> None:
    mine = seed_messages(panel.sessions, NOW)
    seed_messages(panel.sessions, NOW, patient_id=OTHER_PATIENT_ID)
    panel.sign_in()
    ids = {m["id"] for m in panel.client.get(panel.url("/api/timeline")).json()["messages"]}
    assert ids == set(mine.values())


def test_panel_may_be_framed_by_the_ehr_only(panel: PanelApp, ehr: EhrServer) -> None:
    panel.sign_in()
    policy = panel.client.get(panel.url("/panel")).headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert f"frame-ancestors 'self' {ehr.origin}" in policy


def test_refusals_carry_the_security_headers_too(panel: PanelApp) -> None:
    response = panel.client.get("/smart/l/no-such-launch/panel")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "no-referrer"


def test_staff_inbox_without_a_session_is_401(panel: PanelApp) -> None:
    assert panel.client.get("/smart/l/no-such-launch/api/inbox").status_code == 401


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

    items = panel.client.get(panel.url("/api/inbox")).json()

    assert [item["communication"] for item in items] == ["Communication/c1"]


@pytest.fixture
def stderr_logging() -> Iterator[None]:
    """The service's own logging set-up (DEBUG, so access lines print), restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("DEBUG", "text")
    yield
    root.handlers[:], level = saved
    root.setLevel(level)


def test_access_log_lines_keep_no_launch_code_state_or_handle(
    capsys: pytest.CaptureFixture[str], stderr_logging: None
) -> None:
    access = logging.getLogger("uvicorn.access")
    for path in (
        "/smart/callback?code=Zm9vYmFyY29kZQ&state=c3RhdGUtdmFsdWUtMTIzNDU2",
        "/smart/launch?iss=https%3A%2F%2Fehr.example.org%2Ffhir&launch=bGF1bmNoLWlk",
        "/smart/l/aGFuZGxlLXNlY3JldC12YWx1ZQ/panel?notice=cancelled",
    ):
        access.info('%s - "%s %s HTTP/%s" %d', "10.0.0.7:51234", "GET", path, "1.1", 303)

    printed = capsys.readouterr().err
    for secret in ("Zm9vYmFyY29kZQ", "c3RhdGUtdmFsdWUtMTIzNDU2", "bGF1bmNoLWlk", "aGFuZGxl"):
        assert secret not in printed
    assert "/smart/callback?code=…&state=…" in printed
    assert "/smart/l/…/panel" in printed


def test_paths_without_secrets_are_logged_as_they_are() -> None:
    assert redact_path("/notifications/sub-42") == "/notifications/sub-42"
    assert redact_path("/unsubscribe/email/eyJhbGciOi.sig") == "/unsubscribe/email/…"
