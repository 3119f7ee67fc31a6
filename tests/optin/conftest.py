"""A clinic with the development EHR (``fhir_bridge.sandbox``) as its EHR, a fresh SQLite
store per test, a recording SMS adapter and a clock the test moves: patients are invited to
health tips, the invitation is delivered and written back, and their replies come in through
the signed Twilio webhook."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fhir_bridge import jobs
from fhir_bridge.optin.service import InviteSummary, invite_patients
from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import LedgerEntry, PlannedMessage, SmsReply, StaffInboxItem
from rules.optin import INVITE_RULE
from tests.inbound.doubles import RecordingSms
from tests.inbound.optout_world import OptOutWorld, open_world
from tests.smart_app.conftest import ehr, panel  # noqa: F401  (the staff panel's fixtures)

MARIA_ID = "eHt5Qv3mN8pLr2Xw7Kd1Zs9"
MARIA = f"Patient/{MARIA_ID}"
MARIA_PHONE = "+16175550123"
ROSA_ID = "eB7nKw2Pq9Lm4Xv8Rt3Yd6"
ROSA = f"Patient/{ROSA_ID}"
ROSA_PHONE = "+16175550188"
DAVID_ID = "eT2mQ8xLw5Nv3Rk9Hs4Pb1"
DAVID = f"Patient/{DAVID_ID}"
DAVID_PHONE = "+16175550142"
EMAIL_ONLY_ID = "eJ4wR7tMz2Qx9Lp5Vn8Cd3"
EMAIL_ONLY = f"Patient/{EMAIL_ONLY_ID}"


def patient(
    patient_id: str,
    *,
    family: str,
    given: str,
    phone: str | None,
    language: str = "en-US",
    email: str | None = None,
) -> dict[str, Any]:
    """An Epic-style adult Patient: MRN, ranked telecoms, a preferred language, a GP."""
    telecom: list[dict[str, Any]] = []
    if phone:
        telecom.append({"system": "phone", "value": phone, "use": "mobile", "rank": 1})
    if email:
        telecom.append({"system": "email", "value": email, "use": "home", "rank": 2})
    return {
        "resourceType": "Patient",
        "id": patient_id,
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                    ]
                },
                "system": "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14",
                "value": patient_id[-6:],
            }
        ],
        "active": True,
        "name": [{"use": "official", "family": family, "given": [given]}],
        "telecom": telecom,
        "gender": "female",
        "birthDate": "1971-03-09",
        "communication": [
            {
                "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": language}]},
                "preferred": True,
            }
        ],
        "generalPractitioner": [
            {"reference": "Practitioner/eRztxMVTTvuHpXB0P0A8lQ3", "display": "Dr. Ana Núñez"}
        ],
        "managingOrganization": {"reference": "Organization/riverside-health"},
    }


class Clinic(OptOutWorld):
    """The opt-out world with invitations: invite, deliver and write back, read results."""

    @property
    def sms(self) -> RecordingSms:
        adapter = self.runtime.adapters["sms"]
        assert isinstance(adapter, RecordingSms)
        return adapter

    def invite(self, *refs: str) -> InviteSummary:
        return invite_patients(self.runtime, refs)

    def deliver_invitations(self) -> list[str]:
        """Send every invitation handed to delivery, then write its Communication back."""
        ids = [args[0] for task, args in self.enqueued if task == "fhir_bridge.deliver"]
        self.enqueued.clear()
        for message_id in ids:
            assert jobs.deliver_message(self.runtime, message_id) == "sent"
            jobs.write_back(self.runtime, message_id)
        return ids

    def invitations(self) -> list[PlannedMessage]:
        with transaction(self.runtime.sessions) as session:
            rows = session.scalars(
                select(PlannedMessage)
                .where(PlannedMessage.rule == INVITE_RULE)
                .order_by(PlannedMessage.created_at)
            )
            found = list(rows)
            session.expunge_all()
            return found

    def health_tips_ledger(self) -> list[tuple[str | None, str, str]]:
        with transaction(self.runtime.sessions) as session:
            return [
                (e.patient_ref, e.action, e.source)
                for e in session.scalars(
                    select(LedgerEntry).where(LedgerEntry.purpose == "health-tips")
                )
            ]

    def inbox(self) -> list[tuple[str | None, str]]:
        with transaction(self.runtime.sessions) as session:
            return [(i.patient_ref, i.kind) for i in session.scalars(select(StaffInboxItem))]

    def replies(self) -> list[str]:
        with transaction(self.runtime.sessions) as session:
            return [r.kind for r in session.scalars(select(SmsReply).order_by(SmsReply.id))]

    def health_tips_consents(self, patient_ref: str) -> list[dict[str, Any]]:
        return [
            consent
            for consent in self.consents(patient_ref)
            if any(
                p.get("code") == "health-tips"
                for p in consent.get("provision", {}).get("purpose") or []
            )
        ]


@pytest.fixture(scope="session")
def ehr_server() -> Iterator[EhrServer]:
    with EhrServer() as server:
        yield server


@pytest.fixture
def clinic(
    ehr_server: EhrServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Clinic]:
    """Maria (English), Rosa (Spanish), David (opted out of texts) and a patient with only
    an email address, all in the EHR; nobody has said anything about health tips yet."""
    ehr_server.reset()
    ehr_server.update(patient(MARIA_ID, family="Okafor", given="Maria", phone=MARIA_PHONE))
    ehr_server.update(
        patient(ROSA_ID, family="Martínez", given="Rosa", phone=ROSA_PHONE, language="es-MX")
    )
    ehr_server.update(patient(DAVID_ID, family="Chen", given="David", phone=DAVID_PHONE))
    ehr_server.update(
        patient(EMAIL_ONLY_ID, family="Brooks", given="Lena", phone=None, email="lena@example.org")
    )
    for world in open_world(ehr_server, tmp_path, monkeypatch):
        yield Clinic(world.runtime, world.client, world.ehr, world.clock, world.enqueued)
