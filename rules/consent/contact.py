"""Which ``Patient.telecom`` entry a message on a given channel goes to.

A message sent to an old number reaches a stranger, so retired (``use = old``) and
expired (``period`` over) entries are never used, and numbers that do not parse as
a valid phone number are skipped rather than guessed at. The choice records the
telecom *index* it came from, never the value, so it can be logged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import phonenumbers

from rules.consent.codes import CHANNEL_EMAIL, CHANNEL_SMS, CHANNEL_VOICE
from rules.consent.fhirtime import as_utc, period_covers
from rules.consent.policy import ConsentPolicy

_EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_LANDLINE_TYPES = frozenset({phonenumbers.PhoneNumberType.FIXED_LINE})
_UNREACHABLE_BY_VOICE = frozenset({phonenumbers.PhoneNumberType.PAGER})


@dataclass(frozen=True)
class ContactChoice:
    """Where to send: ``source`` is like ``Patient.telecom[2]`` (never the value)."""

    channel: str
    address: str
    source: str


@dataclass(frozen=True)
class _Candidate:
    index: int
    system: str
    use: str | None
    rank: float
    value: str


def normalize_phone(value: str, default_region: str) -> str | None:
    """A phone number in E.164 (``+16175550123``), or ``None`` if it is not a valid one."""
    try:
        parsed = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(value: str) -> str | None:
    """A trimmed email address with a lower-case domain, or ``None`` if malformed."""
    text = value.strip()
    if text.lower().startswith("mailto:"):
        text = text[len("mailto:") :]
    if not _EMAIL_PATTERN.match(text):
        return None
    local, domain = text.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def normalize_address(channel: str, value: str, default_region: str) -> str | None:
    """Normalise ``value`` the way :func:`select_contact` would for ``channel``."""
    if channel == CHANNEL_EMAIL:
        return normalize_email(value)
    return normalize_phone(value, default_region)


def _candidates(patient: Mapping[str, Any], now: datetime) -> Iterator[_Candidate]:
    for index, telecom in enumerate(patient.get("telecom") or ()):
        if not isinstance(telecom, Mapping):
            continue
        value = telecom.get("value")
        system = telecom.get("system")
        if not isinstance(value, str) or not value.strip() or not isinstance(system, str):
            continue
        use = telecom.get("use") if isinstance(telecom.get("use"), str) else None
        if use == "old":
            continue
        if not period_covers(telecom.get("period"), now):
            continue
        rank = telecom.get("rank")
        rank_value = float(rank) if isinstance(rank, int) and rank > 0 else math.inf
        yield _Candidate(index, system, use, rank_value, value)


def _phone_type(e164: str) -> int:
    return int(phonenumbers.number_type(phonenumbers.parse(e164)))


def _sms_preference(candidate: _Candidate, e164: str) -> int | None:
    """0 = known mobile, 1 = maybe mobile, ``None`` = cannot take texts.

    The numbering plan outranks the label: a number entered as "mobile" that is a
    landline would silently swallow every reminder.
    """
    if _phone_type(e164) in _LANDLINE_TYPES:
        return None
    if candidate.system == "sms" or candidate.use == "mobile":
        return 0
    if candidate.system != "phone":
        return None
    return 0 if _phone_type(e164) == phonenumbers.PhoneNumberType.MOBILE else 1


def select_contact(
    patient: Mapping[str, Any] | None, channel: str, now: datetime, policy: ConsentPolicy
) -> ContactChoice | None:
    """The best current telecom for ``channel``, or ``None`` when there is no usable one.

    SMS prefers ``system = sms`` or ``use = mobile`` and never texts a number the
    numbering plan identifies as a landline; otherwise lower ``rank`` wins, then
    document order.
    """
    ranked = ranked_contact(patient, channel, now, policy)
    return ranked[0] if ranked is not None else None


def ranked_contact(
    patient: Mapping[str, Any] | None, channel: str, now: datetime, policy: ConsentPolicy
) -> tuple[ContactChoice, float] | None:
    """:func:`select_contact` plus the chosen telecom's ``rank`` (infinity when unranked)."""
    if not patient:
        return None
    now = as_utc(now)
    options: list[tuple[tuple[float, ...], _Candidate, str]] = []
    for candidate in _candidates(patient, now):
        if channel == CHANNEL_EMAIL:
            if candidate.system != "email":
                continue
            email = normalize_email(candidate.value)
            if email is not None:
                options.append(((candidate.rank, candidate.index), candidate, email))
            continue
        if candidate.system not in ("sms", "phone"):
            continue
        e164 = normalize_phone(candidate.value, policy.default_region)
        if e164 is None:
            continue
        if channel == CHANNEL_SMS:
            preference = _sms_preference(candidate, e164)
            if preference is not None:
                options.append(((preference, candidate.rank, candidate.index), candidate, e164))
        elif (
            channel == CHANNEL_VOICE
            and candidate.system == "phone"
            and _phone_type(e164) not in _UNREACHABLE_BY_VOICE
        ):
            options.append(((candidate.rank, candidate.index), candidate, e164))
    if not options:
        return None
    _key, candidate, address = min(options, key=lambda option: option[0])
    source = f"Patient.telecom[{candidate.index}]"
    return ContactChoice(channel=channel, address=address, source=source), candidate.rank
