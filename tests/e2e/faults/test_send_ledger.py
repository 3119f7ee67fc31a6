"""Fault: a worker dies in the middle of a provider call. The database row is the send ledger.

A row left in ``sending`` is settled by what the row holds, never by what a cache remembers:

* Email cannot be looked up, so it is sent again with the same Message-ID (derived from our
  message id); the test SMTP server, like mail systems with duplicate suppression, delivers
  one copy per Message-ID. Never lost, one copy in the mailbox.
* SMS is looked up at Twilio by the row's number, text and time (``To`` + ``DateSent``),
  even after Redis (the send journal) came back empty; found means sent, not resent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.e2e.fixtures import appointment, patient
from tests.e2e.harness import Stack, running_stack, wait_for
from tests.support.fake_twilio import FakeTwilio

pytestmark = pytest.mark.integration

LEAD = timedelta(hours=1)
CLINIC_NUMBER = "+16175550100"
PHONE = "+16175550147"
JOURNAL_REDIS = "redis://127.0.0.1:6379/13"
"""The send journal's own Redis database, so flushing it touches nobody else's keys."""


def _completed(stack: Stack, patient_id: str) -> list[dict[str, Any]]:
    return [c for c in stack.communications(patient_id) if c["status"] == "completed"]


def _phone_patient(mrn: str) -> dict[str, Any]:
    resource = patient(mrn, "Grace", "Okafor", "unused@example.net")
    resource["telecom"] = [{"system": "phone", "value": PHONE, "use": "mobile", "rank": 1}]
    return resource


def test_an_email_whose_worker_was_killed_mid_send_is_delivered_exactly_once(
    tmp_path: Path,
) -> None:
    address = "ana.lopez@example.net"
    with running_stack(tmp_path, offsets=["PT1H"]) as stack:
        stack.smtp.stall_data()
        stack.bridge.start_worker()
        created = stack.ehr.create(patient("MRN-5101", "Ana", "Lopez", address))
        start = datetime.now(UTC) + LEAD + timedelta(seconds=6)
        stack.ehr.create(appointment(created["id"], start))

        assert stack.smtp.wait_until_stalled(timeout=60), stack.bridge.logs()
        stack.bridge.kill_workers()
        stack.smtp.release()  # the server had the whole message: it delivers this copy
        stack.bridge.start_worker()

        communications = wait_for(
            lambda: _completed(stack, created["id"]),
            timeout=60,
            what="a completed Communication after the restart",
            logs=stack.bridge.logs,
        )
        message_ids = stack.smtp.message_ids(to=address)
        mailbox = [m for m in stack.smtp.messages if address in str(m["To"])]

    assert len(message_ids) == 2, "the message was not sent again after the crash"
    assert len(set(message_ids)) == 1
    assert len(mailbox) == 1
    assert len(communications) == 1


def test_an_sms_in_sending_is_found_at_twilio_after_redis_came_back_empty(
    tmp_path: Path,
) -> None:
    with FakeTwilio(latency=30.0) as twilio:
        env = {
            "FHIR_BRIDGE_SMS_PROVIDER": "twilio",
            "FHIR_BRIDGE_EMAIL_PROVIDER": "none",
            "FHIR_BRIDGE_TWILIO_BASE_URL": twilio.base_url,
            "FHIR_BRIDGE_TWILIO_ACCOUNT_SID": twilio.account_sid,
            "FHIR_BRIDGE_TWILIO_AUTH_TOKEN": twilio.auth_token,
            "FHIR_BRIDGE_TWILIO_FROM_NUMBER": CLINIC_NUMBER,
            "FHIR_BRIDGE_REDIS_URL": JOURNAL_REDIS,
        }
        with running_stack(tmp_path, offsets=["PT1H"], extra_env=env) as stack:
            stack.bridge.start_worker()
            created = stack.ehr.create(_phone_patient("MRN-5102"))
            start = datetime.now(UTC) + LEAD + timedelta(seconds=6)
            stack.ehr.create(appointment(created["id"], start))

            wait_for(
                lambda: twilio.messages,
                timeout=60,
                what="Twilio to accept the SMS (its answer is held back)",
                logs=stack.bridge.logs,
            )
            stack.bridge.kill_workers()
            journal = redis.Redis.from_url(JOURNAL_REDIS)
            journal.flushdb()  # Redis restarted without persistence: the journal is gone
            journal.close()
            twilio.latency = 0.0
            stack.bridge.start_worker()

            communications = wait_for(
                lambda: _completed(stack, created["id"]),
                timeout=60,
                what="a completed Communication after the restart",
                logs=stack.bridge.logs,
            )
            texts = [form for form in twilio.create_requests if form["To"] == PHONE]
            lookups = [q for q in twilio.list_requests if q.get("To") == PHONE]

    assert len(texts) == 1, "the SMS was sent twice"
    assert len(communications) == 1
    assert any("DateSent>" in query for query in lookups)
