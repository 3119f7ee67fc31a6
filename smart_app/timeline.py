"""The outreach timeline a member of staff reads: one entry per planned message (pure).

Addresses are masked (last four digits / email domain) even here: staff need to
recognise which number was used, not read it back to anyone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Final

from fhir_bridge.outreach.repository import OPEN_STATUSES
from fhir_bridge.store.models import REASON_CANCELLED_BY_STAFF, PlannedMessage
from rules.consent import mask_address

KNOWN_STATUSES: Final = frozenset(
    {"planned", "queued", "sending", "sent", "withheld", "cancelled", "failed", "unknown"}
)
STAFF_CANCEL_REASON: Final = REASON_CANCELLED_BY_STAFF


@dataclass(frozen=True)
class TimelineEntry:
    """What the panel shows for one message; ``why`` is the rule's trace, pretty-printed."""

    id: str
    when: str
    rule: str
    purpose: str
    channel: str | None
    address_hint: str | None
    status: str
    reason: str | None
    reason_detail: str | None
    text: str | None
    subject: str | None
    communication_id: str | None
    cancellable: bool
    why: str

    def as_json(self) -> dict[str, Any]:
        """The JSON twin (``/smart/api/timeline``), with the trace as an object."""
        body = asdict(self)
        body["why"] = json.loads(self.why)
        return body


def timeline_entries(rows: Iterable[PlannedMessage]) -> list[TimelineEntry]:
    """Entries oldest first; the rendered text only for messages that went out."""
    ordered = sorted(rows, key=lambda row: (_moment(row), row.id))
    return [_entry(row) for row in ordered]


def _moment(row: PlannedMessage) -> datetime:
    return row.sent_at or row.send_at


def _entry(row: PlannedMessage) -> TimelineEntry:
    status = row.status if row.status in KNOWN_STATUSES else "unknown"
    went_out = status in ("sent", "unknown", "sending")
    return TimelineEntry(
        id=row.id,
        when=_moment(row).isoformat(timespec="minutes"),
        rule=row.rule,
        purpose=row.purpose,
        channel=row.channel,
        address_hint=mask_address(row.address) if row.address else None,
        status=status,
        reason=row.reason,
        reason_detail=row.reason_detail,
        text=row.text if went_out else None,
        subject=row.subject_line if went_out else None,
        communication_id=row.communication_id,
        cancellable=status in OPEN_STATUSES,
        why=json.dumps(row.trace or {}, indent=2, sort_keys=True, default=str),
    )
