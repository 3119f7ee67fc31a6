"""Frequency caps across all rules, counted in the recipient's local days."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

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
        "priority": "2026-12-01T15:30:00+00:00",
    }


# Boston wall clock. TODAY starts 3:00 PM Dec 1: its 2-hour reminder goes at 1:00 PM.
# LATER starts 10:30 AM Dec 4: its 3-day reminder goes at 10:30 AM Dec 1, earlier that day.
TODAY = appointment(start="2026-12-01T20:00:00Z", ident="eToday")
LATER = appointment(start="2026-12-04T15:30:00Z", ident="eLater")


def test_the_nearest_appointments_reminder_wins_a_capped_day_even_when_sent_later() -> None:
    plan = plan_for_patient(snapshot(LATER, TODAY), default_config(), NOW)

    assert "appointment-reminder|Appointment/eToday|PT2H" in keys(plan)
    assert withheld_reasons(plan)["appointment-reminder|Appointment/eLater|P3D"] == "cap-reached"


def test_a_capped_message_names_the_message_that_took_the_slot() -> None:
    plan = plan_for_patient(snapshot(LATER, TODAY), default_config(), NOW)

    capped = {w.key: w for w in plan.withheld}["appointment-reminder|Appointment/eLater|P3D"]
    assert capped.trace["caps"]["taken_by"] == ["appointment-reminder|Appointment/eToday|PT2H"]
    assert capped.send_at == utc("2026-12-01T15:30:00")


def test_a_message_already_sent_keeps_its_slot_against_a_nearer_appointment() -> None:
    history = [sent("appointment-reminder|Appointment/eLater|P3D", "2026-12-01T15:30:00")]

    plan = plan_for_patient(snapshot(LATER, TODAY, history=history), default_config(), NOW)

    assert withheld_reasons(plan)["appointment-reminder|Appointment/eToday|PT2H"] == "cap-reached"


WEEKLY_CAP_OFF = config_with({"caps": {"per_week": 21}})
WEEKLY_CAP_OFF_SEPARATE = config_with(
    {"caps": {"per_week": 21}, "appointment_reminders": {"combine_same_day": False}}
)
starts = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=6),
        st.sampled_from(["13:30", "15:30", "18:00", "21:15"]),
    ),
    min_size=2,
    max_size=5,
    unique=True,
)


@settings(max_examples=60, deadline=None)
@given(starts=starts, data=st.data())
def test_the_plan_is_the_same_whatever_order_the_appointments_arrive_in(
    starts: list[tuple[int, str]], data: st.DataObject
) -> None:
    config = WEEKLY_CAP_OFF
    appointments = [
        appointment(start=f"2026-12-{1 + day:02d}T{clock}:00Z", ident=f"eV{index}")
        for index, (day, clock) in enumerate(starts)
    ]
    shuffled = data.draw(st.permutations(appointments))

    assert plan_for_patient(snapshot(*shuffled), config, NOW) == plan_for_patient(
        snapshot(*appointments), config, NOW
    )


@settings(max_examples=60, deadline=None)
@given(starts=starts)
def test_on_every_capped_day_the_kept_reminder_is_about_the_nearest_appointment(
    starts: list[tuple[int, str]],
) -> None:
    config = WEEKLY_CAP_OFF_SEPARATE
    appointments = [
        appointment(start=f"2026-12-{1 + day:02d}T{clock}:00Z", ident=f"eV{index}")
        for index, (day, clock) in enumerate(starts)
    ]

    plan = plan_for_patient(snapshot(*appointments), config, NOW)

    kept_by_key = {m.key: m for m in plan.messages}
    for capped in plan.withheld:
        if capped.reason != "cap-reached":
            continue
        (winner,) = capped.trace["caps"]["taken_by"]
        assert kept_by_key[winner].trace["caps"]["priority"] <= capped.trace["caps"]["priority"]
