"""Staff record a health-tips opt-in in the panel: chosen explicitly (with every other
purpose, it stays purpose-specific), signed by the Practitioner; until then the consent
grid says health tips need the patient's opt-in."""

from __future__ import annotations

from typing import Any

from fhir_bridge.sandbox import EhrServer
from tests.smart_app.conftest import PanelApp
from tests.smart_app.records import PATIENT_ID, PRACTITIONER_ID

EVERY_PURPOSE = [
    "appointment-reminder",
    "care-coordination",
    "discharge-checkin",
    "health-tips",
    "refill-notice",
]


def _sms_health_tips(panel: PanelApp) -> dict[str, Any]:
    consent = panel.client.get(f"{panel.base}/api/timeline").json()["consent"]
    sms = next(row for row in consent if row["channel"] == "sms")
    return dict(sms["purposes"]["health-tips"])


def _opt_in(panel: PanelApp, csrf_token: str, purposes: list[str]) -> None:
    response = panel.client.post(
        f"{panel.base}/consent",
        data={
            "csrf_token": csrf_token,
            "channel": "sms",
            "action": "opt-in",
            "purpose": purposes,
            "reason": "patient-request-phone",
            "note": "Asked at check-in for the monthly health tips",
        },
    )
    assert response.status_code == 303


def test_the_grid_shows_health_tips_as_needing_opt_in(panel: PanelApp) -> None:
    panel.sign_in()

    cell = _sms_health_tips(panel)

    assert (cell["allowed"], cell["reason"]) == (False, "opt-in-required")
    assert "Needs the patient" in panel.client.get(panel.url("/panel")).text


def test_staff_opt_in_to_every_purpose_names_health_tips_and_the_practitioner(
    panel: PanelApp,
    ehr: EhrServer,
) -> None:
    staff = panel.sign_in()

    _opt_in(panel, staff.csrf_token, EVERY_PURPOSE)

    (consent,) = [
        c["resource"]
        for c in ehr.search("Consent", patient=f"Patient/{PATIENT_ID}").get("entry") or []
        if c["resource"].get("performer")
    ]
    codes = [p["code"] for p in consent["provision"]["purpose"]]
    assert "health-tips" in codes and "HMARKT" in codes
    assert consent["performer"] == [{"reference": f"Practitioner/{PRACTITIONER_ID}"}]
    assert _sms_health_tips(panel)["allowed"] is True
