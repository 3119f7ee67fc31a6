"""Reply SMS: the wording, which replies may bypass consent, and sending each exactly once.

**Consent bypass.** Only replies the law or carrier rules require go to a number whatever
its consent state: the opt-out confirmation (CTIA / TCPA: one confirmation after STOP), the
HELP answer (CTIA), the crisis resources (patient safety), and the one-time "this number
can't read replies" answer to an unknown sender (a direct, content-free response to the
message the person just sent). Every other reply is sent only if the address is not opted
out in the local ledger at the moment of sending.

**Language.** Every reply is worded in English or Spanish (:mod:`rules.reply_texts`); the
caller picks the language (the patient's, see ``processing``).

**Exactly once.** The ``sms_reply`` row (unique key: inbound MessageSid + reply kind) is
written and moved to ``sending`` before the provider call, like the outreach send ledger;
a ``sending`` row found after a crash is settled with the provider's ``find_sent`` where
possible and otherwise marked ``unknown``, never sent blindly again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy.orm import Session, sessionmaker

from channels.base import (
    ChannelAdapter,
    OutboundMessage,
    PermanentChannelError,
    SentRecord,
    TransientChannelError,
)
from fhir_bridge.inbound import repository
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import SmsReply
from rules.reply_texts import (
    DEFAULT_REPLY_LANGUAGE,
    REPLY_CLARIFY_CANCEL,
    REPLY_CONFIRMED,
    REPLY_CRISIS,
    REPLY_HELP,
    REPLY_LANGUAGES,
    REPLY_NOT_CONFIRMED,
    REPLY_OPT_IN,
    REPLY_OPT_OUT,
    REPLY_RECEIVED,
    REPLY_RESCHEDULE,
    REPLY_UNKNOWN_SENDER,
    render_reply,
)

__all__ = [
    "CONSENT_EXEMPT_REPLIES",
    "REPLY_CLARIFY_CANCEL",
    "REPLY_CONFIRMED",
    "REPLY_CRISIS",
    "REPLY_HELP",
    "REPLY_LANGUAGES",
    "REPLY_NOT_CONFIRMED",
    "REPLY_OPT_IN",
    "REPLY_OPT_OUT",
    "REPLY_RECEIVED",
    "REPLY_RESCHEDULE",
    "REPLY_UNKNOWN_SENDER",
    "ClinicVoice",
    "ReplyDeferred",
    "ReplySender",
    "reply_text",
]

log = logging.getLogger(__name__)

CONSENT_EXEMPT_REPLIES: Final = frozenset(
    {REPLY_OPT_OUT, REPLY_HELP, REPLY_CRISIS, REPLY_UNKNOWN_SENDER}
)


class ReplyDeferred(RuntimeError):
    """The provider is unavailable right now; the inbound message is processed again later."""


@dataclass(frozen=True)
class ClinicVoice:
    """What replies say about the clinic. ``crisis_text`` is a clinic's own English crisis
    wording (``None``: the built-in 988/911 text); ``default_language`` answers when neither
    the patient's language nor the reply's own words settle it."""

    name: str
    phone: str
    crisis_text: str | None = None
    default_language: str = DEFAULT_REPLY_LANGUAGE


def reply_text(kind: str, clinic: ClinicVoice, language: str | None = None) -> str:
    """The wording of a reply kind in ``language`` (see :mod:`rules.reply_texts`)."""
    return render_reply(
        kind,
        language or clinic.default_language,
        clinic=clinic.name,
        phone=clinic.phone,
        crisis_override=clinic.crisis_text,
    )


@dataclass
class ReplySender:
    """Sends reply SMS through the configured adapter, once per (inbound message, kind)."""

    factory: sessionmaker[Session]
    adapter: ChannelAdapter | None
    clock: Callable[[], datetime]
    lease: timedelta

    def send(
        self, *, inbound_id: int, inbound_sid: str, kind: str, to: str, text: str, allowed: bool
    ) -> str:
        """Send (or settle) one reply; returns sent / withheld / failed / unknown / busy."""
        key = f"{inbound_sid}:{kind}"
        with transaction(self.factory) as session:
            row = repository.reply_by_key(session, key) or repository.insert_once(
                session,
                SmsReply(
                    id=str(uuid.uuid4()),
                    key=key,
                    inbound_id=inbound_id,
                    kind=kind,
                    to_address=to,
                    text=text,
                    status="pending" if allowed else "withheld",
                    created_at=self.clock(),
                ),
            )
            if row is None:
                return "busy"
            now = self.clock()
            verdict = self._claim(row, now)
            outbound = OutboundMessage(message_id=row.id, channel="sms", to=to, text=row.text)
            record = SentRecord.of_row(row, to=row.to_address, text=row.text, now=now)
        if verdict == "abandoned":
            verdict = self._settle_abandoned(record, taken_until=now + self.lease)
        if verdict != "claimed":
            return verdict
        return self._deliver(outbound, kind)

    def _claim(self, row: SmsReply, now: datetime) -> str:
        """Take the row for sending; ``abandoned``: a crashed send, taken over for settling."""
        if row.status == "sending":
            if row.lease_until is not None and row.lease_until >= now:
                return "busy"
            row.lease_until = now + self.lease  # ours until then: no other worker settles it
            return "abandoned"
        if row.status != "pending":
            return row.status
        if self.adapter is None:
            row.status, row.error_code = "failed", "no-channel"
            return "failed"
        row.status, row.lease_until, row.attempts = "sending", now + self.lease, row.attempts + 1
        return "claimed"

    def _settle_abandoned(self, record: SentRecord, *, taken_until: datetime) -> str:
        """Ask the provider about a crashed send (no transaction open), then settle the row
        if it is still the one taken over (a conditional update)."""
        adapter = self.adapter
        can_look_up = adapter is not None and adapter.can_look_up()
        receipt = None
        if adapter is not None and can_look_up:
            try:
                receipt = adapter.find_sent(record.message_id, record)
            except TransientChannelError:
                # The provider could not be asked: never guess "not sent"; look again when
                # the lease taken over ends.
                return "busy"
        now = self.clock()
        settled: dict[str, Any]
        if receipt is not None:
            settled = {
                "status": "sent",
                "lease_until": None,
                "sent_at": now,
                "provider_message_id": receipt.provider_message_id,
            }
            verdict = "sent"
        elif can_look_up:
            settled = {"lease_until": now + self.lease, "attempts": SmsReply.attempts + 1}
            verdict = "claimed"
        else:
            settled = {"status": "unknown", "lease_until": None}
            verdict = "unknown"
        with transaction(self.factory) as session:
            if not repository.settle_reply(session, record.message_id, taken_until, settled):
                return "busy"  # settled by another worker meanwhile
        if verdict == "unknown":
            log.warning(
                "reply outcome unknown; not resending", extra={"reply_id": record.message_id}
            )
        return verdict

    def _deliver(self, outbound: OutboundMessage, kind: str) -> str:
        assert self.adapter is not None
        try:
            receipt = self.adapter.send(outbound)
        except TransientChannelError as exc:
            self._finish(outbound.message_id, "pending", error_code=exc.code)
            raise ReplyDeferred(f"reply deferred ({exc.code})") from None
        except PermanentChannelError as exc:
            self._finish(outbound.message_id, "failed", error_code=exc.code)
            log.warning("reply failed", extra={"reply_id": outbound.message_id, "code": exc.code})
            return "failed"
        self._finish(outbound.message_id, "sent", provider_id=receipt.provider_message_id)
        log.info("reply sent", extra={"reply_id": outbound.message_id, "kind": kind})
        return "sent"

    def _finish(
        self,
        reply_id: str,
        status: str,
        *,
        provider_id: str | None = None,
        error_code: str | None = None,
    ) -> None:
        with transaction(self.factory) as session:
            row = session.get(SmsReply, reply_id)
            assert row is not None
            row.status, row.lease_until, row.error_code = status, None, error_code
            if provider_id is not None:
                row.provider_message_id, row.sent_at = provider_id, self.clock()
