"""Channel fallback (#5 item 8): when the chosen channel fails for good, try the next one.

A permanent failure that condemns the address (``invalid-address``, ``unsubscribed``) is
turned into a provider opt-out for that address, and the same consent and contact decision
is made again: the consent engine then skips that address, so the result is the next
*permitted* channel or address, or ``None`` when there is none. Pure logic, no I/O; the send
path (``outreach.delivery._record_failure``) calls it when fallback is enabled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from rules.config import RulesConfig
from rules.consent import LedgerEntry
from rules.model import PatientSnapshot, PlannedMessage, PreparedDelivery, WithheldMessage
from rules.outreach import prepare_delivery

FALLBACK_REASONS: Final = frozenset({"invalid-address", "unsubscribed"})


def fallback_delivery(
    message: PlannedMessage,
    snapshot: PatientSnapshot,
    consents: Sequence[Mapping[str, Any]],
    ledger: Sequence[LedgerEntry],
    config: RulesConfig,
    now: datetime,
    *,
    failed_channel: str,
    failed_address: str,
    failure_reason: str,
) -> PreparedDelivery | None:
    """The next permitted channel/address after a permanent failure, or ``None``."""
    if failure_reason not in FALLBACK_REASONS:
        return None
    unusable = LedgerEntry(
        id="fallback",
        patient_ref=message.patient_ref,
        channel=failed_channel,
        address=failed_address,
        purpose="*",
        action="opt-out",
        recorded_at=now,
        source="provider",
    )
    decision = prepare_delivery(message, snapshot, consents, [*ledger, unusable], config, now)
    if isinstance(decision, WithheldMessage):
        return None
    if (decision.channel, decision.address) == (failed_channel, failed_address):
        return None
    return decision
