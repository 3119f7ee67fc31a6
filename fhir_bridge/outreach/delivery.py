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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session, sessionmaker

from channels.base import (
    ChannelAdapter,
    ListUnsubscribe,
    OutboundMessage,
    PermanentChannelError,
    SentRecord,
    TransientChannelError,
)
from fhir_bridge.fhir.errors import EhrNotFound
from fhir_bridge.outreach import repository
from fhir_bridge.outreach.lifecycle import MessageLifecycle, MessageStatus
from fhir_bridge.outreach.planning import log_withheld
from fhir_bridge.outreach.snapshot import ReferenceSource, live_snapshot, prefetch_references
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import LedgerEntry, PlannedMessage
from rules.answers import is_staff_answer, prepare_answer_delivery
from rules.campaigns import is_campaign_key, prepare_campaign_delivery
from rules.config import RulesConfig
from rules.model import PlannedMessage as Planned
from rules.model import WithheldMessage
from rules.optin import is_invitation, prepare_invitation_delivery
from rules.outreach import prepare_delivery

log = logging.getLogger(__name__)

UNUSABLE_ADDRESS_REASONS = frozenset({"invalid-address", "unsubscribed"})
CONSENT_SEARCH = {"_count": "100"}


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
        if row is None or row.status != MessageStatus.QUEUED:
            return "skipped"
        about, patient_ref = list(row.about), row.patient_ref
    fresh, patient, consents = _reread(deps, about, patient_ref)
    now = deps.clock()
    prefetch_references(deps.factory, deps.references, fresh, now)
    with transaction(deps.factory) as session:
        deps.refresh(session, fresh, patient)
        row = repository.get(session, message_id)
        if row is None or row.status != MessageStatus.QUEUED:
            return "cancelled"
        snapshot = live_snapshot(session, patient_ref, patient, source=deps.references, now=now)
        addresses = [t.get("value") for t in (patient or {}).get("telecom") or [] if t.get("value")]
        ledger = [
            repository.as_consent_entry(e)
            for e in repository.ledger_for(session, patient_ref, addresses)
        ]
        prepare = prepare_answer_delivery if is_staff_answer(row.key) else prepare_delivery
        if is_invitation(row.key):
            prepare = prepare_invitation_delivery
        if is_campaign_key(row.key):
            prepare = prepare_campaign_delivery
        decision = prepare(_as_planned(row), snapshot, consents, ledger, deps.config, now)
        lifecycle = MessageLifecycle(session)
        if isinstance(decision, WithheldMessage):
            if not lifecycle.withhold(
                message_id,
                reason=decision.reason,
                detail=decision.detail,
                trace={**row.trace, "withheld": dict(decision.trace)},
            ):
                return "skipped"
            log_withheld(row, log)
            return "withheld"
        if not lifecycle.start_sending(message_id, now + deps.lease):
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
        recorded = MessageLifecycle(session).mark_sent(
            outbound.message_id,
            provider=receipt.provider,
            provider_message_id=receipt.provider_message_id,
            delivery_status=receipt.status,
            sent_at=deps.clock(),
        )
    if not recorded:  # already settled as sent elsewhere (the reconciler found it)
        log.warning("send already recorded", extra={"message_id": outbound.message_id})
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
        lifecycle = MessageLifecycle(session)
        if row.attempts >= deps.max_attempts:
            detail = f"gave up after {row.attempts} attempts ({exc.code})"
            return (
                "failed"
                if lifecycle.fail(message_id, reason="delivery-failed", detail=detail)
                else "skipped"
            )
        delay = exc.retry_after or min(3600.0, 30.0 * 2**row.attempts) * random.uniform(0.5, 1)
        if not lifecycle.requeue(message_id, at=deps.clock() + timedelta(seconds=delay)):
            return "skipped"
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
                trace = {**row.trace, "fallback_after": {"channel": row.channel, "code": code}}
                if not MessageLifecycle(session).requeue(message_id, at=deps.clock(), trace=trace):
                    return "skipped"
                log.warning(
                    "permanent failure; trying the next channel",
                    extra={"message_id": message_id, "code": code},
                )
                return "fallback"
        if not MessageLifecycle(session).fail(message_id, reason=reason, detail=code):
            return "skipped"
    log.warning("permanent delivery failure", extra={"message_id": message_id, "code": code})
    return "failed"


def reconcile_abandoned(deps: DeliveryDeps) -> dict[str, int]:
    """Settle ``sending`` rows whose worker died around the provider call.

    The row is the send ledger; no cache decides. Each abandoned row is taken over under a
    fresh lease (a short transaction), the provider is asked by what the row holds with no
    lock held, and the verdict is applied only if the row is still the one taken over:

    * the provider has the message → ``sent``;
    * the lookup succeeded and found nothing → requeued (sent again);
    * the lookup failed → left ``sending`` until the new lease ends (deferred);
    * the provider cannot be asked, but sending again cannot double the message (email
      with its deterministic Message-ID, the outbox) → requeued;
    * otherwise → ``unknown`` (never resent; visible to staff and auditors).
    """
    counts = {"sent": 0, "requeued": 0, "unknown": 0, "deferred": 0}
    with transaction(deps.factory) as session:
        ids = repository.abandoned_sends(session, deps.clock())
    for message_id in ids:
        verdict = _reconcile_row(deps, message_id)
        if verdict is not None:
            counts[verdict] += 1
    return counts


def _reconcile_row(deps: DeliveryDeps, message_id: str) -> str | None:
    now = deps.clock()
    with transaction(deps.factory) as session:
        row = repository.get_for_update(session, message_id)
        if row is None or row.status != MessageStatus.SENDING.value:
            return None
        if row.lease_until is None or row.lease_until >= now:
            return None
        adapter = deps.adapters.get(row.channel or "")
        taken_until = now + deps.lease
        row.lease_until = taken_until  # ours until then: no other reconciler picks it up
        record = None  # no address: the row never reached a provider (set with ``sending``)
        if row.address and row.text is not None:
            record = SentRecord.of_row(row, to=row.address, text=row.text, now=now)
    looked_up = adapter is not None and adapter.can_look_up()
    receipt = None
    if adapter is not None and looked_up:
        try:
            receipt = adapter.find_sent(message_id, record)
        except TransientChannelError as exc:
            log.warning(
                "abandoned send not settled; the provider could not be asked",
                extra={"message_id": message_id, "code": exc.code},
            )
            return "deferred"
    with transaction(deps.factory) as session:
        lifecycle = MessageLifecycle(session)
        if receipt is not None:
            won = lifecycle.mark_sent(
                message_id,
                provider=receipt.provider,
                provider_message_id=receipt.provider_message_id,
                delivery_status=receipt.status,
                sent_at=now,
            )
            return "sent" if won else None
        row = repository.get_for_update(session, message_id)
        if row is None or row.status != MessageStatus.SENDING.value:
            return None
        if row.lease_until != taken_until:
            return None  # settled and sent again meanwhile: not ours any more
        if looked_up or (adapter is not None and adapter.resend_is_safe):
            lifecycle.requeue(message_id, at=now)
            log.info("abandoned send requeued", extra={"message_id": message_id})
            return "requeued"
        lifecycle.settle_unknown(
            message_id,
            now=now,
            reason="delivery-unconfirmed",
            detail="worker stopped between the provider call and its record",
        )
    log.warning("delivery outcome unknown; not resending", extra={"message_id": message_id})
    return "unknown"


def _reread(
    deps: DeliveryDeps, about: Sequence[str], patient_ref: str
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, list[dict[str, Any]]]:
    """What the message is about, the Patient and their Consents, as the EHR has them now.

    One FHIR ``batch`` round-trip when the EHR declares the interaction; otherwise the
    reads run side by side. Either way no database transaction is open meanwhile.
    """
    supports_batch = getattr(deps.ehr, "supports_batch", None)
    if callable(supports_batch) and supports_batch():
        return _reread_in_batch(deps, about, patient_ref)
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="delivery-reread") as pool:
        fresh = pool.submit(_read_current, deps, about)
        patient = pool.submit(_read_optional, deps, patient_ref)
        consents = pool.submit(_search_consents, deps, patient_ref)
        return fresh.result(), patient.result(), consents.result()


def _reread_in_batch(
    deps: DeliveryDeps, about: Sequence[str], patient_ref: str
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, list[dict[str, Any]]]:
    consent_search = "Consent?" + urlencode(CONSENT_SEARCH | {"patient": patient_ref})
    answers = deps.ehr.batch([*map(str, about), patient_ref, consent_search])
    fresh = []
    for reference, answer in zip(about, answers, strict=False):
        try:
            fresh.append(answer.resource())
        except EhrNotFound:
            resource_type, _, resource_id = str(reference).partition("/")
            fresh.append({"resourceType": resource_type, "id": resource_id, "_deleted": True})
    try:
        patient: dict[str, Any] | None = dict(answers[-2].resource())
    except EhrNotFound:
        patient = None
    consents = list(deps.ehr.all_matches(answers[-1].resource(), "Consent"))
    return fresh, patient, consents


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
    return list(deps.ehr.search_all("Consent", CONSENT_SEARCH | {"patient": patient_ref}))


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
