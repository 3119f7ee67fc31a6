"""Frequency caps across all rules, counted in the recipient's local days."""

from __future__ import annotations

from rules.engine import plan_for_patient
from tests.rules.factories import (
    appointment,
    config_with,
    default_config,
    keys,
    medication_request,
    sent,
    snapshot,
    utc,
    withheld_reasons,
)

NOW = utc("2026-11-23T12:00:00")


def test_second_message_on_the_same_local_day_is_withheld_with_cap_reached() -> None:
    morning = appointment(start="2026-12-01T15:30:00Z", ident="eA1")
    refill = medication_request(
        dispenseRequest={
            "numberOfRepeatsAllowed": 2,
            "validityPeriod": {"start": "2026-11-01"},
            "expectedSupplyDuration": {"value": 32, "unit": "days", "code": "d"},
        }
    )  # runs out 2026-12-03; notice 2026-11-28 10:00 local, same day as the P3D reminder

    plan = plan_for_patient(snapshot(morning, refill), default_config(), NOW)

    reasons = withheld_reasons(plan)
    capped = [key for key, reason in reasons.items() if reason == "cap-reached"]
    assert "refill-notice|MedicationRequest/eKbTjv9Q9cWbmFGl5Ds2Xkw3|fill-1" in keys(plan)
    assert "appointment-reminder|Appointment/eA1|P3D" in capped


def test_weekly_cap_withholds_the_fourth_message_in_seven_days() -> None:
    config = config_with({"caps": {"per_day": 5, "per_week": 3}})
    appointments = [
        appointment(start=f"2026-12-0{day}T15:30:00Z", ident=f"eW{day}") for day in (1, 2, 3)
    ]

    plan = plan_for_patient(snapshot(*appointments), config, NOW)

    assert len(plan.messages) == 3
    assert list(withheld_reasons(plan).values()).count("cap-reached") == 6


def test_messages_already_sent_count_toward_the_daily_cap() -> None:
    history = [sent("refill-notice|MedicationRequest/old|fill-1", "2026-11-28T14:00:00")]

    plan = plan_for_patient(snapshot(appointment(), history=history), default_config(), NOW)

    assert (
        withheld_reasons(plan)["appointment-reminder|Appointment/e3Yh7qKdUUtrpXNb1gB3Nig3|P3D"]
        == "cap-reached"
    )


def test_daily_cap_uses_the_local_day_not_the_utc_day() -> None:
    # 01:30Z on Nov 29 is 20:30 on Nov 28 in Boston: the same local day as the P3D reminder.
    history = [sent("discharge-checkin|Encounter/x|P1D", "2026-11-29T01:30:00")]

    plan = plan_for_patient(snapshot(appointment(), history=history), default_config(), NOW)

    assert (
        withheld_reasons(plan)["appointment-reminder|Appointment/e3Yh7qKdUUtrpXNb1gB3Nig3|P3D"]
        == "cap-reached"
    )


def test_cap_decision_is_recorded_in_the_trace() -> None:
    plan = plan_for_patient(snapshot(appointment()), default_config(), NOW)

    assert plan.messages[0].trace["caps"] == {
        "per_day": {"limit": 1, "before": 0},
        "per_week": {"limit": 3, "before": 0},
    }
