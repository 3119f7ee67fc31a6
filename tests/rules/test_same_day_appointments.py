"""Same-day appointments: one message for the day, naming a place only when it is one place."""

from __future__ import annotations

from typing import Any

from rules.engine import plan_for_patient
from rules.model import Plan
from tests.rules.factories import (
    LOCATION_REF,
    appointment,
    config_with,
    location,
    snapshot,
    utc,
    withheld_reasons,
)

NOW = utc("2026-11-23T12:00:00")
EASTSIDE_REF = "Location/eQ1rN7ZsYv0bWm3Kd8TfLpA2"
EASTSIDE = location(id="eQ1rN7ZsYv0bWm3Kd8TfLpA2", name="Eastside Imaging Center")
LISTED = {
    "locations": {
        LOCATION_REF: {"patient_facing": True},
        EASTSIDE_REF: {"patient_facing": True, "clinic_name": "Eastside Imaging"},
    }
}
PLACES = {LOCATION_REF: location(), EASTSIDE_REF: EASTSIDE}


def _at(place: str | None, start: str, ident: str) -> dict[str, Any]:
    """The follow-up fixture at another place (or none), keeping patient and practitioner."""
    resource = appointment(start=start, ident=ident)
    participants = [
        p for p in resource["participant"] if "Location/" not in p["actor"]["reference"]
    ]
    if place is not None:
        participants.append(
            {"actor": {"reference": place}, "required": "required", "status": "accepted"}
        )
    resource["participant"] = participants
    return resource


def _plan(*appointments: dict[str, Any], caps: dict[str, int] | None = None) -> Plan:
    overrides: dict[str, Any] = {**LISTED, "caps": caps or {"per_day": 10, "per_week": 50}}
    return plan_for_patient(
        snapshot(*appointments, locations=PLACES, english=True), config_with(overrides), NOW
    )


def test_two_visits_at_one_place_name_it_once_after_both_times() -> None:
    plan = _plan(
        _at(LOCATION_REF, "2026-12-01T14:00:00Z", "eAM1"),
        _at(LOCATION_REF, "2026-12-01T19:15:00Z", "ePM2"),
    )

    variables = plan.messages[0].variables
    assert (variables["time"], variables["location_name"]) == (
        "9:00 AM and 2:15 PM",
        "Riverside Family Medicine",
    )


def test_visits_at_two_places_share_one_message_that_names_neither() -> None:
    plan = _plan(
        _at(LOCATION_REF, "2026-12-01T14:00:00Z", "eAM1"),
        _at(EASTSIDE_REF, "2026-12-01T19:15:00Z", "ePM2"),
    )

    assert len({m.key.rsplit("|", 1)[0] for m in plan.messages}) == 1
    variables = plan.messages[0].variables
    assert (variables["time"], variables["location_name"]) == ("9:00 AM and 2:15 PM", "")


def test_visits_at_two_places_are_signed_by_the_organisation_not_one_site() -> None:
    plan = _plan(
        _at(EASTSIDE_REF, "2026-12-01T14:00:00Z", "eAM1"),
        _at(LOCATION_REF, "2026-12-01T19:15:00Z", "ePM2"),
    )

    assert plan.messages[0].variables["clinic_name"] == "Riverside Health"


def test_a_visit_without_a_place_and_one_with_a_place_name_no_place() -> None:
    plan = _plan(
        _at(None, "2026-12-01T14:00:00Z", "eAM1"),
        _at(LOCATION_REF, "2026-12-01T19:15:00Z", "ePM2"),
    )

    assert plan.messages[0].variables["location_name"] == ""


def test_visits_without_a_place_are_combined_too() -> None:
    plan = _plan(
        _at(None, "2026-12-01T14:00:00Z", "eAM1"),
        _at(None, "2026-12-01T19:15:00Z", "ePM2"),
    )

    assert {m.template for m in plan.messages} == {"appointment-reminder-combined"}
    assert plan.messages[0].about == ("Appointment/eAM1", "Appointment/ePM2")


def test_with_one_message_a_day_the_second_sites_visit_is_still_in_every_reminder() -> None:
    plan = _plan(
        _at(LOCATION_REF, "2026-12-01T14:00:00Z", "eAM1"),
        _at(EASTSIDE_REF, "2026-12-01T19:15:00Z", "ePM2"),
        caps={"per_day": 1, "per_week": 3},
    )

    assert [m.about for m in plan.messages] == [("Appointment/eAM1", "Appointment/ePM2")] * 3
    assert "cap-reached" not in withheld_reasons(plan).values()
