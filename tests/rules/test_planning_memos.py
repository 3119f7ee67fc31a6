"""What planning remembers about shared resources is keyed by their content, never only
their id and version: an EHR (or a clinic's IT) can edit a Location without bumping
``meta.versionId``, and a stale verdict would print a revealing place or shift a time."""

from __future__ import annotations

import dataclasses
from typing import Any

from rules.engine import plan_for_patient
from rules.memo import ContentMemo, content_key
from rules.model import PlannedMessage
from tests.rules.factories import (
    LOCATION_REF,
    appointment,
    default_config,
    location,
    snapshot,
    utc,
)

NOW = utc("2026-11-25T12:00:00")
TZ_URL = "http://hl7.org/fhir/StructureDefinition/timezone"


def _first(place: dict[str, Any]) -> PlannedMessage:
    plan = plan_for_patient(
        snapshot(appointment(), locations={LOCATION_REF: place}), default_config(), NOW
    )
    return plan.messages[0]


def test_a_location_renamed_in_place_without_a_new_version_is_read_again() -> None:
    place = location()
    assert _first(place).sensitive is False

    place["name"] = "Centro de Salud Mental Riverside"  # same id, same meta.versionId

    message = _first(place)
    assert message.sensitive is True
    assert message.trace["sensitivity_reasons"] == ["text:mental-health"]


def test_a_location_moved_to_another_zone_without_a_new_version_shows_its_local_time() -> None:
    boston = _first(location())
    denver = _first(location(extension=[{"url": TZ_URL, "valueCode": "America/Denver"}]))

    assert boston.trace["venue_zone"] == "America/New_York"
    assert denver.trace["venue_zone"] == "America/Denver"
    assert denver.variables["time"] != boston.variables["time"]


def test_content_keys_tell_lists_from_tuples_and_true_from_one() -> None:
    keys = {
        content_key({"resourceType": "Location", "alias": ["Clínica"]}),
        content_key({"resourceType": "Location", "alias": ("Clínica",)}),
        content_key({"resourceType": "Location", "mode": True}),
        content_key({"resourceType": "Location", "mode": 1}),
    }
    assert len(keys) == 4


def test_a_self_referencing_resource_is_not_memoised() -> None:
    looped: dict[str, Any] = {"resourceType": "Location", "id": "loop"}
    looped["partOf"] = looped
    assert content_key(looped) is None


def test_the_memo_stays_within_its_capacity() -> None:
    memo: ContentMemo[int] = ContentMemo(capacity=3)
    for number in range(10):
        memo.put(f"Location/{number}", number)
    assert len(memo) <= 3
    assert memo.get("Location/9") == 9


def test_a_message_with_a_new_trace_keeps_every_other_field() -> None:
    message = _first(location())
    trace = {"rule": "appointment-reminder", "caps": {}}
    assert message.with_trace(trace) == dataclasses.replace(message, trace=trace)
