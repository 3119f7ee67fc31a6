"""A patient's opt-out or opt-in, on any channel: the local ledger, then one Consent in the EHR.

There is one way to record it, whatever the channel (an SMS STOP/START, an email unsubscribe):

1. the local consent ledger, committed first, because that is what stops our own sending;
2. the EHR ``Consent`` (built by :func:`fhir_bridge.inbound.resources.outreach_consent`),
   created conditionally on the identifier of the instruction, outside any transaction;
3. the earlier Consents *we* wrote for the same patient, channel, address and purpose are
   ended (``status`` inactive, ``provision.period.end`` closed) with a read-then-conditional
   update, so the EHR never holds an active deny and an active permit from us at once.

It also signs and reads the one-click unsubscribe links every email carries (RFC 8058):
the token names only our message id, is signed with a key derived from
``FHIR_BRIDGE_NOTIFICATION_SECRET`` (itsdangerous, with its own salt) and expires after
``FHIR_BRIDGE_EMAIL_UNSUBSCRIBE_DAYS``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from channels.base import ListUnsubscribe
from fhir_bridge.fhir.errors import EhrNotFound
from fhir_bridge.inbound import repository as inbound_repository
from fhir_bridge.inbound.ehr_updates import update_with_retry
from fhir_bridge.inbound.resources import (
    ConsentChange,
    consent_query,
    consents_to_end,
    end_consent,
    outreach_consent,
)
from fhir_bridge.outreach import repository as outreach_repository
from fhir_bridge.settings import Settings
from fhir_bridge.store.models import LedgerEntry

log = logging.getLogger(__name__)

SOURCE_SMS_KEYWORD: Final = "sms-keyword"
SOURCE_EMAIL_UNSUBSCRIBE: Final = "email-unsubscribe"
EMAIL_UNSUBSCRIBE_PATH: Final = "/unsubscribe/email"
_LINK_PURPOSE: Final = "fhir-bridge/email-unsubscribe/v1"
"""itsdangerous salt: keys for these links differ from every other use of the secret."""


def ledger_entry(change: ConsentChange, *, source: str, purpose: str = "*") -> LedgerEntry:
    """The local ledger row for ``change``: every purpose unless one is named, the address
    it concerns."""
    return LedgerEntry(
        patient_ref=change.patient_ref,
        channel=change.channel,
        address=change.address,
        purpose=purpose,
        action=change.action,
        source=source,
        recorded_at=change.at,
    )


def record_in_ledger(session: Session, change: ConsentChange, *, source: str) -> bool:
    """Add ``change`` to the ledger unless the address's newest entry already says the same
    (a repeated unsubscribe adds nothing); ``True`` when a row was added."""
    entries = inbound_repository.ledger_for_address(session, change.channel, change.address)
    if entries and entries[-1].action == change.action:
        return False
    outreach_repository.add_ledger_entry(session, ledger_entry(change, source=source))
    return True


def write_consent(ehr: Any, change: ConsentChange, *, attempts: int) -> str:
    """Create the Consent for ``change`` (once per instruction) and end the ones it supersedes.

    Call it outside any database transaction: it talks to the EHR. Returns the reference.
    """
    stored = dict(ehr.create(outreach_consent(change), if_none_exist=consent_query(change)))
    supersede(ehr, stored, identifier_system=change.identifier_system, attempts=attempts)
    return f"Consent/{stored.get('id')}"


def supersede(
    ehr: Any, kept: dict[str, Any], *, identifier_system: str, attempts: int
) -> list[str]:
    """End every other active Consent of ours for the same patient, channel, address and
    purposes as ``kept`` (a Consent with its ``id``); returns the references ended."""
    patient_ref = str((kept.get("patient") or {}).get("reference") or "")
    if not patient_ref:
        return []
    found = list(
        ehr.search_all("Consent", {"patient": patient_ref, "status": "active", "_count": "100"})
    )
    ended = []
    for consent_id, end in consents_to_end(kept, found, identifier_system):
        try:
            update_with_retry(ehr, "Consent", consent_id, _ender(end), attempts=attempts)
        except EhrNotFound:
            continue
        ended.append(f"Consent/{consent_id}")
    if ended:
        log.info(
            "earlier consents ended",
            extra={"consent_id": kept.get("id"), "ended_count": len(ended)},
        )
    return ended


def _ender(end: datetime) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    return lambda current: end_consent(current, end)


# -- one-click email unsubscribe links ------------------------------------------------------


class UnsubscribeTokenError(ValueError):
    """An unsubscribe token that is forged, damaged or not ours (never says which)."""


class UnsubscribeTokenExpired(UnsubscribeTokenError):
    """A genuine unsubscribe token past its validity."""


def _serializer(secret: str, clock: Callable[[], datetime]) -> URLSafeTimedSerializer:
    class _ClockSigner(TimestampSigner):
        """Signs and checks ages with our clock, so tests and workers agree on 'now'."""

        def get_timestamp(self) -> int:
            return int(clock().timestamp())

    return URLSafeTimedSerializer(secret, salt=_LINK_PURPOSE, signer=_ClockSigner)


def email_unsubscribe_token(secret: str, message_id: str, clock: Callable[[], datetime]) -> str:
    """A URL-safe signed token naming ``message_id`` (and nothing about the patient)."""
    return str(_serializer(secret, clock).dumps(message_id))


def read_email_unsubscribe_token(
    secret: str, token: str, *, max_age: timedelta, clock: Callable[[], datetime]
) -> str:
    """The message id a genuine, unexpired token names; raises :class:`UnsubscribeTokenError`."""
    try:
        value = _serializer(secret, clock).loads(token, max_age=int(max_age.total_seconds()))
    except SignatureExpired:
        raise UnsubscribeTokenExpired("unsubscribe token expired") from None
    except BadSignature:
        raise UnsubscribeTokenError("unsubscribe token not valid") from None
    if not isinstance(value, str) or not value:
        raise UnsubscribeTokenError("unsubscribe token not valid")
    return value


def email_unsubscribe_links(
    settings: Settings, message_id: str, clock: Callable[[], datetime]
) -> ListUnsubscribe | None:
    """The List-Unsubscribe links for one email; ``None`` without a notification secret
    (the SMTP adapter then refuses to send the email)."""
    secret = settings.notification_secret
    if secret is None or not secret.get_secret_value():
        return None
    token = email_unsubscribe_token(secret.get_secret_value(), message_id, clock)
    url = f"{settings.public_base_url}{EMAIL_UNSUBSCRIBE_PATH}/{token}"
    return ListUnsubscribe(url=url, mailto=settings.email_unsubscribe_mailto)


__all__ = [
    "EMAIL_UNSUBSCRIBE_PATH",
    "SOURCE_EMAIL_UNSUBSCRIBE",
    "SOURCE_SMS_KEYWORD",
    "ConsentChange",
    "UnsubscribeTokenError",
    "UnsubscribeTokenExpired",
    "email_unsubscribe_links",
    "email_unsubscribe_token",
    "ledger_entry",
    "read_email_unsubscribe_token",
    "record_in_ledger",
    "supersede",
    "write_consent",
]
