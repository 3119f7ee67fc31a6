"""The local opt-in/opt-out ledger: what patients told *us* (STOP, START, staff calls).

Entries are facts with a timestamp; the consent decision weighs them against EHR
Consents by recency, so the ledger never needs rewriting when a patient changes
their mind: a newer entry simply wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

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
