"""A reply SMS whose worker died around the Twilio call is settled by asking Twilio, with no
database transaction open while Twilio is asked, and never texted twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool

from channels.base import OutboundMessage, SendReceipt, SentRecord
from channels.twilio_sms import TwilioSmsAdapter
from fhir_bridge.inbound.replies import ReplySender
from fhir_bridge.store.db import make_engine, make_session_factory, transaction
from fhir_bridge.store.models import SmsReply
from tests.support.databases import sqlite_database
from tests.support.fake_twilio import FakeTwilio

pytestmark = pytest.mark.integration

CLINIC_NUMBER = "+16175550100"
PATIENT_NUMBER = "+16175550123"
INBOUND_SID = "SM0f4e2a9c7b1d3e5f7a9c1b3d5e7f9a1c"
REPLY_TEXT = (
    "Riverside Clinic: Gracias, su cita está confirmada. Llame al 617-555-0100. "
    "Responda STOP para no recibir más."
)


class ObservedTwilio(TwilioSmsAdapter):
    """The real adapter; each lookup notes how many database connections were in use."""

    engine: Engine
    connections_during_lookup: list[int]

    def find_sent(self, message_id: str, record: SentRecord | None = None) -> SendReceipt | None:
        self.connections_during_lookup.append(cast(QueuePool, self.engine.pool).checkedout())
        return super().find_sent(message_id, record)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with sqlite_database(tmp_path) as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


@pytest.fixture
def twilio(engine: Engine) -> Iterator[tuple[FakeTwilio, ObservedTwilio]]:
    with FakeTwilio() as fake:
        adapter = ObservedTwilio(
            account_sid=fake.account_sid,
            auth_token=fake.auth_token,
            from_number=CLINIC_NUMBER,
            base_url=fake.base_url,
        )
        adapter.engine, adapter.connections_during_lookup = engine, []
        yield fake, adapter
        adapter.close()


def _abandoned_reply(engine: Engine, now: datetime) -> SmsReply:
    """A reply row left ``sending`` by a worker that died; its lease ran out a minute ago."""
    row = SmsReply(
        id="b6f1c2d3-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        key=f"{INBOUND_SID}:confirmed",
        inbound_id=41,
        kind="confirmed",
        to_address=PATIENT_NUMBER,
        text=REPLY_TEXT,
        status="sending",
        attempts=1,
        lease_until=now - timedelta(minutes=1),
        created_at=now - timedelta(minutes=3),
    )
    with transaction(make_session_factory(engine)) as session:
        session.add(row)
    return row


def test_a_reply_twilio_already_has_is_settled_as_sent_without_a_transaction_open(
    engine: Engine, twilio: tuple[FakeTwilio, ObservedTwilio]
) -> None:
    fake, adapter = twilio
    now = datetime.now(UTC)
    row = _abandoned_reply(engine, now)
    # The dead worker's send reached Twilio before it could record the SID.
    adapter.send(OutboundMessage(row.id, "sms", PATIENT_NUMBER, REPLY_TEXT))
    sender = ReplySender(
        factory=make_session_factory(engine),
        adapter=adapter,
        clock=lambda: now,
        lease=timedelta(minutes=2),
    )

    verdict = sender.send(
        inbound_id=41,
        inbound_sid=INBOUND_SID,
        kind="confirmed",
        to=PATIENT_NUMBER,
        text=REPLY_TEXT,
        allowed=True,
    )

    assert verdict == "sent"
    assert adapter.connections_during_lookup == [0]
    assert len(fake.messages) == 1
    with transaction(make_session_factory(engine)) as session:
        settled = session.get(SmsReply, row.id)
        assert settled is not None
        assert (settled.status, settled.provider_message_id) == ("sent", next(iter(fake.messages)))
