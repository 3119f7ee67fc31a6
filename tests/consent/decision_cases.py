"""A table row for ``decide_consent`` and the one way every row is checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rules.consent import ConsentPolicy, LedgerEntry, decide_consent
from tests.consent.fhir_fixtures import MOBILE_E164, NOW


@dataclass(frozen=True)
class Case:
    allowed: bool
    reason: str
    consents: tuple[dict[str, Any], ...] = ()
    ledger: tuple[LedgerEntry, ...] = ()
    purpose: str = "appointment-reminder"
    channel: str = "sms"
    address: str | None = MOBILE_E164
    policy: dict[str, Any] = field(default_factory=dict)
    used: tuple[str, ...] | None = None


def assert_decision(case: Case) -> None:
    """Decide ``case`` at :data:`NOW` and compare outcome, reason and (if given) sources."""
    decision = decide_consent(
        consents=case.consents,
        ledger=case.ledger,
        purpose=case.purpose,
        channel=case.channel,
        now=NOW,
        policy=ConsentPolicy(**case.policy),
        address=case.address,
    )
    assert (decision.allowed, decision.reason) == (case.allowed, case.reason)
    if case.used is not None:
        assert decision.used == case.used
