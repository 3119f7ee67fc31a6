"""Consent state per channel and purpose, as the delivery code would decide it now (pure).

Uses the same :func:`rules.consent.decide_consent` as delivery, with the
patient's EHR Consents and the local ledger, for the contact delivery would
pick on each channel, so what staff see is what the next send will do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rules.consent import ConsentPolicy, LedgerEntry, decide_consent, mask_address, select_contact


@dataclass(frozen=True)
class ConsentCell:
    """One purpose on one channel: allowed or not, the coded reason and what it rests on."""

    purpose: str
    allowed: bool
    reason: str
    used: tuple[str, ...]


@dataclass(frozen=True)
class ChannelConsent:
    """One channel: the contact delivery would use (masked) and a cell per purpose."""

    channel: str
    address_hint: str | None
    cells: tuple[ConsentCell, ...]


def consent_matrix(
    *,
    patient: Mapping[str, Any] | None,
    consents: Sequence[Mapping[str, Any]],
    ledger: Sequence[LedgerEntry],
    policy: ConsentPolicy,
    now: datetime,
) -> list[ChannelConsent]:
    """A row per channel in policy order, a cell per configured purpose (sorted)."""
    rows = []
    for channel in policy.channel_order:
        contact = select_contact(patient, channel, now, policy)
        address = contact.address if contact else None
        cells = tuple(
            _cell(purpose, channel, address, consents, ledger, policy, now)
            for purpose in sorted(policy.purposes)
        )
        rows.append(ChannelConsent(channel, mask_address(address) if address else None, cells))
    return rows


def _cell(
    purpose: str,
    channel: str,
    address: str | None,
    consents: Sequence[Mapping[str, Any]],
    ledger: Sequence[LedgerEntry],
    policy: ConsentPolicy,
    now: datetime,
) -> ConsentCell:
    decision = decide_consent(
        consents=consents,
        ledger=ledger,
        purpose=purpose,
        channel=channel,
        now=now,
        policy=policy,
        address=address,
    )
    return ConsentCell(purpose, decision.allowed, decision.reason, decision.used)
