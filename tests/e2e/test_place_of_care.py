"""End to end on real parts: the live pipeline reads the appointment's Location through its
reference, exactly as ``preview`` does with a Bundle, so the reminder a patient receives
shows the time at the place of care and never a place name the clinic did not list."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from rules.config import load_rules_config
from rules.formatting import format_time
from rules.preview import preview
from rules.templates import UNSUBSCRIBE_PLACEHOLDER
from tests.e2e.fixtures import appointment, patient
from tests.e2e.harness import running_stack, wait_for

pytestmark = pytest.mark.integration

LOS_ANGELES = ZoneInfo("America/Los_Angeles")


def _wilshire_location() -> dict[str, Any]:
    """A Location as Epic sends it: an address, no timezone extension, a revealing name."""
    return {
        "resourceType": "Location",
        "status": "active",
        "name": "Wilshire Cancer Institute Infusion Suite",
        "address": {
            "use": "work",
            "line": ["1200 Wilshire Blvd", "Suite 400"],
            "city": "Los Angeles",
            "state": "CA",
            "postalCode": "90017",
            "country": "US",
        },
        "telecom": [{"system": "phone", "value": "213-555-0144"}],
    }


def test_live_reminder_equals_preview_and_shows_the_clinics_local_time(tmp_path: Path) -> None:
    with running_stack(tmp_path, offsets=["PT1H"]) as stack:
        stack.bridge.start_worker()
        location = stack.ehr.create(_wilshire_location())
        person = patient("MRN-3001", "Lupe", "Ortiz", "lupe.ortiz@example.net")
        person["address"] = [
            {"use": "home", "line": ["88 Vermont Ave"], "city": "Los Angeles", "state": "CA"}
        ]
        created_patient = stack.ehr.create(person)
        start = (datetime.now(UTC) + timedelta(hours=1, seconds=10)).replace(microsecond=0)
        booking = appointment(created_patient["id"], start)
        booking["participant"].append(
            {"actor": {"reference": f"Location/{location['id']}"}, "status": "accepted"}
        )
        planned_at = datetime.now(UTC)
        created = stack.ehr.create(booking)

        wait_for(
            lambda: [
                c for c in stack.communications(created_patient["id"]) if c["status"] == "completed"
            ],
            timeout=90,
            what="a completed Communication",
            logs=stack.bridge.logs,
        )

        (email,) = [m for m in stack.smtp.messages if "lupe.ortiz" in str(m["To"])]
        body = email.get_body(preferencelist=("plain",)).get_content()  # type: ignore[attr-defined]
        delivered = re.sub(r"\S+/unsubscribe/email/\S+", UNSUBSCRIBE_PLACEHOLDER, body)
        bundle = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {"resource": stack.ehr.read("Patient", created_patient["id"])},
                {"resource": stack.ehr.read("Appointment", created["id"])},
                {"resource": stack.ehr.read("Location", location["id"])},
            ],
        }
        config = load_rules_config(tmp_path / "rules.yaml")
        (expected,) = [m for m in preview(bundle, config, planned_at) if m["status"] == "planned"]

    local_time = format_time(start.astimezone(LOS_ANGELES).time(), "en")
    assert local_time in delivered
    assert expected["trace"]["zone"] == "America/Los_Angeles"
    assert delivered.replace("\r\n", "\n").strip() == str(expected["text"]).strip()
    assert "Cancer" not in delivered and "Infusion" not in delivered
