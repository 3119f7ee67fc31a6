"""Stub: replaced by the full decision logic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rules.consent.ledger import LedgerEntry
from rules.consent.policy import ConsentPolicy


@dataclass(frozen=True)
class ConsentDecision:
    """Whether one purpose may go out on one channel, and what that rests on."""

    allowed: bool
    reason: str
    used: tuple[str, ...] = ()
    trace: Mapping[str, Any] = field(default_factory=dict)


def decide_consent(
    *,
    consents: Sequence[Mapping[str, Any]],
    ledger: Sequence[LedgerEntry],
    purpose: str,
    channel: str,
    now: datetime,
    policy: ConsentPolicy,
    address: str | None = None,
) -> ConsentDecision:
    """Decide consent for ``purpose`` on ``channel`` (stub: policy default only)."""
    rule = policy.rule_for(purpose)
    if rule is None:
        return ConsentDecision(False, "unknown-purpose")
    if channel in rule.default_channels:
        return ConsentDecision(True, "default-allow")
    return ConsentDecision(False, "default-deny")
