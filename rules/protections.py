"""Patients who must not be messaged at all, whatever their consent says.

A reminder to a deceased patient's phone is one of the most hurtful mistakes an
outreach system can make, and minors are reached through their guardians, not
directly, unless policy says otherwise. These checks run before consent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Final

from rules.consent.fhirtime import as_utc, parse_fhir_datetime
from rules.consent.policy import ConsentPolicy

PROTECTION_DECEASED: Final = "deceased"
PROTECTION_MINOR: Final = "minor"
PROTECTION_AGE_UNKNOWN: Final = "age-unknown"
PROTECTION_UNKNOWN_PATIENT: Final = "unknown-patient"
# YYYY-MM-DD, years 0001-9998 (the end of 9999-12-31 does not fit a datetime).
_FULL_DATE: Final = re.compile(r"(?!9999)[0-9]{4}-[0-9]{2}-[0-9]{2}\Z", re.ASCII)


def is_deceased(patient: Mapping[str, Any]) -> bool:
    """``deceasedBoolean`` true or any ``deceasedDateTime`` (even a partial date)."""
    return patient.get("deceasedBoolean") is True or bool(patient.get("deceasedDateTime"))


def _latest_possible_birth(patient: Mapping[str, Any]) -> date | None:
    """The latest birth date consistent with ``birthDate`` (``1990`` means up to 31 Dec)."""
    text = patient.get("birthDate")
    if isinstance(text, str) and _FULL_DATE.match(text):
        # The common case, a full date, is that very day (an impossible one is unknown).
        try:
            return date.fromisoformat(text)
        except ValueError:
            return None
    latest = parse_fhir_datetime(text, latest=True)
    return latest.date() if latest is not None else None


def youngest_possible_age(patient: Mapping[str, Any], today: date) -> int | None:
    """Age in whole years assuming the latest birth date the record allows."""
    born = _latest_possible_birth(patient)
    if born is None:
        return None
    had_birthday = (today.month, today.day) >= (born.month, born.day)
    return today.year - born.year - (0 if had_birthday else 1)


def check_protections(
    patient: Mapping[str, Any] | None, purpose: str, now: datetime, policy: ConsentPolicy
) -> str | None:
    """Why this patient must not be messaged directly, or ``None`` if they may be.

    Returns ``"deceased"``, ``"minor"``, ``"age-unknown"`` (no usable birthDate while
    minors are protected) or ``"unknown-patient"`` (no Patient resource at all).
    A partial birth date counts as the youngest age it allows.
    """
    if not patient:
        return PROTECTION_UNKNOWN_PATIENT
    if is_deceased(patient):
        return PROTECTION_DECEASED
    if policy.message_minors or purpose in policy.minor_allowed_purposes:
        return None
    age = youngest_possible_age(patient, as_utc(now).date())
    if age is None:
        return PROTECTION_AGE_UNKNOWN
    if age < policy.minor_age:
        return PROTECTION_MINOR
    return None
