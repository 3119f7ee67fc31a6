"""One comparable shape for what EHR Consents and the local ledger say.

Both sources say the same kind of thing ("on this channel, for this purpose,
from this moment: yes/no"), so the decision ranks them together. Each statement
knows how specific it is and when it was made.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Final

PERMIT: Final = "permit"
DENY: Final = "deny"
PENDING: Final = "pending"
_EFFECT_WEIGHT: Final = {PERMIT: 0, PENDING: 1, DENY: 2}


class Match(Enum):
    """Whether a statement concerns the message being decided."""

    YES = "yes"
    NO = "no"
    UNSURE = "unsure"


@dataclass(frozen=True)
class Statement:
    """One permit/deny/pending statement that applies to the message being decided."""

    ref: str
    where: str
    effect: str
    origin: str
    at: datetime
    purpose_specific: bool
    channel_specific: bool
    address_specific: bool
    depth: int = 0

    @property
    def rank(self) -> tuple[datetime, int, int, int]:
        """Newest first, then most specific, then deny over pending over permit."""
        specificity = int(self.purpose_specific) + int(self.channel_specific)
        specificity += int(self.address_specific)
        return (self.at, specificity, self.depth, _EFFECT_WEIGHT[self.effect])

    def describe(self) -> dict[str, Any]:
        """A PHI-free summary for the decision trace."""
        return {
            "ref": self.ref,
            "where": self.where,
            "effect": self.effect,
            "at": self.at.isoformat(),
            "purpose_specific": self.purpose_specific,
            "channel_specific": self.channel_specific,
            "address_specific": self.address_specific,
        }


@dataclass(frozen=True)
class Ignored:
    """A Consent or ledger entry that was looked at and did not apply, and why."""

    ref: str
    why: str


def combine(first: Match, second: Match) -> Match:
    if Match.NO in (first, second):
        return Match.NO
    if Match.UNSURE in (first, second):
        return Match.UNSURE
    return Match.YES


def applies(match: Match, effect: str) -> bool:
    """Sure matches always apply; unsure ones only when they restrict."""
    return match is Match.YES or (match is Match.UNSURE and effect != PERMIT)
