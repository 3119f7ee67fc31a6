"""Appointment reminders: cadence, stop states, reschedules, catch-up, same-day merging."""

from __future__ import annotations

from functools import cache

import pytest

from rules.config import RulesConfig
from rules.engine import NaiveDatetimeError, plan_for_patient
from tests.rules.factories import (
    LOCATION_REF,
    PATIENT_REF,
    appointment,
    config_with,
    keys,
    location,
    send_times,
    sent,
    snapshot,
    utc,
    withheld_reasons,
)

NOW = utc("2026-11-23T12:00:00")
APPT = "Appointment/e3Yh7qKdUUtrpXNb1gB3Nig3"


@cache
def uncapped() -> RulesConfig:
    """Shipped rules with caps out of the way, so cadence is tested on its own."""
    return config_with({"caps": {"per_day": 10, "per_week": 50}})


def test_booked_appointment_gets_three_reminders_at_default_offsets() -> None:
    plan = plan_for_patient(snapshot(appointment()), uncapped(), NOW)

    assert send_times(plan) == {
        f"appointment-reminder|{APPT}|P3D": "2026-11-28T15:30:00+00:00",
        f"appointment-reminder|{APPT}|P1D": "2026-11-30T15:30:00+00:00",
        f"appointment-reminder|{APPT}|PT2H": "2026-12-01T13:30:00+00:00",
    }


def test_reminder_variables_hold_only_allowlisted_non_clinical_values() -> None:
    plan = plan_for_patient(snapshot(appointment(), english=True), uncapped(), NOW)

    assert dict(plan.messages[0].variables) == {
        "first_name": "Mari",
        "clinic_name": "Riverside Health",
        "clinic_phone": "(555) 010-0100",
        "link": "https://portal.example.org/visits",
        "date": "Tuesday, December 1",
        "time": "10:30 AM",
        "location_name": "",
    }


def test_a_place_the_rules_file_does_not_list_is_never_named() -> None:
    clinic = location(name="Riverside Family Medicine")

    plan = plan_for_patient(
        snapshot(appointment(), locations={LOCATION_REF: clinic}), uncapped(), NOW
    )

    assert plan.messages[0].variables["location_name"] == ""


def test_a_place_listed_as_patient_facing_is_named_by_its_own_name() -> None:
    config = config_with(
        {"caps": {"per_day": 10}, "locations": {LOCATION_REF: {"patient_facing": True}}}
    )

    plan = plan_for_patient(snapshot(appointment()), config, NOW)

    assert plan.messages[0].variables["location_name"] == "Riverside Family Medicine"


def test_a_listed_place_is_not_named_in_a_sensitive_message_unless_marked_safe() -> None:
    psychiatry = {"coding": [{"system": "http://snomed.info/sct", "code": "394587001"}]}
    listed = {"caps": {"per_day": 10}, "locations": {LOCATION_REF: {"display_name": "Main St"}}}
    safe = {
        "caps": {"per_day": 10},
        "locations": {LOCATION_REF: {"display_name": "Main St", "safe_for_sensitive": True}},
    }

    hidden = plan_for_patient(
        snapshot(appointment(specialty=[psychiatry])), config_with(listed), NOW
    )
    shown = plan_for_patient(snapshot(appointment(specialty=[psychiatry])), config_with(safe), NOW)

    assert hidden.messages[0].variables["location_name"] == ""
    assert shown.messages[0].variables["location_name"] == "Main St"


def test_a_listed_name_that_reveals_the_care_is_still_not_printed() -> None:
    config = config_with(
        {"caps": {"per_day": 10}, "locations": {LOCATION_REF: {"display_name": "PrEP Clinic"}}}
    )

    plan = plan_for_patient(snapshot(appointment()), config, NOW)

    assert plan.messages[0].variables["location_name"] == ""


@pytest.mark.parametrize(
    "status",
    ["cancelled", "noshow", "entered-in-error", "fulfilled", "arrived", "checked-in"],
)
def test_stop_status_plans_no_reminders_and_says_why(status: str) -> None:
    plan = plan_for_patient(snapshot(appointment(status=status)), uncapped(), NOW)

    assert plan.messages == ()
    assert withheld_reasons(plan) == {f"appointment-reminder|{APPT}": f"appointment-{status}"}


@pytest.mark.parametrize("status", ["proposed", "pending", "waitlist"])
def test_unconfirmed_appointment_is_not_reminded(status: str) -> None:
    plan = plan_for_patient(snapshot(appointment(status=status)), uncapped(), NOW)

    assert withheld_reasons(plan) == {f"appointment-reminder|{APPT}": "status-not-planned"}


def test_cancelled_appointment_drops_the_keys_that_were_planned_before() -> None:
    before = plan_for_patient(snapshot(appointment()), uncapped(), NOW)
    after = plan_for_patient(snapshot(appointment(status="cancelled")), uncapped(), NOW)

    assert set(keys(before)) - set(keys(after)) == set(keys(before))


def test_reschedule_keeps_keys_and_moves_send_times() -> None:
    before = plan_for_patient(snapshot(appointment()), uncapped(), NOW)
    after = plan_for_patient(snapshot(appointment(start="2026-12-03T19:00:00Z")), uncapped(), NOW)

    assert keys(after) == keys(before)
    assert send_times(after)[f"appointment-reminder|{APPT}|P1D"] == "2026-12-02T19:00:00+00:00"


def test_declined_patient_participant_is_not_messaged() -> None:
    resource = appointment()
    resource["participant"][0]["status"] = "declined"

    plan = plan_for_patient(snapshot(resource), uncapped(), NOW)

    assert withheld_reasons(plan) == {f"appointment-reminder|{APPT}": "patient-declined"}


def test_appointment_without_this_patient_as_participant_is_not_messaged() -> None:
    resource = appointment()
    resource["participant"] = resource["participant"][1:]

    plan = plan_for_patient(snapshot(resource), uncapped(), NOW)

    assert withheld_reasons(plan) == {f"appointment-reminder|{APPT}": "patient-not-participant"}


def test_absolute_patient_reference_counts_as_the_patient() -> None:
    resource = appointment()
    resource["participant"][0]["actor"]["reference"] = (
        "https://fhir.riverside.example.org/api/FHIR/R4/" + PATIENT_REF
    )

    plan = plan_for_patient(snapshot(resource), uncapped(), NOW)

    assert len(plan.messages) == 3


def test_appointment_without_start_is_withheld_not_guessed() -> None:
    plan = plan_for_patient(snapshot(appointment(start=None)), uncapped(), NOW)

    assert withheld_reasons(plan) == {f"appointment-reminder|{APPT}": "start-unknown"}


def test_past_appointment_plans_nothing() -> None:
    plan = plan_for_patient(snapshot(appointment(start="2026-11-20T15:30:00Z")), uncapped(), NOW)

    assert plan.messages == ()


def test_already_sent_reminder_is_not_planned_again() -> None:
    history = [sent(f"appointment-reminder|{APPT}|P3D", "2026-11-28T15:30:05")]
    plan = plan_for_patient(
        snapshot(appointment(), history=history), uncapped(), utc("2026-11-28T16:00:00")
    )

    assert keys(plan) == [f"appointment-reminder|{APPT}|P1D", f"appointment-reminder|{APPT}|PT2H"]


def test_late_booking_gets_exactly_one_catch_up_now() -> None:
    now = utc("2026-11-29T14:00:00")

    plan = plan_for_patient(snapshot(appointment(created="2026-11-29T13:58:00Z")), uncapped(), now)

    assert send_times(plan)[f"appointment-reminder|{APPT}|catch-up"] == now.isoformat()
    assert withheld_reasons(plan)[f"appointment-reminder|{APPT}|P3D"] == "offset-passed"


def test_catch_up_is_not_repeated_once_sent() -> None:
    history = [sent(f"appointment-reminder|{APPT}|catch-up", "2026-11-29T14:00:00")]

    plan = plan_for_patient(
        snapshot(appointment(), history=history), uncapped(), utc("2026-11-29T18:00:00")
    )

    assert keys(plan) == [f"appointment-reminder|{APPT}|P1D", f"appointment-reminder|{APPT}|PT2H"]


def test_catch_up_can_be_disabled() -> None:
    config = config_with({"caps": {"per_day": 10}, "appointment_reminders": {"catch_up": False}})

    plan = plan_for_patient(snapshot(appointment()), config, utc("2026-11-29T14:00:00"))

    assert f"appointment-reminder|{APPT}|catch-up" not in keys(plan)


def test_catch_up_is_skipped_when_the_next_reminder_is_imminent() -> None:
    plan = plan_for_patient(snapshot(appointment()), uncapped(), utc("2026-11-30T14:00:00"))

    assert withheld_reasons(plan)[f"appointment-reminder|{APPT}|catch-up"] == "catch-up-not-needed"
    assert keys(plan)[0] == f"appointment-reminder|{APPT}|P1D"


def test_catch_up_booked_in_quiet_hours_waits_for_the_morning() -> None:
    plan = plan_for_patient(snapshot(appointment()), uncapped(), utc("2026-11-29T03:00:00"))

    assert send_times(plan)[f"appointment-reminder|{APPT}|catch-up"] == "2026-11-29T13:00:00+00:00"


def test_two_appointments_on_one_local_day_share_one_combined_message() -> None:
    morning = appointment(start="2026-12-01T14:00:00Z", ident="eAM1")
    afternoon = appointment(start="2026-12-01T19:15:00Z", ident="ePM2")

    plan = plan_for_patient(snapshot(morning, afternoon, english=True), uncapped(), NOW)

    day_key = f"appointment-reminder|{PATIENT_REF}|2026-12-01"
    assert keys(plan) == [f"{day_key}|P3D", f"{day_key}|P1D", f"{day_key}|PT2H"]
    assert plan.messages[0].about == ("Appointment/eAM1", "Appointment/ePM2")
    assert plan.messages[0].variables["time"] == "9:00 AM and 2:15 PM"
    assert plan.messages[0].template == "appointment-reminder-combined"


def test_appointments_on_different_local_days_are_reminded_separately() -> None:
    first = appointment(start="2026-12-01T14:00:00Z", ident="eA1")
    # 23:30 in Boston on Dec 1 is already Dec 2 in UTC: still the same local day.
    late = appointment(start="2026-12-02T04:30:00Z", ident="eA2")
    next_day = appointment(start="2026-12-02T15:00:00Z", ident="eA3")

    plan = plan_for_patient(snapshot(first, late, next_day), uncapped(), NOW)

    prefixes = {key.rsplit("|", 1)[0] for key in keys(plan)}
    assert prefixes == {
        f"appointment-reminder|{PATIENT_REF}|2026-12-01",
        "appointment-reminder|Appointment/eA3",
    }


def test_walk_in_appointment_type_uses_its_override_cadence() -> None:
    walk_in = appointment(
        appointmentType={
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v2-0276", "code": "WALKIN"}
            ]
        }
    )

    plan = plan_for_patient(snapshot(walk_in), uncapped(), NOW)

    assert keys(plan) == [f"appointment-reminder|{APPT}|PT2H"]
    assert plan.messages[0].trace["cadence_source"] == "overrides[0]"


def test_location_override_sets_cadence_name_and_callback_number() -> None:
    config = config_with(
        {
            "caps": {"per_day": 10},
            "locations": {
                LOCATION_REF: {
                    "appointment_offsets": ["P2D"],
                    "display_name": "Riverside West",
                    "clinic_phone": "(555) 010-0200",
                }
            },
        }
    )

    plan = plan_for_patient(snapshot(appointment()), config, NOW)

    assert keys(plan) == [f"appointment-reminder|{APPT}|P2D"]
    assert plan.messages[0].variables["location_name"] == "Riverside West"
    assert plan.messages[0].variables["clinic_phone"] == "(555) 010-0200"


def test_sensitive_appointment_uses_generic_template_and_hides_revealing_location() -> None:
    clinic = location(name="Riverside Behavioral Health Clinic")
    resource = appointment(
        serviceType=[
            {
                "coding": [
                    {
                        "system": "http://snomed.info/sct",
                        "code": "722162001",
                        "display": "Psychiatry service",
                    }
                ]
            }
        ]
    )

    plan = plan_for_patient(snapshot(resource, locations={LOCATION_REF: clinic}), uncapped(), NOW)

    message = plan.messages[0]
    assert message.sensitive is True
    assert message.template == "appointment-reminder-generic"
    assert message.variables["location_name"] == ""


def test_revealing_location_alone_makes_the_reminder_generic() -> None:
    clinic = location(name="Riverside Behavioral Health Clinic")

    plan = plan_for_patient(
        snapshot(appointment(), locations={LOCATION_REF: clinic}), uncapped(), NOW
    )

    assert plan.messages[0].template == "appointment-reminder-generic"
    assert plan.messages[0].variables["location_name"] == ""


def test_same_inputs_give_an_identical_plan() -> None:
    first = plan_for_patient(snapshot(appointment(), appointment(ident="eB2")), uncapped(), NOW)
    second = plan_for_patient(snapshot(appointment(), appointment(ident="eB2")), uncapped(), NOW)

    assert first == second


def test_naive_now_is_refused() -> None:
    with pytest.raises(NaiveDatetimeError):
        plan_for_patient(snapshot(appointment()), uncapped(), NOW.replace(tzinfo=None))


def test_reminder_sent_before_a_second_booking_is_not_repeated_in_the_combined_message() -> None:
    history = [sent(f"appointment-reminder|{APPT}|P3D", "2026-11-28T15:30:00")]
    second = appointment(start="2026-12-01T19:00:00Z", ident="eLate2")

    plan = plan_for_patient(
        snapshot(appointment(), second, history=history), uncapped(), utc("2026-11-28T16:00:00")
    )

    day_key = f"appointment-reminder|{PATIENT_REF}|2026-12-01"
    assert keys(plan) == [f"{day_key}|P1D", f"{day_key}|PT2H"]
