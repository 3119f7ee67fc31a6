"""Pick the channel and address a message actually goes to, or say why it cannot go.

Channels are tried in preference order (the patient's own ``telecom.rank``,
then the caller's configured preference, then the policy order); the first channel with
both a usable contact and consent wins. When none does, the withheld reason is
that of the most preferred channel that had a contact, so staff see "opted out of
SMS" rather than "no email address on file".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from rules.consent.codes import CHANNELS
from rules.consent.contact import ContactChoice, ranked_contact, select_contact
from rules.consent.decision import ConsentDecision, decide_consent
from rules.consent.ledger import LedgerEntry
from rules.consent.policy import ConsentPolicy

WITHHELD_NO_CONSENT: Final = "no-consent"
WITHHELD_OPTED_OUT: Final = "opted-out"
WITHHELD_NO_CONTACT: Final = "no-contact"
WITHHELD_OPT_IN_PENDING: Final = "opt-in-pending"

_WITHHELD_BY_DECISION: Final = {
    "opted-out": WITHHELD_OPTED_OUT,
    "denied-by-consent": WITHHELD_OPTED_OUT,
    "opt-in-pending": WITHHELD_OPT_IN_PENDING,
}


@dataclass(frozen=True)
class DeliveryChoice:
    """The channel and address to use, or ``allowed=False`` with a withheld reason."""

    allowed: bool
    channel: str | None
    address: str | None
    reason: str | None
    used: tuple[str, ...] = ()
    trace: Mapping[str, Any] = field(default_factory=dict)


def withheld_reason(decision: ConsentDecision) -> str:
    """Map a consent decision's coded reason onto the delivery withheld reasons."""
    return _WITHHELD_BY_DECISION.get(decision.reason, WITHHELD_NO_CONSENT)


def _patient_channel_preference(
    patient: Mapping[str, Any] | None, now: datetime, policy: ConsentPolicy
) -> list[str]:
    """Channels ordered by the ``rank`` of the patient's best telecom for each."""
    ranked: list[tuple[float, int, str]] = []
    for position, channel in enumerate(policy.channel_order):
        found = ranked_contact(patient, channel, now, policy)
        if found is not None and math.isfinite(found[1]):
            ranked.append((found[1], position, channel))
    return [channel for _rank, _position, channel in sorted(ranked)]


def channel_order(
    patient: Mapping[str, Any] | None,
    now: datetime,
    policy: ConsentPolicy,
    preferred_channels: Sequence[str] = (),
) -> list[str]:
    """Every allowed channel once: the patient's ranked telecoms, then the caller's, then policy."""
    order: list[str] = []
    sequence = [
        *_patient_channel_preference(patient, now, policy),
        *preferred_channels,
        *policy.channel_order,
    ]
    for channel in sequence:
        if channel in CHANNELS and channel in policy.channel_order and channel not in order:
            order.append(channel)
    return order


def consent_on_channel(
    patient: Mapping[str, Any] | None,
    consents: Sequence[Mapping[str, Any]],
    ledger: Sequence[LedgerEntry],
    purpose: str,
    channel: str,
    now: datetime,
    policy: ConsentPolicy,
) -> tuple[ContactChoice, ConsentDecision] | None:
    """The patient's contact on one channel and the consent decision for it (``None``:
    no usable contact, so nothing to decide)."""
    contact = select_contact(patient, channel, now, policy)
    if contact is None:
        return None
    decision = decide_consent(
        consents=consents,
        ledger=ledger,
        purpose=purpose,
        channel=channel,
        now=now,
        policy=policy,
        address=contact.address,
    )
    return contact, decision


def choose_delivery(
    *,
    patient: Mapping[str, Any] | None,
    consents: Sequence[Mapping[str, Any]],
    ledger: Sequence[LedgerEntry],
    purpose: str,
    now: datetime,
    policy: ConsentPolicy,
    preferred_channels: Sequence[str] = (),
) -> DeliveryChoice:
    """The first channel (in preference order) with a usable contact and consent."""
    attempts: list[dict[str, Any]] = []
    withheld: str | None = None
    used: list[str] = []
    for channel in channel_order(patient, now, policy, preferred_channels):
        found = consent_on_channel(patient, consents, ledger, purpose, channel, now, policy)
        if found is None:
            attempts.append({"channel": channel, "outcome": WITHHELD_NO_CONTACT})
            continue
        contact, decision = found
        attempts.append(
            {
                "channel": channel,
                "contact": contact.source,
                "outcome": decision.reason,
                "used": list(decision.used),
                "decision": dict(decision.trace),
            }
        )
        if decision.allowed:
            return DeliveryChoice(
                allowed=True,
                channel=channel,
                address=contact.address,
                reason=None,
                used=decision.used,
                trace={"purpose": purpose, "contact": contact.source, "attempts": attempts},
            )
        used.extend(ref for ref in decision.used if ref not in used)
        if withheld is None:
            withheld = withheld_reason(decision)
    return DeliveryChoice(
        allowed=False,
        channel=None,
        address=None,
        reason=withheld or WITHHELD_NO_CONTACT,
        used=tuple(used),
        trace={"purpose": purpose, "attempts": attempts},
    )
