"""The sandbox's sample patients: valid R4, placed where it is daytime, due at once.

The samples exist so that a first ``fhir-bridge run`` shows a message within minutes
under the *shipped* rules (quiet hours 08:00-21:00 in the recipient's zone), whatever
the hour on the machine running it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B import get_fhir_model_class

from fhir_bridge.sandbox.samples import (
    APPOINTMENT_ID,
    DAYTIME_HOURS,
    LOCATION_ID,
    TIMEZONE_EXTENSION,
    pick_zone,
    sample_resources,
)
from rules.config import load_rules_config
from rules.preview import preview

# A winter day and a summer day (DST on both hemispheres), every 20 minutes.
INSTANTS = [
    start + timedelta(minutes=20 * step)
    for start in (datetime(2026, 1, 14, tzinfo=UTC), datetime(2026, 7, 15, tzinfo=UTC))
    for step in range(72)
]


def _bundle(now: datetime) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": f"http://127.0.0.1:8090/fhir/{r['resourceType']}/{r['id']}",
                "resource": r,
            }
            for r in sample_resources(now)
        ],
    }


def _by_type(now: datetime, type_: str) -> dict[str, Any]:
    return next(r for r in sample_resources(now) if r["resourceType"] == type_)


@pytest.mark.parametrize("now", INSTANTS, ids=lambda moment: moment.isoformat())
def test_at_any_hour_the_samples_live_where_it_is_daytime(now: datetime) -> None:
    local_hour = now.astimezone(ZoneInfo(pick_zone(now).zone)).hour
    assert DAYTIME_HOURS[0] <= local_hour < DAYTIME_HOURS[1]


def test_every_sample_is_valid_fhir_r4() -> None:
    for resource in sample_resources(datetime(2026, 3, 9, 15, 0, tzinfo=UTC)):
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_the_appointment_refers_to_a_location_carrying_the_patients_time_zone() -> None:
    now = datetime(2026, 3, 9, 15, 0, tzinfo=UTC)
    appointment = _by_type(now, "Appointment")
    location = _by_type(now, "Location")
    patient = _by_type(now, "Patient")
    actors = [p["actor"]["reference"] for p in appointment["participant"]]
    assert f"Location/{LOCATION_ID}" in actors
    zone = pick_zone(now).zone
    assert location["extension"] == [{"url": TIMEZONE_EXTENSION, "valueCode": zone}]
    assert patient["extension"] == [{"url": TIMEZONE_EXTENSION, "valueCode": zone}]


@pytest.mark.parametrize("now", INSTANTS[::12], ids=lambda moment: moment.isoformat())
def test_with_the_shipped_rules_the_appointment_reminder_is_due_at_once(now: datetime) -> None:
    results = preview(_bundle(now), load_rules_config(None), now)
    reminders = [
        r
        for r in results
        if r["status"] == "planned" and r["about"] == [f"Appointment/{APPOINTMENT_ID}"]
    ]
    assert len(reminders) == 1, [(r["key"], r.get("reason")) for r in results]
    assert datetime.fromisoformat(reminders[0]["send_at"]) <= now
    assert reminders[0]["channel"] == "sms"


@pytest.mark.parametrize("now", INSTANTS[::12], ids=lambda moment: moment.isoformat())
def test_with_the_shipped_rules_the_refill_notice_is_due_at_once(now: datetime) -> None:
    results = preview(_bundle(now), load_rules_config(None), now)
    notices = [r for r in results if r["status"] == "planned" and r["rule"] == "refill-notice"]
    assert len(notices) == 1
    assert datetime.fromisoformat(notices[0]["send_at"]) <= now


def test_with_the_shipped_rules_the_discharge_check_in_waits_for_tomorrow_morning() -> None:
    now = datetime(2026, 3, 9, 15, 0, tzinfo=UTC)
    zone = ZoneInfo(pick_zone(now).zone)
    results = preview(_bundle(now), load_rules_config(None), now)
    check_ins = [
        r for r in results if r["status"] == "planned" and r["rule"] == "discharge-checkin"
    ]
    first = min(datetime.fromisoformat(r["send_at"]) for r in check_ins).astimezone(zone)
    assert first.date() == now.astimezone(zone).date() + timedelta(days=1)
    assert check_ins[0]["language"] == "es"
