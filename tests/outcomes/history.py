"""Outreach histories written straight to the store: a small hand-made one, a large seeded one.

Rows are built like the pipeline leaves them: planned messages with their trace (rule,
location, language), Patients / Appointments / Locations as the EHR's R4 JSON in
``resource_state``, inbound SMS classified with their intent, staff-inbox items (some
handled), email unsubscribes in the consent ledger.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import (
    InboundMessage,
    LedgerEntry,
    PlannedMessage,
    ResourceState,
    StaffInboxItem,
)

CLINIC_NUMBER = "+16175550100"
LOCATIONS = {
    "Location/e4W4rmGe9QzuGm2Dy4NBqVc0": "Riverside Family Medicine",
    "Location/eXn2v7QfFyK0Gm7CpVxnD-Q3": "Eastside Pediatrics",
    "Location/eT1Hq6cZ8yLw3PbN5rKa2sV9": "Clínica del Valle",
}
PURPOSES = {
    "appointment-reminder": "appointment-reminder",
    "refill-notice": "refill-notice",
    "discharge-checkin": "discharge-checkin",
}


def location_resource(ref: str, name: str) -> dict[str, Any]:
    return {
        "resourceType": "Location",
        "id": ref.partition("/")[2],
        "status": "active",
        "name": name,
        "address": {"city": "Springfield", "state": "MA", "postalCode": "01103"},
    }


def patient_resource(patient_id: str, given: str, family: str, phone: str, email: str) -> dict:
    return {
        "resourceType": "Patient",
        "id": patient_id,
        "name": [{"use": "official", "family": family, "given": [given]}],
        "telecom": [
            {"system": "phone", "value": phone, "use": "mobile", "rank": 1},
            {"system": "email", "value": email, "use": "home", "rank": 2},
        ],
        "birthDate": "1971-03-09",
    }


def appointment_resource(
    appointment_id: str, patient_id: str, status: str, start: datetime, location: str | None
) -> dict[str, Any]:
    participants: list[dict[str, Any]] = [
        {"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"},
        {
            "actor": {"reference": "Practitioner/eM5CWtq15N0WJeuCet5bJlQ3", "display": "Dr. Lee"},
            "status": "accepted",
        },
    ]
    if location is not None:
        participants.append(
            {"actor": {"reference": location, "display": LOCATIONS[location]}, "status": "accepted"}
        )
    return {
        "resourceType": "Appointment",
        "id": appointment_id,
        "status": status,
        "start": start.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "end": (start + timedelta(minutes=20)).astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "comment": "Bring your glucose log / traiga su registro",
        "participant": participants,
    }


@dataclass
class History:
    """Rows to write, and the PHI-shaped values that must never show in a report or scrape."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    inbound: list[dict[str, Any]] = field(default_factory=list)
    inbox: list[dict[str, Any]] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    phi: set[str] = field(default_factory=set)

    def patient(self, patient_id: str, given: str, family: str, phone: str, email: str) -> None:
        self.resources.append(
            {
                "resource_type": "Patient",
                "resource_id": patient_id,
                "patient_ref": f"Patient/{patient_id}",
                "body": patient_resource(patient_id, given, family, phone, email),
            }
        )
        self.phi |= {patient_id, given, family, phone, email}

    def location(self, ref: str) -> None:
        body = location_resource(ref, LOCATIONS[ref])
        self.resources.append(
            {"resource_type": "Location", "resource_id": body["id"], "body": body}
        )

    def appointment(
        self,
        patient_id: str,
        status: str,
        start: datetime,
        location: str | None,
        appointment_id: str | None = None,
    ) -> str:
        appointment_id = appointment_id or f"eApt{uuid.uuid4().hex[:16]}"
        self.resources.append(
            {
                "resource_type": "Appointment",
                "resource_id": appointment_id,
                "patient_ref": f"Patient/{patient_id}",
                "body": appointment_resource(appointment_id, patient_id, status, start, location),
            }
        )
        return f"Appointment/{appointment_id}"

    def message(
        self,
        patient_id: str,
        *,
        rule: str = "appointment-reminder",
        channel: str | None = "sms",
        address: str | None = None,
        language: str = "en",
        location: str | None = None,
        status: str = "sent",
        at: datetime,
        about: str | None = None,
        delivery_status: str | None = None,
        reason: str | None = None,
    ) -> str:
        message_id = str(uuid.uuid4())
        sent = status in ("sent", "unknown")
        self.messages.append(
            {
                "id": message_id,
                "key": f"{rule}|{message_id}",
                "rule": rule,
                "purpose": PURPOSES[rule],
                "patient_ref": f"Patient/{patient_id}",
                "about": [about] if about else [],
                "send_at": at,
                "status": status,
                "template": rule,
                "language": language,
                "variables": {"clinic_name": "Riverside Health"},
                "sensitive": False,
                "trace": {
                    "rule": rule,
                    "inputs": {"location": location, "language": language},
                },
                "attempts": 1 if sent or status == "failed" else 0,
                "channel": channel,
                "address": address,
                "text": "Riverside Health: reminder of your visit. Reply C to confirm."
                if sent
                else None,
                "provider": "twilio" if channel == "sms" else "smtp",
                "delivery_status": delivery_status,
                "sent_at": at if sent else None,
                "reason": reason,
                "reason_detail": None,
                "communication_status": "written",
                "created_at": at - timedelta(days=3),
                "updated_at": at,
            }
        )
        return message_id

    def reply(
        self,
        phone: str,
        text: str,
        intent: str,
        at: datetime,
        *,
        patient_id: str,
        inbox_kind: str | None = None,
        handled_after: timedelta | None = None,
    ) -> None:
        inbound_id = len(self.inbound) + 1
        self.inbound.append(
            {
                "id": inbound_id,
                "provider_message_id": f"SM{uuid.uuid4().hex}",
                "from_address": phone,
                "to_address": CLINIC_NUMBER,
                "body": text,
                "received_at": at,
                "status": "done",
                "attempts": 1,
                "processed_at": at,
                "patient_ref": f"Patient/{patient_id}",
                "intent": intent,
                "steps_done": [],
            }
        )
        if len(text) > 4:  # free text, not a keyword such as C or STOP
            self.phi.add(text)
        if inbox_kind is not None:
            handled = at + handled_after if handled_after is not None else None
            self.inbox.append(
                {
                    "inbound_id": inbound_id,
                    "patient_ref": f"Patient/{patient_id}",
                    "kind": inbox_kind,
                    "priority": "stat" if inbox_kind == "crisis" else "routine",
                    "status": "handled" if handled else "open",
                    "created_at": at,
                    "handled_at": handled,
                    "handled_by": "Practitioner/eM5CWtq15N0WJeuCet5bJlQ3" if handled else None,
                }
            )

    def unsubscribe(self, patient_id: str, email: str, at: datetime) -> None:
        self.ledger.append(
            {
                "patient_ref": f"Patient/{patient_id}",
                "channel": "email",
                "address": email,
                "purpose": "*",
                "action": "opt-out",
                "source": "email-unsubscribe",
                "recorded_at": at,
            }
        )

    def write(self, factory: sessionmaker[Session]) -> None:
        with transaction(factory) as session:
            for model, rows in (
                (ResourceState, self.resources),
                (PlannedMessage, self.messages),
                (InboundMessage, self.inbound),
                (StaffInboxItem, self.inbox),
                (LedgerEntry, self.ledger),
            ):
                if rows:
                    session.execute(insert(model), rows)


# A large history: about 1,300 messages over 8 weeks.

GIVEN = ["María", "José", "Aisha", "Chen", "Olga", "Tomás", "Grace", "Luis", "Fatima", "Ahmed"]
FAMILY = ["García", "Okafor", "Nguyen", "Kowalski", "Hernández", "Smith", "Haddad", "Rossi"]
WITHHELD_REASONS = ["opted-out", "no-contact", "cap-reached", "sensitive-content", "quiet-hours"]


@dataclass(frozen=True)
class SeededPatient:
    patient_id: str
    phone: str
    email: str
    language: str
    location: str


def seed_large_history(
    factory: sessionmaker[Session], end: datetime, *, weeks: int = 8, seed: int = 13
) -> History:
    """A clinic's last ``weeks`` weeks: reminders, refills, check-ins, replies, no-shows."""
    rnd = random.Random(seed)
    history = History()
    for ref in LOCATIONS:
        history.location(ref)
    patients = []
    for n in range(160):
        patient_id = f"e{uuid.UUID(int=rnd.getrandbits(128)).hex[:22]}"
        given, family = rnd.choice(GIVEN), rnd.choice(FAMILY)
        phone = f"+1617555{n:04d}"
        email = f"{given.lower()}.{family.lower()}{n}@example.net"
        history.patient(patient_id, given, family, phone, email)
        language = "es" if rnd.random() < 0.35 else "en"
        patients.append(
            SeededPatient(patient_id, phone, email, language, rnd.choice(list(LOCATIONS)))
        )
    start = end - timedelta(weeks=weeks)
    for _ in range(weeks * 7 * 24):  # one slot per hour
        at = start + timedelta(hours=_ + rnd.random())
        if at >= end or rnd.random() > 0.9:
            continue
        _seed_event(history, rnd, rnd.choice(patients), at, end)
    # Appointments no reminder went out for (no consent, booked late): more no-shows.
    for _ in range(140):
        patient = rnd.choice(patients)
        when = start + timedelta(hours=rnd.randrange(weeks * 7 * 24))
        status = "noshow" if rnd.random() < 0.22 else "fulfilled"
        history.appointment(patient.patient_id, status, when, patient.location)
    history.write(factory)
    return history


def _seed_event(
    history: History, rnd: random.Random, patient: SeededPatient, at: datetime, end: datetime
) -> None:
    roll = rnd.random()
    rule = (
        "appointment-reminder"
        if roll < 0.62
        else "refill-notice"
        if roll < 0.82
        else "discharge-checkin"
    )
    channel = "sms" if rnd.random() < 0.72 else "email"
    address = patient.phone if channel == "sms" else patient.email
    about = None
    if rule == "appointment-reminder":
        visit = at + timedelta(days=1, hours=rnd.randrange(1, 9))
        status = "noshow" if rnd.random() < 0.09 else "fulfilled"
        if visit >= end:
            status = "booked"
        about = history.appointment(patient.patient_id, status, visit, patient.location)
    fate = rnd.random()
    common: dict[str, Any] = {
        "rule": rule,
        "language": patient.language,
        "location": patient.location if rule == "appointment-reminder" else None,
        "at": at,
        "about": about,
    }
    if fate < 0.09:
        history.message(
            patient.patient_id,
            channel=None,
            status="withheld",
            reason=rnd.choice(WITHHELD_REASONS),
            **common,
        )
        return
    if fate < 0.12:
        history.message(
            patient.patient_id,
            channel=channel,
            address=address,
            status="failed",
            reason="provider-rejected",
            **common,
        )
        return
    if fate < 0.14:
        history.message(
            patient.patient_id,
            channel=channel,
            address=address,
            status="cancelled",
            reason="cancelled-by-staff",
            **common,
        )
        return
    receipt = None
    if channel == "sms":
        receipt = "undelivered" if rnd.random() < 0.04 else "delivered"
    history.message(
        patient.patient_id, channel=channel, address=address, delivery_status=receipt, **common
    )
    if receipt == "undelivered":
        return
    _seed_reply(history, rnd, patient, rule, channel, at)


def _seed_reply(
    history: History,
    rnd: random.Random,
    patient: SeededPatient,
    rule: str,
    channel: str,
    at: datetime,
) -> None:
    later = at + timedelta(minutes=rnd.randrange(2, 600))
    roll = rnd.random()
    if channel == "email":
        if roll < 0.02:
            history.unsubscribe(patient.patient_id, patient.email, later)
        return
    pid = patient.patient_id
    if rule == "appointment-reminder" and roll < 0.45:
        history.reply(patient.phone, "C", "confirm", later, patient_id=pid)
        return
    if rule == "appointment-reminder" and roll < 0.52:
        history.reply(
            patient.phone,
            "R no puedo el martes",
            "reschedule",
            later,
            patient_id=pid,
            inbox_kind="reschedule",
            handled_after=timedelta(minutes=rnd.randrange(10, 1500)),
        )
        return
    roll = rnd.random()
    if roll < 0.02:
        history.reply(patient.phone, "STOP", "opt-out", later, patient_id=pid)
    elif roll < 0.04:
        history.reply(
            patient.phone,
            "I can't do this anymore",
            "crisis",
            later,
            patient_id=pid,
            inbox_kind="crisis",
            handled_after=timedelta(minutes=rnd.randrange(1, 30)),
        )
    elif roll < 0.08:
        handled = timedelta(minutes=rnd.randrange(30, 2000)) if rnd.random() < 0.8 else None
        history.reply(
            patient.phone,
            "Can my daughter come with me? She translates",
            "other",
            later,
            patient_id=pid,
            inbox_kind="message",
            handled_after=handled,
        )
