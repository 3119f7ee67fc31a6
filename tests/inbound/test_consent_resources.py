"""The pure rules behind superseding: which of our Consents a new one ends, and how."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fhirclient.models.consent import Consent

from fhir_bridge.inbound.resources import (
    ConsentChange,
    consents_to_end,
    end_consent,
    outreach_consent,
)

SYSTEM = "urn:fhir-bridge:inbound-sms"
STOP_AT = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


def _written(
    consent_id: str, *, permit: bool, at: datetime, address: str = "+16175550123"
) -> dict[str, Any]:
    change = ConsentChange(
        patient_ref="Patient/eM5CWtq15N0WJeuCet5bJlQ3",
        channel="sms",
        address=address,
        permit=permit,
        at=at,
        identifier_system=SYSTEM,
        identifier_value=f"SM{consent_id}",
    )
    return {**outreach_consent(change), "id": consent_id}


def test_a_start_ends_the_earlier_stop_when_the_start_began() -> None:
    stop = _written("c-1", permit=False, at=STOP_AT)
    start = _written("c-2", permit=True, at=STOP_AT + timedelta(minutes=20))

    assert consents_to_end(start, [stop, start], SYSTEM) == [
        ("c-1", STOP_AT + timedelta(minutes=20))
    ]


def test_a_stop_processed_after_a_later_start_ends_itself_not_the_start() -> None:
    start = _written("c-2", permit=True, at=STOP_AT + timedelta(minutes=20))
    late_stop = _written("c-1", permit=False, at=STOP_AT)

    assert consents_to_end(late_stop, [start], SYSTEM) == [("c-1", STOP_AT + timedelta(minutes=20))]


def test_consents_about_another_number_are_left_alone() -> None:
    other = _written("c-9", permit=False, at=STOP_AT, address="+16175550188")
    start = _written("c-2", permit=True, at=STOP_AT + timedelta(minutes=5))

    assert consents_to_end(start, [other], SYSTEM) == []


def test_an_ended_consent_is_inactive_with_a_closed_period_and_valid_r4() -> None:
    stop = _written("c-1", permit=False, at=STOP_AT)

    ended = end_consent(stop, STOP_AT + timedelta(hours=2))

    assert ended is not None
    assert ended["status"] == "inactive"
    assert ended["provision"]["period"] == {
        "start": "2026-12-01T14:00:00Z",
        "end": "2026-12-01T16:00:00Z",
    }
    Consent(ended, strict=True)


def test_a_period_never_ends_before_it_starts() -> None:
    stop = _written("c-1", permit=False, at=STOP_AT)

    ended = end_consent(stop, STOP_AT - timedelta(minutes=1))

    assert ended is not None and ended["provision"]["period"]["end"] == "2026-12-01T14:00:00Z"


def test_ending_an_already_inactive_consent_changes_nothing() -> None:
    stop = {**_written("c-1", permit=False, at=STOP_AT), "status": "inactive"}

    assert end_consent(stop, STOP_AT + timedelta(hours=1)) is None
