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

from fhir_bridge.inbound.resources import CONSENT_TAG, TAG_SYSTEM
from rules.consent import ConsentPolicy, LedgerEntry, decide_consent, mask_address, select_contact
from rules.consent.decision import REASON_DEFAULT_DENY, REASON_OPT_IN_REQUIRED
from smart_app import glossary


@dataclass(frozen=True)
class ConsentCell:
    """One purpose on one channel: allowed or not, the coded reason and what it rests on."""

    purpose: str
    allowed: bool
    reason: str
    used: tuple[str, ...]
    source: str = "default"

    @property
    def source_label(self) -> str:
        """Where the decision comes from, in plain words."""
        return glossary.words(glossary.CONSENT_SOURCES, self.source)

    @property
    def reason_label(self) -> str:
        """The decision's reason, in plain words."""
        return glossary.reason(self.reason)


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
    source = cell_source(decision.used[0], consents, ledger) if decision.used else "default"
    reason = decision.reason
    rule = policy.rule_for(purpose)
    if rule is not None and rule.promotional and reason == REASON_DEFAULT_DENY:
        reason = REASON_OPT_IN_REQUIRED  # health tips: "needs opt-in", as campaigns withhold it
    return ConsentCell(purpose, decision.allowed, reason, decision.used, source)


def cell_source(
    deciding: str, consents: Sequence[Mapping[str, Any]], ledger: Sequence[LedgerEntry]
) -> str:
    """What the deciding statement is: a ledger entry's source (STOP reply, staff, ...), a
    Consent recorded by staff from the panel, one written for a STOP reply, or the chart's."""
    if deciding.startswith("ledger:"):
        named = deciding.removeprefix("ledger:")
        entry = next((e for e in ledger if e.id == named), None)
        return entry.source if entry is not None else "default"
    consent_id = deciding.partition("/")[2].split("/_history/")[0]
    consent = next((c for c in consents if str(c.get("id")) == consent_id), None)
    if consent is None or not _ours(consent):
        return "ehr-consent"
    performers = [str((p or {}).get("reference") or "") for p in consent.get("performer") or []]
    if any(ref.startswith("Practitioner/") for ref in performers):
        return "staff"
    actions = (consent.get("provision") or {}).get("action") or []
    codes = {c.get("code") for a in actions for c in (a or {}).get("coding") or []}
    return "email-unsubscribe" if "email" in codes else "sms-keyword"


def _ours(consent: Mapping[str, Any]) -> bool:
    tags = (consent.get("meta") or {}).get("tag") or []
    return any(t.get("system") == TAG_SYSTEM and t.get("code") == CONSENT_TAG for t in tags)
