"""Build the R4 ``Consent`` fhir-bridge writes back when a patient opts out or in.

Writing the patient's STOP into the EHR lets every other system (and staff)
see it; the resource follows the conventions documented in
:mod:`rules.consent.codes`, so :func:`rules.consent.decide_consent` reads back
exactly what was written.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rules.consent.codes import (
    CHANNELS,
    CONSENT_SCOPE_SYSTEM,
    CONTACT_HINT_EXTENSION,
    LOINC,
    OUTREACH_CHANNEL_SYSTEM,
    OUTREACH_PURPOSE_SYSTEM,
    PURPOSE_HEALTH_TIPS,
    V3_ACT_CODE,
    V3_ACT_REASON,
)
from rules.consent.fhirtime import as_utc

_CHANNEL_DISPLAY = {"sms": "Text message (SMS)", "email": "Email", "voice": "Voice call"}
_V3_PURPOSE_OF_USE = {PURPOSE_HEALTH_TIPS: ("HMARKT", "healthcare marketing")}
"""The v3-ActReason code written next to ours, so other readers of the EHR see what the
purpose is (health tips are promotional)."""


class UnknownChannelError(ValueError):
    """The channel is not one fhir-bridge sends on."""


def _instant(moment: datetime) -> str:
    return as_utc(moment).isoformat(timespec="seconds").replace("+00:00", "Z")


def _outreach_consent(
    *,
    permit: bool,
    patient_ref: str,
    channel: str,
    address_hint: str | None,
    now: datetime,
    purposes: Sequence[str],
) -> dict[str, Any]:
    if channel not in CHANNELS:
        raise UnknownChannelError(f"unknown outreach channel {channel!r}")
    rule = "OPTIN" if permit else "OPTOUT"
    provision: dict[str, Any] = {
        "type": "permit" if permit else "deny",
        "period": {"start": _instant(now)},
        "action": [
            {
                "coding": [
                    {
                        "system": OUTREACH_CHANNEL_SYSTEM,
                        "code": channel,
                        "display": _CHANNEL_DISPLAY[channel],
                    }
                ]
            }
        ],
    }
    if purposes:
        provision["purpose"] = [
            {"system": OUTREACH_PURPOSE_SYSTEM, "code": purpose} for purpose in purposes
        ] + [
            {"system": V3_ACT_REASON, "code": code, "display": display}
            for code, display in dict.fromkeys(
                _V3_PURPOSE_OF_USE[p] for p in purposes if p in _V3_PURPOSE_OF_USE
            )
        ]
    if address_hint:
        provision["extension"] = [{"url": CONTACT_HINT_EXTENSION, "valueString": address_hint}]
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": CONSENT_SCOPE_SYSTEM,
                    "code": "patient-privacy",
                    "display": "Privacy Consent",
                }
            ]
        },
        "category": [
            {"coding": [{"system": LOINC, "code": "59284-0", "display": "Patient Consent"}]}
        ],
        "patient": {"reference": patient_ref},
        "dateTime": _instant(now),
        "policyRule": {"coding": [{"system": V3_ACT_CODE, "code": rule}]},
        "provision": provision,
    }


def opt_out_consent(
    patient_ref: str,
    channel: str,
    address_hint: str | None,
    now: datetime,
    *,
    purposes: Sequence[str] = (),
) -> dict[str, Any]:
    """An active patient-privacy Consent denying outreach on ``channel``.

    ``purposes`` empty means every purpose (a STOP). ``address_hint`` should be a
    masked form such as ``***-***-0123``; it is informational only.
    """
    return _outreach_consent(
        permit=False,
        patient_ref=patient_ref,
        channel=channel,
        address_hint=address_hint,
        now=now,
        purposes=purposes,
    )


def opt_in_consent(
    patient_ref: str,
    channel: str,
    address_hint: str | None,
    now: datetime,
    *,
    purposes: Sequence[str] = (),
) -> dict[str, Any]:
    """The permit counterpart of :func:`opt_out_consent` (START, or an explicit opt-in)."""
    return _outreach_consent(
        permit=True,
        patient_ref=patient_ref,
        channel=channel,
        address_hint=address_hint,
        now=now,
        purposes=purposes,
    )


def mask_address(address: str) -> str:
    """A hint that identifies an address to staff without repeating it (last 4 / domain)."""
    if "@" in address:
        return "***@" + address.rsplit("@", 1)[1]
    digits = [char for char in address if char.isdigit()]
    return "***" + "".join(digits[-4:])
