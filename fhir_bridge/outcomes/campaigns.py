"""Per-campaign outcomes: ``fhir-bridge report --campaign ID`` and the panel's campaign page.

Counts only, never a name. Over every run of one campaign:

* **messages** planned; **sent** (handed to the provider); **delivered** (sent and not
  reported undelivered); **failed** (we gave up, or the provider reported it undelivered);
  **withheld** by reason.
* **recipients**: patients at least one message was sent to.
* **opt-outs caused**: recipients who replied STOP within ``opt_out_days`` (default 7)
  after a message of the campaign reached their number (a STOP that names the message it
  answers counts for that message's campaign only).
* **replies**: SMS replies that answer a message of the campaign.
* **booked the care** (preventive-care campaigns whose audience names
  ``care_service_types``): recipients with an Appointment of one of those service types
  created from their first message to ``BOOKING_DAYS`` (60) days after it. The booking
  time is ``Appointment.created``; an EHR that leaves it out is read by the appointment's
  last update. Cancelled and entered-in-error appointments do not count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.campaigns import repository as campaign_repository
from fhir_bridge.outcomes import repository
from fhir_bridge.outcomes.measures import FAILED_DELIVERY, Rate
from fhir_bridge.outcomes.repository import (
    SENT_STATUSES,
    BookingFact,
    CampaignMessageFact,
    CampaignReplyFact,
)
from fhir_bridge.store.db import transaction
from rules.campaigns import CAMPAIGN_KEY_PREFIX

BOOKING_DAYS: Final = 60
OPT_OUT_DAYS: Final = 7
NOT_BOOKED: Final = frozenset({"cancelled", "entered-in-error", "proposed", "waitlist"})
OPT_OUT_INTENT: Final = "opt-out"


class UnknownCampaign(LookupError):
    """No campaign with that id."""


@dataclass(frozen=True)
class CampaignOutcome:
    campaign_id: str
    name: str
    kind: str
    status: str
    runs: int
    messages: int
    sent: int
    delivered: int
    failed: int
    withheld: int
    withheld_by_reason: Mapping[str, int]
    recipients: int
    opt_outs: Rate
    opt_out_days: int
    replies: int
    booked: Rate | None = None
    """Preventive care with ``care_service_types`` only."""
    care_service_types: Sequence[str] = field(default_factory=tuple)

    def as_json(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign_id,
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "runs": self.runs,
            "messages": self.messages,
            "sent": self.sent,
            "delivered": self.delivered,
            "failed": self.failed,
            "withheld": self.withheld,
            "withheld_by_reason": dict(self.withheld_by_reason),
            "recipients": self.recipients,
            "opt_outs": {**self.opt_outs.as_json(), "within_days": self.opt_out_days},
            "replies": self.replies,
            "booked_care": None
            if self.booked is None
            else {
                **self.booked.as_json(),
                "within_days": BOOKING_DAYS,
                "service_types": list(self.care_service_types),
            },
        }


def compute(
    campaign: Mapping[str, Any],
    messages: Sequence[CampaignMessageFact],
    replies: Sequence[CampaignReplyFact],
    bookings: Sequence[BookingFact],
    *,
    opt_out_days: int = OPT_OUT_DAYS,
) -> CampaignOutcome:
    """The numbers of one campaign from its facts (pure)."""
    withheld: Counter[str] = Counter()
    sent = delivered = failed = 0
    first_sent: dict[str, datetime] = {}
    for message in messages:
        if message.status in SENT_STATUSES:
            sent += 1
            if message.sent_at is not None:
                known = first_sent.get(message.patient_ref)
                if known is None or message.sent_at < known:
                    first_sent[message.patient_ref] = message.sent_at
            if message.delivery_status in FAILED_DELIVERY:
                failed += 1
            elif message.status == "sent":
                delivered += 1
        elif message.status == "failed":
            failed += 1
        elif message.status == "withheld":
            withheld[message.reason or "unspecified"] += 1
    window = timedelta(days=opt_out_days)
    opted_out = {
        reply.patient_ref
        for reply in replies
        if reply.intent == OPT_OUT_INTENT
        and not reply.answers_other
        and reply.received_at - reply.sent_at <= window
    }
    booked = None
    care = [str(token) for token in campaign.get("care_service_types") or []]
    if campaign["kind"] == "preventive-care" and care:
        booked_patients = {
            b.patient_ref
            for b in bookings
            if b.patient_ref in first_sent
            and b.status not in NOT_BOOKED
            and b.created is not None
            and first_sent[b.patient_ref]
            <= b.created
            <= first_sent[b.patient_ref] + timedelta(days=BOOKING_DAYS)
            and _of_service(b.service_type, care)
        }
        booked = Rate(len(booked_patients), len(first_sent))
    return CampaignOutcome(
        campaign_id=str(campaign["id"]),
        name=str(campaign["name"]),
        kind=str(campaign["kind"]),
        status=str(campaign["status"]),
        runs=int(campaign["runs"]),
        messages=len(messages),
        sent=sent,
        delivered=delivered,
        failed=failed,
        withheld=sum(withheld.values()),
        withheld_by_reason=dict(withheld.most_common()),
        recipients=len(first_sent),
        opt_outs=Rate(len(opted_out), len(first_sent)),
        opt_out_days=opt_out_days,
        replies=sum(1 for reply in replies if reply.answers_campaign),
        booked=booked,
        care_service_types=tuple(care),
    )


def _of_service(service_types: Sequence[Any], tokens: Sequence[str]) -> bool:
    """An R4 ``Appointment.serviceType`` coding matches ``system|code`` or a bare ``code``."""
    for concept in service_types:
        codings = concept.get("coding") if isinstance(concept, dict) else None
        for coding in codings if isinstance(codings, list) else []:
            code = str(coding.get("code") or "")
            if code and (f"{coding.get('system') or ''}|{code}" in tokens or code in tokens):
                return True
    return False


def load(
    factory: sessionmaker[Session], campaign_id: str, *, opt_out_days: int = OPT_OUT_DAYS
) -> CampaignOutcome:
    """Read one campaign's facts in one short transaction, then compute."""
    prefix = f"{CAMPAIGN_KEY_PREFIX}{campaign_id}|"
    with transaction(factory) as session:
        row = campaign_repository.get(session, campaign_id)
        if row is None:
            raise UnknownCampaign("no such campaign")
        campaign = {
            "id": row.id,
            "name": row.name,
            "kind": row.kind,
            "status": row.status,
            "runs": row.runs,
            "care_service_types": (row.audience or {}).get("care_service_types") or [],
        }
        messages = repository.campaign_messages(session, prefix)
        replies = repository.campaign_replies(session, prefix)
        bookings: list[BookingFact] = []
        if campaign["kind"] == "preventive-care" and campaign["care_service_types"]:
            sent_to = [m.patient_ref for m in messages if m.status in SENT_STATUSES]
            bookings = repository.bookings_of(session, sent_to)
    return compute(campaign, messages, replies, bookings, opt_out_days=opt_out_days)


def render_text(outcome: CampaignOutcome) -> str:
    """The campaign's numbers as plain text (``fhir-bridge report --campaign``)."""
    rows = [
        ("messages planned", str(outcome.messages)),
        ("sent", str(outcome.sent)),
        ("delivered", str(outcome.delivered)),
        ("failed", str(outcome.failed)),
        ("withheld", str(outcome.withheld)),
        ("recipients", str(outcome.recipients)),
        (
            f"opt-outs within {outcome.opt_out_days} days",
            f"{outcome.opt_outs.numerator} ({outcome.opt_outs.text()} of recipients)",
        ),
        ("replies", str(outcome.replies)),
    ]
    if outcome.booked is not None:
        rows.append(
            (
                f"booked the care within {BOOKING_DAYS} days",
                f"{outcome.booked.numerator} ({outcome.booked.text()} of recipients)",
            )
        )
    width = max(len(label) for label, _ in rows)
    lines = [
        f"Campaign {outcome.campaign_id} ({outcome.kind}, {outcome.status}, "
        f"{outcome.runs} run{'s' if outcome.runs != 1 else ''})",
        "",
        *[f"{label.ljust(width)}  {value}" for label, value in rows],
    ]
    if outcome.withheld_by_reason:
        lines += ["", "Withheld, by reason"]
        lines += [f"  {reason}: {n}" for reason, n in outcome.withheld_by_reason.items()]
    return "\n".join(lines)
