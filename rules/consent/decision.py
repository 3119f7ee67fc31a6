"""May this purpose go out on this channel? One explainable answer per message.

Precedence, in order:

1. Unknown channel or purpose: deny (nothing is sent that policy does not name).
2. Every applicable statement (EHR Consent provisions, see :mod:`rules.consent.provisions`,
   and ledger entries) is ranked: the most **recent** wins, because
   the patient's latest word is their wish and a STOP must defeat any earlier
   permission however specific (CTIA/TCPA); among equally recent ones (the
   provisions of one Consent) the more **specific** wins (purpose, channel and
   address each count; a nested provision beats its parent); at equal rank an
   explicit **deny** beats a pending opt-in, which beats a permit.
3. Permits that are not explicit enough are disregarded: promotional purposes
   need a permit naming that purpose, and with SMS double opt-in a text needs a
   permit naming the SMS channel (a confirmed YES/START or an SMS opt-in Consent).
4. Nothing applicable: the per-purpose default from :class:`ConsentPolicy`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from rules.consent.codes import CHANNEL_SMS, CHANNELS
from rules.consent.ledger import LedgerEntry, ledger_statements
from rules.consent.policy import ConsentPolicy, PurposeRule
from rules.consent.provisions import consent_statements
from rules.consent.statements import DENY, PENDING, PERMIT, Ignored, Statement

REASON_PERMITTED_BY_CONSENT: Final = "permitted-by-consent"
REASON_DENIED_BY_CONSENT: Final = "denied-by-consent"
REASON_OPTED_IN: Final = "opted-in"
REASON_OPTED_OUT: Final = "opted-out"
REASON_OPT_IN_PENDING: Final = "opt-in-pending"
REASON_DEFAULT_ALLOW: Final = "default-allow"
REASON_DEFAULT_DENY: Final = "default-deny"
REASON_OPT_IN_REQUIRED: Final = "opt-in-required"
REASON_UNKNOWN_PURPOSE: Final = "unknown-purpose"
REASON_UNKNOWN_CHANNEL: Final = "unknown-channel"

_REASONS: Final = {
    ("consent", PERMIT): REASON_PERMITTED_BY_CONSENT,
    ("consent", DENY): REASON_DENIED_BY_CONSENT,
    ("consent", PENDING): REASON_OPT_IN_PENDING,
    ("ledger", PERMIT): REASON_OPTED_IN,
    ("ledger", DENY): REASON_OPTED_OUT,
    ("ledger", PENDING): REASON_OPT_IN_PENDING,
}


@dataclass(frozen=True)
class ConsentDecision:
    """Whether one purpose may go out on one channel, and what that rests on.

    ``used`` lists the Consents (``Consent/77``) and ledger entries (``ledger:42``)
    that applied, the deciding one first; ``trace`` explains the rest (no PHI).
    """

    allowed: bool
    reason: str
    used: tuple[str, ...] = ()
    trace: Mapping[str, Any] = field(default_factory=dict)


def _explicit_enough(
    statement: Statement, rule: PurposeRule, channel: str, policy: ConsentPolicy
) -> bool:
    if statement.effect != PERMIT:
        return True
    if rule.promotional and not statement.purpose_specific:
        return False
    return not (
        channel == CHANNEL_SMS and policy.sms_double_opt_in and not statement.channel_specific
    )


def _default(rule: PurposeRule, channel: str, policy: ConsentPolicy) -> tuple[bool, str]:
    if rule.promotional:
        return False, REASON_DEFAULT_DENY
    if channel == CHANNEL_SMS and policy.sms_double_opt_in:
        return False, REASON_OPT_IN_REQUIRED
    if channel in rule.default_channels:
        return True, REASON_DEFAULT_ALLOW
    return False, REASON_DEFAULT_DENY


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
    """Decide whether ``purpose`` may be sent on ``channel`` (to ``address``) at ``now``.

    ``consents`` and ``ledger`` must already be this patient's (the caller
    searched by patient); ``address`` narrows ledger entries recorded for one
    number or email address. See the module docstring for precedence.
    """
    trace: dict[str, Any] = {"purpose": purpose, "channel": channel}
    if channel not in CHANNELS:
        return ConsentDecision(False, REASON_UNKNOWN_CHANNEL, (), trace)
    rule = policy.rule_for(purpose)
    if rule is None:
        return ConsentDecision(False, REASON_UNKNOWN_PURPOSE, (), trace)

    from_consents, ignored = consent_statements(
        consents, purpose=purpose, channel=channel, now=now, policy=policy
    )
    from_ledger, ignored_ledger = ledger_statements(
        ledger, purpose=purpose, channel=channel, address=address, policy=policy
    )
    ignored = [*ignored, *ignored_ledger]
    candidates: list[Statement] = []
    for statement in [*from_consents, *from_ledger]:
        if _explicit_enough(statement, rule, channel, policy):
            candidates.append(statement)
        else:
            ignored.append(Ignored(statement.ref, "permit-not-explicit"))
    trace["ignored"] = [{"ref": item.ref, "why": item.why} for item in ignored]
    trace["statements"] = [statement.describe() for statement in candidates]

    if not candidates:
        allowed, reason = _default(rule, channel, policy)
        trace["basis"] = "policy-default"
        return ConsentDecision(allowed, reason, (), trace)

    ordered = sorted(candidates, key=lambda statement: statement.rank, reverse=True)
    winner = ordered[0]
    used: list[str] = []
    for statement in ordered:
        if statement.ref not in used:
            used.append(statement.ref)
    trace["basis"] = "statement"
    trace["winner"] = {"ref": winner.ref, "where": winner.where}
    return ConsentDecision(
        allowed=winner.effect == PERMIT,
        reason=_REASONS[(winner.origin, winner.effect)],
        used=tuple(used),
        trace=trace,
    )
