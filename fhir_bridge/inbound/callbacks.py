"""Recording provider status callbacks on the send ledger (``PlannedMessage``).

Each callback is stored once (unique per provider message id and status) and then applied
in order. A callback that arrives before the worker has recorded the send (the provider can
be faster than our commit) stays ``pending`` and is applied by the relay later. A status
change asks for the EHR Communication to be updated (``communication_sync``), which a Celery
task does after commit. Provider errors that say something about the address (21610 opted
out, 21211/21614 not a usable mobile number) become opt-out ledger entries for that address,
which the consent engine reads at every send, so the address is skipped from then on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from fhir_bridge.inbound import repository
from fhir_bridge.inbound.status import (
    FAILED_STATUSES,
    contact_consequence,
    next_delivery_status,
)
from fhir_bridge.outreach.lifecycle import MessageLifecycle, MessageStatus
from fhir_bridge.store.models import DeliveryReceipt, LedgerEntry, PlannedMessage

log = logging.getLogger(__name__)

LEDGER_SOURCE_PROVIDER = "provider"


@dataclass(frozen=True)
class StatusCallback:
    """The parts of a status callback we act on (no phone numbers, no text)."""

    message_id: str
    provider_message_id: str
    status: str
    error_code: str | None


@dataclass(frozen=True)
class CallbackOutcome:
    duplicate: bool
    sync_requested: bool


def accept_status_callback(
    session: Session, callback: StatusCallback, now: datetime
) -> CallbackOutcome:
    """Store the callback once and apply whatever can be applied now."""
    stored = repository.insert_once(
        session,
        DeliveryReceipt(
            message_id=callback.message_id,
            provider_message_id=callback.provider_message_id,
            status=callback.status,
            error_code=callback.error_code,
            received_at=now,
            outcome="pending",
        ),
    )
    if stored is None:
        return CallbackOutcome(duplicate=True, sync_requested=False)
    return CallbackOutcome(
        duplicate=False, sync_requested=apply_receipts(session, callback.message_id, now)
    )


def apply_receipts(session: Session, message_id: str, now: datetime) -> bool:
    """Apply pending receipts to the message; True if its Communication needs an update."""
    receipts = repository.receipts_to_apply(session, message_id)
    if not receipts:
        return False
    message = repository.planned_for_update(session, message_id)
    if message is None:
        for receipt in receipts:
            receipt.outcome = "orphan"
        return False
    changed = False
    for receipt in receipts:
        if not _ready_for(session, message, receipt):
            continue
        if receipt.provider_message_id != message.provider_message_id:
            receipt.outcome = "mismatch"
            log.warning("callback for another provider message", extra={"message_id": message_id})
            continue
        new_status = next_delivery_status(message.delivery_status, receipt.status)
        if new_status is None:
            receipt.outcome = "ignored"
            continue
        receipt.outcome = "applied"
        message.delivery_status = new_status
        changed = True
        if new_status in FAILED_STATUSES:
            _record_failure(session, message, receipt, now)
    if changed:
        repository.request_communication_sync(session, message_id, now)
        log.info(
            "delivery status recorded",
            extra={"message_id": message_id, "delivery_status": message.delivery_status},
        )
    return changed


def _ready_for(session: Session, message: PlannedMessage, receipt: DeliveryReceipt) -> bool:
    """Whether the send is recorded; an ``unknown`` send is settled by the callback itself."""
    if message.status == MessageStatus.UNKNOWN and message.provider_message_id is None:
        MessageLifecycle(session).confirm_sent(
            message.id, provider="twilio", provider_message_id=receipt.provider_message_id
        )
    return message.status == MessageStatus.SENT and message.provider_message_id is not None


def _record_failure(
    session: Session, message: PlannedMessage, receipt: DeliveryReceipt, now: datetime
) -> None:
    message.reason = receipt.status
    message.reason_detail = f"provider error {receipt.error_code or 'unspecified'}"
    consequence = contact_consequence(receipt.error_code)
    if consequence is None or not message.address:
        return
    session.add(
        LedgerEntry(
            patient_ref=message.patient_ref,
            channel=message.channel or "sms",
            address=message.address,
            purpose="*",
            action="opt-out",
            source=LEDGER_SOURCE_PROVIDER,
            recorded_at=now,
        )
    )
    log.warning(
        "address no longer used",
        extra={"message_id": message.id, "code": receipt.error_code, "why": consequence},
    )
