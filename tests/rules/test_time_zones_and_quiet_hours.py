"""Send times in the recipient's zone: DST, quiet hours and where the zone comes from."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from rules.engine import plan_for_patient
from rules.timing import (
    InvalidOffsetError,
    QuietHours,
    before,
    into_window,
    parse_offset,
)
from tests.rules.factories import (
    LOCATION_REF,
    TZ_EXTENSION,
    appointment,
    config_with,
    location,
    patient,
    send_times,
    snapshot,
    utc,
)

BOSTON = ZoneInfo("America/New_York")
WINDOW = QuietHours(start=time(8, 0), end=time(21, 0))
APPT = "Appointment/e3Yh7qKdUUtrpXNb1gB3Nig3"


@pytest.mark.parametrize(
    ("start", "offset", "expected"),
    [
        pytest.param(
            "2026-11-02T15:00:00", "P3D", "2026-10-30T14:00:00", id="fall-back-day-keeps-wall-clock"
        ),
        pytest.param(
            "2027-03-15T13:00:00",
            "P3D",
            "2027-03-12T14:00:00",
            id="spring-forward-day-keeps-wall-clock",
        ),
        pytest.param(
            "2027-03-14T08:30:00", "PT8H", "2027-03-14T00:30:00", id="hours-are-exact-across-gap"
        ),
        pytest.param(
            "2026-11-01T07:30:00", "PT2H", "2026-11-01T05:30:00", id="hours-are-exact-across-fold"
        ),
    ],
)
def test_offsets_are_wall_clock_days_and_exact_hours_across_dst(
    start: str, offset: str, expected: str
) -> None:
    assert before(utc(start), parse_offset(offset), BOSTON) == utc(expected)


def test_day_reminder_across_dst_change_keeps_local_time_in_the_plan() -> None:
    config = config_with({"caps": {"per_day": 10, "per_week": 50}})
    # Monday 2026-11-02 10:00 EST; three days earlier is Friday 10:00 EDT (14:00Z).
    plan = plan_for_patient(
        snapshot(appointment(start="2026-11-02T15:00:00Z")), config, utc("2026-10-20T12:00:00")
    )

    assert send_times(plan)[f"appointment-reminder|{APPT}|P3D"] == "2026-10-30T14:00:00+00:00"


@pytest.mark.parametrize(
    ("candidate", "deadline", "expected", "action"),
    [
        pytest.param("2026-12-01T15:00:00", None, "2026-12-01T15:00:00", None, id="inside"),
        pytest.param(
            "2026-12-01T10:00:00",
            None,
            "2026-12-01T13:00:00",
            "moved-after-quiet-hours",
            id="early-morning-moves-to-08:00",
        ),
        pytest.param(
            "2026-12-02T03:00:00",
            None,
            "2026-12-02T13:00:00",
            "moved-after-quiet-hours",
            id="late-evening-moves-to-next-08:00",
        ),
        pytest.param(
            "2026-12-01T11:30:00",
            "2026-12-01T12:30:00",
            "2026-12-01T02:00:00",
            "moved-before-quiet-hours",
            id="before-7:30-start-moves-to-previous-21:00",
        ),
        pytest.param(
            "2026-12-02T02:00:00",
            None,
            "2026-12-02T02:00:00",
            None,
            id="21:00-is-inside",
        ),
    ],
)
def test_quiet_hours_move_sends_into_the_window_never_drop_them(
    candidate: str, deadline: str | None, expected: str, action: str | None
) -> None:
    moved, what = into_window(utc(candidate), BOSTON, WINDOW, utc(deadline) if deadline else None)

    assert (moved, what) == (utc(expected), action)


def test_two_hour_reminder_for_early_appointment_goes_out_the_evening_before() -> None:
    config = config_with({"caps": {"per_day": 10, "per_week": 50}})
    plan = plan_for_patient(
        snapshot(appointment(start="2026-12-01T12:30:00Z")), config, utc("2026-11-23T12:00:00")
    )

    message = {m.key: m for m in plan.messages}[f"appointment-reminder|{APPT}|PT2H"]
    assert message.send_at == utc("2026-12-01T02:00:00")
    assert message.trace["quiet_hours"] == "moved-before-quiet-hours"


def _zone_used(snap_patient: dict, clinic: dict, overrides: dict) -> tuple[str, str]:
    config = config_with({"caps": {"per_day": 10, "per_week": 50}, **overrides})
    plan = plan_for_patient(
        snapshot(appointment(), patient_resource=snap_patient, locations={LOCATION_REF: clinic}),
        config,
        utc("2026-11-23T12:00:00"),
    )
    trace = plan.messages[0].trace
    return trace["zone"], trace["zone_source"]


def _with_zone(resource: dict, zone: str) -> dict:
    resource["extension"] = [{"url": TZ_EXTENSION, "valueCode": zone}]
    return resource


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        pytest.param(
            "patient", ("America/Los_Angeles", "patient-extension"), id="patient-extension-wins"
        ),
        pytest.param("home", ("America/New_York", "patient-address"), id="home-address-next"),
        pytest.param(
            "location", ("America/Chicago", "location-extension"), id="location-extension"
        ),
        pytest.param("config", ("America/Denver", "location-config"), id="location-config"),
        pytest.param("none", ("America/New_York", "default"), id="organisation-default"),
    ],
)
def test_recipient_time_zone_comes_from_patient_then_home_then_place_of_care(
    who: str, expected: tuple[str, str]
) -> None:
    person = _with_zone(patient(), "America/Los_Angeles") if who == "patient" else patient()
    if who != "home":
        person.pop("address")
    clinic = location(extension=None, address=None)
    if who in ("patient", "home", "location"):
        clinic = _with_zone(clinic, "America/Chicago")
    overrides = {"locations": {LOCATION_REF: {"timezone": "America/Denver"}}}

    assert _zone_used(person, clinic, overrides if who == "config" else {}) == expected


def test_unknown_time_zone_name_on_patient_falls_back_instead_of_failing() -> None:
    person = _with_zone(patient(), "Mars/Olympus_Mons")
    person.pop("address")

    assert _zone_used(person, location(), {}) == ("America/New_York", "location-extension")


def test_a_clinic_address_without_a_zone_extension_sets_the_time_shown_and_the_send_hour() -> None:
    """The issue's case: 08:00 at a Los Angeles clinic, no extension, patient in CA."""
    person = patient()
    person["address"] = [{"use": "home", "city": "Pasadena", "state": "CA", "postalCode": "91101"}]
    clinic = location(
        extension=None,
        address={
            "line": ["1200 Wilshire Blvd"],
            "city": "Los Angeles",
            "state": "CA",
            "postalCode": "90017",
        },
    )
    config = config_with({"caps": {"per_day": 10, "per_week": 50}})
    plan = plan_for_patient(
        snapshot(
            appointment(start="2026-12-01T08:00:00-08:00"),
            patient_resource=person,
            locations={LOCATION_REF: clinic},
        ),
        config,
        utc("2026-11-23T12:00:00"),
    )

    two_hours = {m.key: m for m in plan.messages}[f"appointment-reminder|{APPT}|PT2H"]
    assert two_hours.trace["zone"] == "America/Los_Angeles"
    assert two_hours.variables["time"] in ("8:00 AM", "8:00")
    assert "start-offset-used-as-check" in two_hours.trace["zone_notes"]
    local = two_hours.send_at.astimezone(ZoneInfo("America/Los_Angeles"))
    assert local.hour >= 8 and local < datetime(
        2026, 12, 1, 8, tzinfo=ZoneInfo("America/Los_Angeles")
    )


@pytest.mark.parametrize(
    ("text", "days", "seconds"),
    [("P3D", 3, 0), ("PT2H", 0, 7200), ("P1DT12H", 1, 43200), ("P2W", 14, 0), ("PT90M", 0, 5400)],
)
def test_supported_offsets_parse(text: str, days: int, seconds: int) -> None:
    offset = parse_offset(text)

    assert (offset.days, offset.seconds) == (days, seconds)


@pytest.mark.parametrize("text", ["P1M", "3 days", "P", "PT", "-P1D", "P1.5D"])
def test_vague_or_malformed_offsets_are_rejected(text: str) -> None:
    with pytest.raises(InvalidOffsetError):
        parse_offset(text)
