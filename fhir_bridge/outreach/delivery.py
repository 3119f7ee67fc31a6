"""Sending one due message, exactly once.

1. Re-read what the message is about and the patient from the EHR (a missed
   cancellation is caught here), re-plan, and stop if the message is gone.
2. Decide channel, consent and text with the pure rules (``prepare_delivery``).
3. Move the row ``queued`` → ``sending`` with a conditional update and commit
   *before* calling the provider: that row is the send ledger.
4. Call the provider, then record ``sent``. A crash between 3 and 4 leaves a
   ``sending`` row that ``reconcile_abandoned`` settles without resending
   blindly: the provider is asked where it can be, otherwise the message is
   marked ``unknown`` (never sent twice; visible to staff and auditors).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from channels.base import (
    ChannelAdapter,
    ListUnsubscribe,
    OutboundMessage,
    PermanentChannelError,
    TransientChannelError,
)
from fhir_bridge.fhir.errors import EhrNotFound
from fhir_bridge.outreach import repository
from fhir_bridge.outreach.planning import log_withheld
from fhir_bridge.outreach.snapshot import ReferenceSource, live_snapshot, prefetch_references
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import LedgerEntry, PlannedMessage
from rules.config import RulesConfig
from rules.model import PlannedMessage as Planned
from rules.model import WithheldMessage
from rules.outreach import prepare_delivery

log = logging.getLogger(__name__)

UNUSABLE_ADDRESS_REASONS = frozenset({"invalid-address", "unsubscribed"})


@dataclass
class DeliveryDeps:
    """Collaborators for delivery; built once per worker process."""

    factory: sessionmaker[Session]
    ehr: Any
    adapters: Mapping[str, ChannelAdapter]
    config: RulesConfig
    clock: Callable[[], datetime]
    lease: timedelta
    max_attempts: int
    refresh: Callable[[Session, list[dict[str, Any]], dict[str, Any] | None], None]
    status_callback_url: Callable[[str], str | None] = lambda _id: None
    list_unsubscribe: Callable[[str], ListUnsubscribe | None] = lambda _id: None
    fallback: bool = True
    references: ReferenceSource | None = None


def deliver(deps: DeliveryDeps, message_id: str) -> str:
    """Send one queued message; returns sent / withheld / cancelled / retry / failed / skipped."""
    with transaction(deps.factory) as session:
        row = repository.get(session, message_id)
        if row is None or row.status != "queued":
            return "skipped"
        about, patient_ref = list(row.about), row.patient_ref
    fresh = _read_current(deps, about)
    patient = _read_optional(deps, patient_ref)
    consents = _search_consents(deps, patient_ref)
    now = deps.clock()
    prefetch_references(deps.factory, deps.references, fresh, now)
    with transaction(deps.factory) as session:
        deps.refresh(session, fresh, patient)
        row = repository.get(session, message_id)
        if row is None or row.status != "queued":
            return "cancelled"
        snapshot = live_snapshot(session, patient_ref, patient, source=deps.references, now=now)
        addresses = [t.get("value") for t in (patient or {}).get("telecom") or [] if t.get("value")]
        ledger = [
            repository.as_consent_entry(e)
            for e in repository.ledger_for(session, patient_ref, addresses)
        ]
        decision = prepare_delivery(_as_planned(row), snapshot, consents, ledger, deps.config, now)
        if isinstance(decision, WithheldMessage):
            _withhold(row, decision.reason, decision.detail, dict(decision.trace))
            log_withheld(row, log)
            return "withheld"
        if not _transition(session, message_id, "queued", "sending", now + deps.lease):
            return "skipped"
        session.refresh(row)
        row.channel = decision.channel
        row.address = decision.address
        row.subject_line = decision.rendered.subject
        row.text = decision.rendered.text
        row.html = decision.rendered.html
        row.template = decision.rendered.template
        row.language = decision.rendered.language
        row.consent_used = list(decision.consent_used)
        row.attempts += 1
        row.trace = {**row.trace, "delivery": dict(decision.trace)}
        links = deps.list_unsubscribe(row.id) if decision.channel == "email" else None
        if links is not None:  # the email's closing line points at this link
            row.text = links.close_text(decision.rendered.text)
            row.html = links.close_html(row.html) if row.html else row.html
        outbound = OutboundMessage(
            message_id=row.id,
            channel=decision.channel,
            to=decision.address,
            text=row.text or "",
            subject=decision.rendered.subject,
            html=row.html,
            status_callback_url=deps.status_callback_url(row.id),
            list_unsubscribe=links,
        )
    return _send(deps, outbound)


def _send(deps: DeliveryDeps, outbound: OutboundMessage) -> str:
    adapter = deps.adapters.get(outbound.channel)
    if adapter is None:
        return _record_failure(deps, outbound.message_id, "no-channel", "channel not configured")
    try:
        receipt = adapter.send(outbound)
    except TransientChannelError as exc:
        return _record_transient(deps, outbound.message_id, exc)
    except PermanentChannelError as exc:
        return _record_failure(deps, outbound.message_id, exc.reason, exc.code, address=outbound.to)
    with transaction(deps.factory) as session:
        row = repository.get(session, outbound.message_id)
        assert row is not None
        row.status = "sent"
        row.provider = receipt.provider
        row.provider_message_id = receipt.provider_message_id
        row.delivery_status = receipt.status
        row.sent_at = deps.clock()
        row.lease_until = None
        row.communication_status = "pending"
    log.info(
        "sent message %s via %s",
        outbound.message_id,
        outbound.channel,
        extra={
            "message_id": outbound.message_id,
            "channel": outbound.channel,
            "provider": receipt.provider,
        },
    )
    return "sent"


def _record_transient(deps: DeliveryDeps, message_id: str, exc: TransientChannelError) -> str:
    with transaction(deps.factory) as session:
        row = repository.get(session, message_id)
        assert row is not None
        if row.attempts >= deps.max_attempts:
            _fail(row, "delivery-failed", f"gave up after {row.attempts} attempts ({exc.code})")
            return "failed"
        delay = exc.retry_after or min(3600.0, 30.0 * 2**row.attempts) * random.uniform(0.5, 1)
        row.status = "queued"
        row.lease_until = deps.clock() + timedelta(seconds=delay)
    log.warning("transient delivery failure", extra={"message_id": message_id, "code": exc.code})
    return "retry"


def _record_failure(
    deps: DeliveryDeps, message_id: str, reason: str, code: str, *, address: str | None = None
) -> str:
    """A permanent failure. An unusable address is recorded in the ledger, so with fallback
    on the message simply goes round again and the consent engine picks the next permitted
    channel or address (or withholds it, with that reason, when none is left)."""
    with transaction(deps.factory) as session:
        row = repository.get(session, message_id)
        assert row is not None
        if reason in UNUSABLE_ADDRESS_REASONS and address:
            repository.add_ledger_entry(
                session,
                LedgerEntry(
                    patient_ref=row.patient_ref,
                    channel=row.channel or "sms",
                    address=address,
                    purpose="*",
                    action="opt-out",
                    source="provider",
                    recorded_at=deps.clock(),
                ),
            )
            if deps.fallback and row.attempts < deps.max_attempts:
                row.status, row.lease_until = "queued", deps.clock()
                row.trace = {**row.trace, "fallback_after": {"channel": row.channel, "code": code}}
                log.warning(
                    "permanent failure; trying the next channel",
                    extra={"message_id": message_id, "code": code},
                )
                return "fallback"
        _fail(row, reason, code)
    log.warning("permanent delivery failure", extra={"message_id": message_id, "code": code})
    return "failed"


def _fail(row: PlannedMessage, reason: str, detail: str) -> None:
    row.status = "failed"
    row.reason = reason
    row.reason_detail = detail
    row.lease_until = None
    row.communication_status = "pending"


def _withhold(row: PlannedMessage, reason: str, detail: str, trace: dict[str, Any]) -> None:
    row.status = "withheld"
    row.reason = reason
    row.reason_detail = detail
    row.trace = {**row.trace, "withheld": trace}
    row.lease_until = None
    row.communication_status = "pending"


def _transition(
    session: Session, message_id: str, from_status: str, to_status: str, lease_until: datetime
) -> bool:
    result = session.execute(
        update(PlannedMessage)
        .where(PlannedMessage.id == message_id, PlannedMessage.status == from_status)
        .values(status=to_status, lease_until=lease_until)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def reconcile_abandoned(deps: DeliveryDeps) -> dict[str, int]:
    """Settle ``sending`` rows whose worker died around the provider call."""
    counts = {"sent": 0, "requeued": 0, "unknown": 0, "deferred": 0}
    with transaction(deps.factory) as session:
        ids = repository.abandoned_sends(session, deps.clock())
    for message_id in ids:
        with transaction(deps.factory) as session:
            row = repository.get_for_update(session, message_id)
            if row is None or row.status != "sending" or row.lease_until is None:
                continue
            if row.lease_until >= deps.clock():
                continue
            adapter = deps.adapters.get(row.channel or "")
            verdict = _reconcile_row(row, adapter, deps.clock())
            counts[verdict] += 1
    return counts


def _reconcile_row(row: PlannedMessage, adapter: ChannelAdapter | None, now: datetime) -> str:
    can_look_up = adapter is not None and type(adapter).find_sent is not ChannelAdapter.find_sent
    try:
        receipt = adapter.find_sent(row.id) if adapter is not None and can_look_up else None
    except TransientChannelError:
        row.lease_until = now + timedelta(minutes=1)
        return "deferred"
    if receipt is not None:
        row.status, row.provider = "sent", receipt.provider
        row.provider_message_id, row.delivery_status = receipt.provider_message_id, receipt.status
        row.sent_at, row.lease_until, row.communication_status = now, None, "pending"
        return "sent"
    if can_look_up:
        row.status, row.lease_until = "queued", now
        return "requeued"
    row.status, row.lease_until = "unknown", None
    row.reason = "delivery-unconfirmed"
    row.reason_detail = "worker stopped between the provider call and its record"
    row.sent_at, row.communication_status = now, "pending"
    log.warning("delivery outcome unknown; not resending", extra={"message_id": row.id})
    return "unknown"


def _read_current(deps: DeliveryDeps, references: Sequence[str]) -> list[dict[str, Any]]:
    resources = []
    for reference in references:
        resource_type, _, resource_id = str(reference).partition("/")
        try:
            resources.append(deps.ehr.read(resource_type, resource_id))
        except EhrNotFound:
            resources.append({"resourceType": resource_type, "id": resource_id, "_deleted": True})
    return resources


def _read_optional(deps: DeliveryDeps, reference: str) -> dict[str, Any] | None:
    resource_type, _, resource_id = reference.partition("/")
    try:
        return dict(deps.ehr.read(resource_type, resource_id))
    except EhrNotFound:
        return None


def _search_consents(deps: DeliveryDeps, patient_ref: str) -> list[dict[str, Any]]:
    return list(deps.ehr.search_all("Consent", {"patient": patient_ref, "_count": "100"}))


def _as_planned(row: PlannedMessage) -> Planned:
    return Planned(
        key=row.key,
        rule=row.rule,
        purpose=row.purpose,
        patient_ref=row.patient_ref,
        about=tuple(row.about),
        send_at=row.send_at,
        template=row.template,
        language=row.language,
        variables=dict(row.variables),
        trace=dict(row.trace),
        sensitive=row.sensitive,
    )
