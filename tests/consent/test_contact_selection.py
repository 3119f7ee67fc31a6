"""Specification of ``select_contact``: which Patient.telecom entry a channel uses."""

from __future__ import annotations

from typing import Any

import pytest

from rules.consent import ConsentPolicy, select_contact
from tests.consent.fhir_fixtures import NOW, load


def _patient(*telecom: dict[str, Any]) -> dict[str, Any]:
    patient = load("patient-camila-lopez")
    patient["telecom"] = list(telecom)
    return patient


def _phone(value: str, use: str | None = None, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"system": "phone", "value": value, **extra}
    if use is not None:
        entry["use"] = use
    return entry


CASES = [
    pytest.param(
        load("patient-camila-lopez"),
        "sms",
        None,
        ("+16175550143", "Patient.telecom[1]"),
        id="fixture-mobile-for-sms",
    ),
    pytest.param(
        load("patient-camila-lopez"),
        "email",
        None,
        ("camila.lopez@example.org", "Patient.telecom[2]"),
        id="fixture-email-domain-lower-cased",
    ),
    pytest.param(
        load("patient-camila-lopez"),
        "voice",
        None,
        ("+16175550143", "Patient.telecom[1]"),
        id="fixture-voice-follows-rank",
    ),
    pytest.param(
        _patient(_phone("617-555-0100", "home", rank=1), _phone("617-555-0143", "mobile", rank=2)),
        "sms",
        None,
        ("+16175550143", "Patient.telecom[1]"),
        id="mobile-preferred-over-better-ranked-home-for-sms",
    ),
    pytest.param(
        _patient(_phone("617-555-0100", "home", rank=1), _phone("617-555-0143", "mobile", rank=2)),
        "voice",
        None,
        ("+16175550100", "Patient.telecom[0]"),
        id="voice-uses-rank-not-mobility",
    ),
    pytest.param(
        _patient({"system": "sms", "value": "+1 617 555 0143"}),
        "sms",
        None,
        ("+16175550143", "Patient.telecom[0]"),
        id="sms-system-entry-used",
    ),
    pytest.param(
        _patient(_phone("617-555-0188", "old")),
        "sms",
        None,
        None,
        id="old-number-never-used",
    ),
    pytest.param(
        _patient(
            _phone("617-555-0199", "mobile", period={"start": "2019-01-01", "end": "2023-06-30"})
        ),
        "sms",
        None,
        None,
        id="expired-number-unused",
    ),
    pytest.param(
        _patient(_phone("617-555-0199", "mobile", period={"start": "2025-04-01"})),
        "sms",
        None,
        None,
        id="not-yet-valid-number-unused",
    ),
    pytest.param(
        _patient(_phone("617-555-0143", "mobile", period={"start": "2024-01-01"})),
        "sms",
        None,
        ("+16175550143", "Patient.telecom[0]"),
        id="open-ended-period-in-force",
    ),
    pytest.param(
        _patient(_phone("555-0143", "mobile")),
        "sms",
        None,
        None,
        id="number-without-area-code-rejected",
    ),
    pytest.param(
        _patient(_phone("call my daughter", "mobile")),
        "sms",
        None,
        None,
        id="free-text-instead-of-number-rejected",
    ),
    pytest.param(
        _patient(_phone("07400 123456", "mobile")),
        "sms",
        "GB",
        ("+447400123456", "Patient.telecom[0]"),
        id="national-number-uses-default-region",
    ),
    pytest.param(
        _patient(_phone("020 7946 0018", "home")),
        "sms",
        "GB",
        None,
        id="known-landline-cannot-take-texts",
    ),
    pytest.param(
        _patient(_phone("020 7946 0018", "mobile")),
        "sms",
        "GB",
        None,
        id="landline-labelled-mobile-not-texted",
    ),
    pytest.param(
        _patient(_phone("020 7946 0018", "home")),
        "voice",
        "GB",
        ("+442079460018", "Patient.telecom[0]"),
        id="known-landline-can-be-called",
    ),
    pytest.param(
        _patient(_phone("617-555-0100", "home")),
        "sms",
        None,
        ("+16175550100", "Patient.telecom[0]"),
        id="us-home-number-may-take-texts-when-nothing-better",
    ),
    pytest.param(
        _patient({"system": "email", "value": "not-an-address"}),
        "email",
        None,
        None,
        id="malformed-email-rejected",
    ),
    pytest.param(
        _patient(
            {"system": "email", "value": "c.lopez@work.example.com", "use": "work", "rank": 2},
            {"system": "email", "value": "camila@example.org", "use": "home", "rank": 1},
        ),
        "email",
        None,
        ("camila@example.org", "Patient.telecom[1]"),
        id="email-lowest-rank-wins",
    ),
    pytest.param(
        _patient({"system": "fax", "value": "617-555-0155"}),
        "sms",
        None,
        None,
        id="fax-is-not-a-contact",
    ),
    pytest.param(_patient(), "sms", None, None, id="no-telecom-at-all"),
    pytest.param(None, "sms", None, None, id="no-patient-resource"),
]


@pytest.mark.parametrize(("patient", "channel", "region", "expected"), CASES)
def test_contact_selection(
    patient: dict[str, Any] | None,
    channel: str,
    region: str | None,
    expected: tuple[str, str] | None,
) -> None:
    policy = ConsentPolicy(default_region=region or "US")
    choice = select_contact(patient, channel, NOW, policy)
    got = None if choice is None else (choice.address, choice.source)
    assert got == expected


def test_contact_source_names_the_index_not_the_value() -> None:
    choice = select_contact(load("patient-camila-lopez"), "sms", NOW, ConsentPolicy())
    assert choice is not None
    assert "555" not in choice.source
