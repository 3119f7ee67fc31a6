"""Double opt-in for health tips (pure): who is invited, the invitation as a planned message,
and what is checked again at the moment it is sent.

Health tips are promotional (``rules.consent.policy``): only an explicit permit naming the
``health-tips`` purpose allows them. One way to get it is a text inviting the patient to
reply YES (CTIA double opt-in: the programme is only joined by the patient's own reply);
the YES itself is handled with the other inbound keywords (``rules.keywords``,
``fhir_bridge.inbound.processing``).

**Why the invitation goes out as ``care-coordination``, on SMS only.** The invitation is
not itself promotional content: it carries no tip, names no product or service and sells
nothing; it asks whether the patient wants a programme. But asking for consent is itself a
message under the TCPA (a consent-seeking text needs consent of its own, FCC 2015 Omnibus
Order), and it is outside the healthcare exemption's list (47 CFR 64.1200(a)(9)(iv)), so it
must not ride on that exemption as if it were a reminder. It may go only where the patient's
prior express consent to informational texts from the clinic stands: the wireless number
they gave for their care, with no STOP and no SMS deny since. That is exactly the consent
decision for ``care-coordination`` on SMS (a STOP, a channel deny, a Consent refusing
treatment-related texts, and the SMS double opt-in policy all refuse it). Calling it
``health-tips`` instead would be circular (it could never go before the opt-in it asks for).
On top of that decision:

* it is sent only to a patient who has not answered about health tips yet (an explicit
  permit or deny naming the purpose, in a Consent or the ledger): asking again after a
  "no" would be pestering, and an opted-in patient needs no invitation;
* at most once per patient per ``FHIR_BRIDGE_OPTIN_INVITE_PERIOD_DAYS`` (the shell
  checks the last one sent or planned);
* it carries the CTIA call-to-action (clinic, programme, "about 2 a month", "Msg&data
  rates may apply", HELP, STOP) in the patient's language, in one GSM-7 segment
  (:data:`rules.reply_texts.INVITE_HEALTH_TIPS`), inside the patient's quiet-hours window;
* at send time the same checks run again (a STOP, or a staff opt-in, in between wins).

Frequency caps are not applied to the invitation (like a staff answer, it is one message
per patient per period, triggered by staff); it is written back as a Communication like
every message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from rules.answer_config import PURPOSE_CARE_COORDINATION
from rules.config import RulesConfig
from rules.consent import LedgerEntry, decide_consent, select_contact
from rules.consent.codes import CHANNEL_SMS, PURPOSE_HEALTH_TIPS
from rules.consent.delivery import WITHHELD_NO_CONTACT, consent_on_channel, withheld_reason
from rules.context import PlanningContext
from rules.model import (
    PatientSnapshot,
    PlannedMessage,
    PreparedDelivery,
    RenderedMessage,
    WithheldMessage,
)
from rules.outreach import REASON_TOO_LONG
from rules.protections import check_protections
from rules.reply_texts import INVITE_HEALTH_TIPS, render_reply
from rules.sms_length import sms_segments

INVITE_RULE: Final = "health-tips-invitation"
INVITE_KEY_PREFIX: Final = "optin-invite|"
INVITE_PURPOSE: Final = PURPOSE_CARE_COORDINATION
INVITE_CHANNEL: Final = CHANNEL_SMS
TOPIC: Final = PURPOSE_HEALTH_TIPS

SKIP_INVITED_RECENTLY: Final = "invited-recently"
SKIP_ALREADY_ANSWERED: Final = "already-answered"
"""The patient already opted in to, or declined, health tips: no invitation."""


def invite_key(patient_ref: str, now: datetime) -> str:
    """One invitation per patient and day at most (the period check spaces them further)."""
    return f"{INVITE_KEY_PREFIX}{TOPIC}|{patient_ref}|{now.astimezone(UTC):%Y-%m-%d}"


def is_invitation(key: str) -> bool:
    """True for an invitation's key: re-planning never cancels or reschedules it."""
    return key.startswith(INVITE_KEY_PREFIX)


@dataclass(frozen=True)
class InvitationDecision:
    """The invitation to store and send, or why this patient is not invited (``skipped``)."""

    message: PlannedMessage | None
    skipped: str | None = None


def invitation_open(sent_at: datetime | None, received_at: datetime, validity: timedelta) -> bool:
    """Whether a YES received at ``received_at`` still answers an invitation sent at
    ``sent_at`` (sent, not in the future, and no older than ``validity``)."""
    return sent_at is not None and sent_at <= received_at <= sent_at + validity


def answered_health_tips(
    patient: Mapping[str, Any] | None,
    consents: Sequence[Mapping[str, Any]],
    ledger: Sequence[LedgerEntry],
    config: RulesConfig,
    now: datetime,
) -> bool:
    """An explicit word about health tips on SMS already stands (a purpose-specific permit,
    or any deny that reaches the purpose); general permits do not count (promotional)."""
    policy = config.consent
    contact = select_contact(patient, INVITE_CHANNEL, now, policy)
    decision = decide_consent(
        consents=consents,
        ledger=ledger,
        purpose=TOPIC,
        channel=INVITE_CHANNEL,
        now=now,
        policy=policy,
        address=contact.address if contact else None,
    )
    return decision.trace.get("basis") == "statement"


def plan_invitation(
    snapshot: PatientSnapshot,
    consents: Sequence[Mapping[str, Any]],
    ledger: Sequence[LedgerEntry],
    config: RulesConfig,
    now: datetime,
    *,
    last_invited_at: datetime | None,
    period: timedelta,
) -> InvitationDecision:
    """The invitation for one patient (sent now, or at the start of their window), or why
    not. A patient who may not be invited gets no row at all: nothing was asked of them."""
    now = now.astimezone(UTC)
    if last_invited_at is not None and now - last_invited_at.astimezone(UTC) < period:
        return InvitationDecision(None, SKIP_INVITED_RECENTLY)
    context = PlanningContext.build(snapshot, config, now)
    prompt = context.send_now()
    trace: dict[str, Any] = {
        "rule": INVITE_RULE,
        "topic": TOPIC,
        "reply_channel": INVITE_CHANNEL,
        **context.send_now_trace(prompt),
    }
    message = PlannedMessage(
        key=invite_key(snapshot.patient_ref, now),
        rule=INVITE_RULE,
        purpose=INVITE_PURPOSE,
        patient_ref=snapshot.patient_ref,
        about=(),
        send_at=prompt.send_at,
        template=INVITE_HEALTH_TIPS,
        language=context.language,
        variables={},
        trace=trace,
    )
    checked = prepare_invitation_delivery(message, snapshot, consents, ledger, config, now)
    if isinstance(checked, WithheldMessage):
        return InvitationDecision(None, checked.reason)
    return InvitationDecision(message)


def prepare_invitation_delivery(
    message: PlannedMessage,
    snapshot: PatientSnapshot,
    consents: Sequence[Mapping[str, Any]],
    ledger: Sequence[LedgerEntry],
    config: RulesConfig,
    now: datetime,
) -> PreparedDelivery | WithheldMessage:
    """Planning and send time alike: protections, an SMS contact and the
    care-coordination consent on SMS, health tips not answered yet; then the text in one
    segment."""
    now = now.astimezone(UTC)
    policy = config.consent
    patient = snapshot.patient
    trace: dict[str, Any] = {"checked_at": now.isoformat()}
    delivery_trace = {**message.trace, "delivery": trace}
    protection = check_protections(patient, message.purpose, now, policy)
    if protection is not None:
        return message.withhold(protection, "patient protection", delivery_trace)
    found = consent_on_channel(
        patient, consents, ledger, message.purpose, INVITE_CHANNEL, now, policy
    )
    if found is None:
        return message.withhold(WITHHELD_NO_CONTACT, "no SMS contact", delivery_trace)
    contact, decision = found
    trace["consent"] = {
        "channel": INVITE_CHANNEL,
        "purpose": message.purpose,
        "contact": contact.source,
        "outcome": decision.reason,
        "used": list(decision.used),
    }
    if not decision.allowed:
        return message.withhold(withheld_reason(decision), "not allowed on sms", delivery_trace)
    if answered_health_tips(patient, consents, ledger, config, now):
        return message.withhold(SKIP_ALREADY_ANSWERED, "health tips answered", delivery_trace)
    organization = config.organization
    text = render_reply(
        INVITE_HEALTH_TIPS,
        message.language,
        clinic=organization.clinic_name,
        phone=organization.clinic_phone,
    )
    encoding, segments = sms_segments(text)
    if (encoding, segments) != ("gsm7", 1):
        return message.withhold(REASON_TOO_LONG, "invitation over one segment", delivery_trace)
    trace["rendered"] = {"channel": INVITE_CHANNEL, "language": message.language, "segments": 1}
    rendered = RenderedMessage(
        channel=INVITE_CHANNEL,
        subject=None,
        text=text,
        html=None,
        template=INVITE_HEALTH_TIPS,
        language=message.language,
        segments=segments,
    )
    return PreparedDelivery(
        channel=INVITE_CHANNEL,
        address=contact.address,
        rendered=rendered,
        consent_used=decision.used,
        trace=trace,
    )
