"""The patient's replies as the panel shows them (pure): crisis first, then newest first.

The reply's text is shown to staff (it is why the inbox exists) and never logged. Each
reply lists the answers staff sent to it from the panel (``rules.answers``), with their
fate in plain words: sent, scheduled for the morning, or not sent and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo

from fhir_bridge.store.models import InboundMessage, MessageStatus, PlannedMessage, StaffInboxItem
from rules.answers import is_staff_answer
from smart_app import glossary
from smart_app.timeline import local_text

CRISIS: Final = "crisis"
TEAMS: Final[dict[str, str]] = {"team:front-desk": "Front desk", "team:nurses": "Nurse line"}
ASSIGN_ME: Final = "me"
ASSIGN_NOBODY: Final = "nobody"


@dataclass(frozen=True)
class AnswerNote:
    """One answer staff sent to a reply: which one, and what became of it."""

    message_id: str
    answer: str
    label: str
    status: str
    status_label: str
    reason: str | None
    reason_label: str
    when_local: str

    @property
    def summary(self) -> str:
        """``Answered with “Please call us” · Sent`` or why it was not sent."""
        if self.status == MessageStatus.WITHHELD:
            return f"Answer \u201c{self.label}\u201d not sent: {self.reason_label}"
        return f"Answered with \u201c{self.label}\u201d \u00b7 {self.status_label}"


@dataclass(frozen=True)
class InboxEntry:
    """One reply: what the patient wrote, when (local time), and who is on it."""

    id: int
    kind: str
    kind_label: str
    crisis: bool
    open: bool
    text: str
    received: str
    received_local: str
    assigned_to: str | None
    assigned_label: str
    handled_by: str | None
    handled_local: str | None
    communication: str | None
    task: str | None
    answers: tuple[AnswerNote, ...] = ()

    @property
    def answered(self) -> bool:
        """An answer went, or will go, to this reply."""
        return any(note.status != MessageStatus.WITHHELD for note in self.answers)

    def as_json(self) -> dict[str, Any]:
        """The JSON twin (``/smart/api/inbox``)."""
        return asdict(self)


def inbox_entries(
    items: Iterable[tuple[StaffInboxItem, InboundMessage | None]],
    *,
    zone: ZoneInfo,
    me: str | None,
    answers: Mapping[int, tuple[AnswerNote, ...]] | None = None,
) -> list[InboxEntry]:
    """Open crisis replies first, then open ones, then handled; newest first within each."""
    answers = answers or {}
    entries = [_entry(item, inbound, zone, me, answers.get(item.id, ())) for item, inbound in items]
    entries.sort(key=lambda e: e.received, reverse=True)
    entries.sort(key=lambda e: (not (e.crisis and e.open), not e.open))
    return entries


def _entry(
    item: StaffInboxItem,
    inbound: InboundMessage | None,
    zone: ZoneInfo,
    me: str | None,
    answers: tuple[AnswerNote, ...],
) -> InboxEntry:
    received = inbound.received_at if inbound is not None else item.created_at
    return InboxEntry(
        id=item.id,
        kind=item.kind,
        kind_label=glossary.words(glossary.INBOX_KINDS, item.kind),
        crisis=item.kind == CRISIS or item.priority == "stat",
        open=item.status == "open",
        text=inbound.body if inbound is not None else "",
        received=received.isoformat(timespec="seconds"),
        received_local=local_text(received, zone),
        assigned_to=item.assigned_to,
        assigned_label=assignee_label(item.assigned_to, me),
        handled_by=item.handled_by,
        handled_local=local_text(item.handled_at, zone) if item.handled_at else None,
        communication=item.communication_ref,
        task=item.task_ref,
        answers=answers,
    )


def answer_notes(
    rows: Iterable[PlannedMessage], zone: ZoneInfo
) -> dict[int, tuple[AnswerNote, ...]]:
    """The patient's staff answers by the inbox item they answer, oldest first."""
    notes: dict[int, list[AnswerNote]] = {}
    for row in sorted(rows, key=lambda r: r.created_at):
        trace = row.trace or {}
        item_id = trace.get("inbox_item")
        if not is_staff_answer(row.key) or not isinstance(item_id, int):
            continue
        status = _status(row.status)
        notes.setdefault(item_id, []).append(
            AnswerNote(
                message_id=row.id,
                answer=str(trace.get("answer") or ""),
                label=str(trace.get("answer_label") or trace.get("answer") or ""),
                status=status.value,
                status_label=glossary.STATUSES[status],
                reason=row.reason,
                reason_label=glossary.reason(row.reason),
                when_local=local_text(row.sent_at or row.send_at, zone),
            )
        )
    return {item_id: tuple(found) for item_id, found in notes.items()}


def _status(value: str) -> MessageStatus:
    try:
        return MessageStatus(value)
    except ValueError:
        return MessageStatus.UNKNOWN


def assignee_label(assigned_to: str | None, me: str | None) -> str:
    """Who an item is assigned to, in words."""
    if not assigned_to:
        return "Unassigned"
    if assigned_to == me:
        return "You"
    return TEAMS.get(assigned_to, assigned_to)


def assignee_ref(choice: str, me: str | None) -> str | None:
    """What an "assign to" choice stores; ValueError for a choice the form never offers."""
    if choice == ASSIGN_ME and me:
        return me
    if choice == ASSIGN_NOBODY:
        return None
    if choice in TEAMS:
        return choice
    raise ValueError("unknown assignee")
