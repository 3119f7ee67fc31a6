"""The local opt-in/opt-out ledger: what patients told *us* (STOP, START, staff calls).

Entries are facts with a timestamp; the consent decision weighs them against EHR
Consents by recency, so the ledger never needs rewriting when a patient changes
their mind: a newer entry simply wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from rules.consent.codes import ANY
from rules.consent.contact import normalize_address
from rules.consent.fhirtime import as_utc
from rules.consent.policy import ConsentPolicy
from rules.consent.statements import DENY, PENDING, PERMIT, Ignored, Match, Statement, applies

ACTION_OPT_IN: Final = "opt-in"
ACTION_OPT_OUT: Final = "opt-out"
ACTION_OPT_IN_PENDING: Final = "opt-in-pending"
LEDGER_ACTIONS: Final = frozenset({ACTION_OPT_IN, ACTION_OPT_OUT, ACTION_OPT_IN_PENDING})

SOURCE_SMS_KEYWORD: Final = "sms-keyword"
SOURCE_STAFF: Final = "staff"
SOURCE_PROVIDER: Final = "provider"
SOURCE_EHR_CONSENT: Final = "ehr-consent"
LEDGER_SOURCES: Final = frozenset(
    {SOURCE_SMS_KEYWORD, SOURCE_STAFF, SOURCE_PROVIDER, SOURCE_EHR_CONSENT}
)
_EFFECTS: Final = {ACTION_OPT_IN: PERMIT, ACTION_OPT_OUT: DENY, ACTION_OPT_IN_PENDING: PENDING}


@dataclass(frozen=True)
class LedgerEntry:
    """One recorded opt-in/opt-out.

    ``channel`` and ``purpose`` may be ``"*"`` (all). ``address`` limits the entry
    to one phone number or email address (a STOP applies to the number it came
    from); ``None`` means every address on the channel.
    """

    id: str
    patient_ref: str
    channel: str
    address: str | None
    purpose: str
    action: str
    recorded_at: datetime
    source: str


def ledger_statements(
    ledger: Sequence[LedgerEntry],
    *,
    purpose: str,
    channel: str,
    address: str | None,
    policy: ConsentPolicy,
) -> tuple[list[Statement], list[Ignored]]:
    """Statements from the ledger entries that concern this channel, purpose and address."""
    statements: list[Statement] = []
    ignored: list[Ignored] = []
    wanted = normalize_address(channel, address, policy.default_region) if address else None
    for entry in ledger:
        ref = f"ledger:{entry.id}"
        effect = _EFFECTS.get(entry.action)
        if effect is None:
            ignored.append(Ignored(ref, "unknown-action"))
            continue
        if entry.channel not in (channel, ANY) or entry.purpose not in (purpose, ANY):
            continue
        match = Match.YES
        if entry.address is not None:
            recorded = normalize_address(channel, entry.address, policy.default_region)
            if address is None:
                match = Match.UNSURE
            elif (recorded or entry.address) != (wanted or address):
                continue
        if not applies(match, effect):
            ignored.append(Ignored(ref, "address-unknown"))
            continue
        statements.append(
            Statement(
                ref=ref,
                where=entry.source,
                effect=effect,
                origin="ledger",
                at=as_utc(entry.recorded_at),
                purpose_specific=entry.purpose != ANY,
                channel_specific=entry.channel != ANY,
                address_specific=entry.address is not None,
            )
        )
    return statements, ignored
