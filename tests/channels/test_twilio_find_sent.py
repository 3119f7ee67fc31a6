"""Crash reconciliation: find_sent after a worker died mid-send.

The database row is the record (``SentRecord``: recipient, text, time window); the journal in
Redis DB 5 is only a cache that saves a search.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from channels.base import OutboundMessage, SentRecord, TransientChannelError
from channels.send_journal import InMemorySendJournal, RedisSendJournal, SendIntent, SendJournal
from channels.twilio_sms import TwilioSmsAdapter
from tests.support.fake_twilio import FakeTwilio
from tests.support.smtp import free_port

CLINIC_NUMBER = "+16175550100"
PATIENT_NUMBER = "+16175550123"


class SimulatedCrash(BaseException):
    """Stands in for the worker process being killed (not an Exception: nothing catches it)."""


class CrashAfterCreateJournal(RedisSendJournal):
    """A journal whose process 'dies' right after Twilio accepted, before the SID is stored."""

    def record_accepted(self, message_id: str, provider_message_id: str) -> None:
        raise SimulatedCrash


def reminder(
    message_id: str = "comm-4c1e9a", text: str = "Reminder: Tue 2 Dec 09:30"
) -> OutboundMessage:
    return OutboundMessage(message_id=message_id, channel="sms", to=PATIENT_NUMBER, text=text)


@pytest.fixture
def adapters(
    fake_twilio: FakeTwilio, redis_url: str, redis_prefix: str
) -> Iterator[list[TwilioSmsAdapter]]:
    created: list[TwilioSmsAdapter] = []
    yield created
    for adapter in created:
        adapter.close()


def worker(
    fake_twilio: FakeTwilio,
    journal: SendJournal,
    adapters: list[TwilioSmsAdapter],
) -> TwilioSmsAdapter:
    adapter = TwilioSmsAdapter(
        account_sid=fake_twilio.account_sid,
        auth_token=fake_twilio.auth_token,
        from_number=CLINIC_NUMBER,
        base_url=fake_twilio.base_url,
        journal=journal,
    )
    adapters.append(adapter)
    return adapter


def test_find_sent_after_crash_between_create_and_recording_sid(
    fake_twilio: FakeTwilio, redis_url: str, redis_prefix: str, adapters: list[TwilioSmsAdapter]
) -> None:
    crashing = worker(
        fake_twilio, CrashAfterCreateJournal(redis_url, prefix=redis_prefix), adapters
    )
    with pytest.raises(SimulatedCrash):
        crashing.send(reminder("comm-4c1e9a"))

    restarted = worker(fake_twilio, RedisSendJournal(redis_url, prefix=redis_prefix), adapters)
    found = restarted.find_sent("comm-4c1e9a")

    assert found is not None
    assert list(fake_twilio.messages) == [found.provider_message_id]
    assert len(fake_twilio.create_requests) == 1


def test_reconciled_sid_is_journalled_for_the_next_lookup(
    fake_twilio: FakeTwilio, redis_url: str, redis_prefix: str, adapters: list[TwilioSmsAdapter]
) -> None:
    crashing = worker(
        fake_twilio, CrashAfterCreateJournal(redis_url, prefix=redis_prefix), adapters
    )
    with pytest.raises(SimulatedCrash):
        crashing.send(reminder("comm-4c1e9a"))
    journal = RedisSendJournal(redis_url, prefix=redis_prefix)

    found = worker(fake_twilio, journal, adapters).find_sent("comm-4c1e9a")
    intent = journal.get("comm-4c1e9a")

    assert found is not None and intent is not None
    assert intent.provider_message_id == found.provider_message_id


def test_find_sent_reports_current_status_of_a_journalled_sid(
    fake_twilio: FakeTwilio, redis_url: str, redis_prefix: str, adapters: list[TwilioSmsAdapter]
) -> None:
    journal = RedisSendJournal(redis_url, prefix=redis_prefix)
    fake_twilio.hold_queued = True
    receipt = worker(fake_twilio, journal, adapters).send(reminder())
    fake_twilio.messages[receipt.provider_message_id]["status"] = "delivered"

    found = worker(fake_twilio, journal, adapters).find_sent("comm-4c1e9a")

    assert found is not None
    assert (found.provider_message_id, found.status) == (receipt.provider_message_id, "delivered")


def test_find_sent_is_none_for_a_message_never_attempted(
    fake_twilio: FakeTwilio, redis_url: str, redis_prefix: str, adapters: list[TwilioSmsAdapter]
) -> None:
    adapter = worker(fake_twilio, RedisSendJournal(redis_url, prefix=redis_prefix), adapters)

    assert adapter.find_sent("comm-never-sent") is None


def test_find_sent_is_none_when_crash_happened_before_twilio_got_the_request(
    fake_twilio: FakeTwilio, redis_url: str, redis_prefix: str, adapters: list[TwilioSmsAdapter]
) -> None:
    journal = RedisSendJournal(redis_url, prefix=redis_prefix)
    journal.record_intent(
        SendIntent(
            message_id="comm-4c1e9a",
            to=PATIENT_NUMBER,
            body_sha256=SendIntent.body_digest("Reminder: Tue 2 Dec 09:30"),
            started_at=1_790_000_000.0,
        )
    )

    assert worker(fake_twilio, journal, adapters).find_sent("comm-4c1e9a") is None


def test_find_sent_does_not_match_a_different_text_to_the_same_number(
    fake_twilio: FakeTwilio, redis_url: str, redis_prefix: str, adapters: list[TwilioSmsAdapter]
) -> None:
    journal = RedisSendJournal(redis_url, prefix=redis_prefix)
    worker(fake_twilio, journal, adapters).send(reminder("comm-other", text="Your lab results"))
    crashing = worker(
        fake_twilio, CrashAfterCreateJournal(redis_url, prefix=redis_prefix), adapters
    )
    fake_twilio.fail_next(1, status=429)
    with pytest.raises(TransientChannelError):
        crashing.send(reminder("comm-4c1e9a"))

    assert worker(fake_twilio, journal, adapters).find_sent("comm-4c1e9a") is None


def test_find_sent_raises_transient_when_twilio_cannot_be_asked(
    fake_twilio: FakeTwilio, redis_url: str, redis_prefix: str, adapters: list[TwilioSmsAdapter]
) -> None:
    crashing = worker(
        fake_twilio, CrashAfterCreateJournal(redis_url, prefix=redis_prefix), adapters
    )
    with pytest.raises(SimulatedCrash):
        crashing.send(reminder("comm-4c1e9a"))
    unreachable = TwilioSmsAdapter(
        account_sid=fake_twilio.account_sid,
        auth_token=fake_twilio.auth_token,
        from_number=CLINIC_NUMBER,
        base_url=f"http://127.0.0.1:{free_port()}",
        journal=RedisSendJournal(redis_url, prefix=redis_prefix),
    )
    adapters.append(unreachable)

    with pytest.raises(TransientChannelError) as error:
        unreachable.find_sent("comm-4c1e9a")

    assert error.value.code == "twilio-lookup"


def test_reconciliation_pages_through_older_messages(
    fake_twilio: FakeTwilio, redis_url: str, redis_prefix: str, adapters: list[TwilioSmsAdapter]
) -> None:
    crashing = worker(
        fake_twilio, CrashAfterCreateJournal(redis_url, prefix=redis_prefix), adapters
    )
    with pytest.raises(SimulatedCrash):
        crashing.send(reminder("comm-4c1e9a"))
    journal = RedisSendJournal(redis_url, prefix=redis_prefix)
    filler = worker(fake_twilio, journal, adapters)
    for n in range(60):
        filler.send(reminder(f"comm-filler-{n}", text=f"Other message {n}"))

    found = worker(fake_twilio, journal, adapters).find_sent("comm-4c1e9a")

    assert found is not None
    assert found.provider_message_id == next(iter(fake_twilio.messages))


def test_resending_an_accepted_message_id_does_not_text_twice(
    fake_twilio: FakeTwilio, redis_url: str, redis_prefix: str, adapters: list[TwilioSmsAdapter]
) -> None:
    journal = RedisSendJournal(redis_url, prefix=redis_prefix)
    first = worker(fake_twilio, journal, adapters).send(reminder())

    again = worker(fake_twilio, journal, adapters).send(reminder())

    assert again.provider_message_id == first.provider_message_id
    assert len(fake_twilio.create_requests) == 1


def test_resend_after_crash_mid_send_reuses_the_message_twilio_already_has(
    fake_twilio: FakeTwilio, redis_url: str, redis_prefix: str, adapters: list[TwilioSmsAdapter]
) -> None:
    crashing = worker(
        fake_twilio, CrashAfterCreateJournal(redis_url, prefix=redis_prefix), adapters
    )
    with pytest.raises(SimulatedCrash):
        crashing.send(reminder("comm-4c1e9a"))
    restarted = worker(fake_twilio, RedisSendJournal(redis_url, prefix=redis_prefix), adapters)

    receipt = restarted.send(reminder("comm-4c1e9a"))

    assert list(fake_twilio.messages) == [receipt.provider_message_id]
    assert len(fake_twilio.create_requests) == 1


def test_resend_after_a_failed_attempt_does_create_the_message(
    fake_twilio: FakeTwilio, redis_url: str, redis_prefix: str, adapters: list[TwilioSmsAdapter]
) -> None:
    journal = RedisSendJournal(redis_url, prefix=redis_prefix)
    fake_twilio.fail_next(1, status=503)
    with pytest.raises(TransientChannelError):
        worker(fake_twilio, journal, adapters).send(reminder())

    receipt = worker(fake_twilio, journal, adapters).send(reminder())

    assert list(fake_twilio.messages) == [receipt.provider_message_id]


def row_of(message: OutboundMessage, *, planned: datetime | None = None) -> SentRecord:
    """What the ``sending`` row holds: address, text, and its lifetime up to now."""
    now = datetime.now(UTC)
    return SentRecord(
        message_id=message.message_id,
        to=message.to,
        text=message.text,
        not_before=planned or now - timedelta(hours=2),
        not_after=now,
    )


def crash_after_create(
    fake_twilio: FakeTwilio, redis_url: str, redis_prefix: str, adapters: list[TwilioSmsAdapter]
) -> None:
    crashing = worker(
        fake_twilio, CrashAfterCreateJournal(redis_url, prefix=redis_prefix), adapters
    )
    with pytest.raises(SimulatedCrash):
        crashing.send(reminder("comm-4c1e9a"))


def test_the_row_finds_the_message_after_redis_came_back_empty(
    fake_twilio: FakeTwilio, redis_url: str, redis_prefix: str, adapters: list[TwilioSmsAdapter]
) -> None:
    crash_after_create(fake_twilio, redis_url, redis_prefix, adapters)
    client = redis.Redis.from_url(redis_url)
    client.delete(*client.scan_iter(match=redis_prefix + "*"))
    client.close()
    restarted = worker(fake_twilio, RedisSendJournal(redis_url, prefix=redis_prefix), adapters)

    found = restarted.find_sent("comm-4c1e9a", row_of(reminder("comm-4c1e9a")))

    assert found is not None
    assert list(fake_twilio.messages) == [found.provider_message_id]
    today = datetime.now(UTC).date()
    assert any(
        q.get("To") == PATIENT_NUMBER
        and q.get("DateSent>") in {today.isoformat(), (today - timedelta(days=1)).isoformat()}
        for q in fake_twilio.list_requests
    )


def test_the_row_finds_a_message_still_queued_at_twilio_without_a_date_sent(
    fake_twilio: FakeTwilio, redis_url: str, redis_prefix: str, adapters: list[TwilioSmsAdapter]
) -> None:
    fake_twilio.hold_queued = True
    crash_after_create(fake_twilio, redis_url, redis_prefix, adapters)

    found = worker(fake_twilio, InMemorySendJournal(), adapters).find_sent(
        "comm-4c1e9a", row_of(reminder("comm-4c1e9a"))
    )

    assert found is not None and found.status == "queued"


def test_the_row_finds_nothing_when_twilio_never_got_the_message(
    fake_twilio: FakeTwilio, adapters: list[TwilioSmsAdapter]
) -> None:
    adapter = worker(fake_twilio, InMemorySendJournal(), adapters)
    adapter.send(reminder("comm-other", text="Riverside Clinic: your lab visit Wed 3 Dec 08:00"))

    assert adapter.find_sent("comm-4c1e9a", row_of(reminder("comm-4c1e9a"))) is None


def test_the_same_text_sent_before_the_row_existed_is_not_taken_for_it(
    fake_twilio: FakeTwilio, adapters: list[TwilioSmsAdapter]
) -> None:
    adapter = worker(fake_twilio, InMemorySendJournal(), adapters)
    adapter.send(reminder("comm-last-week"))
    later = datetime.now(UTC) + timedelta(hours=1)

    assert adapter.find_sent("comm-4c1e9a", row_of(reminder("comm-4c1e9a"), planned=later)) is None


def test_the_row_lookup_raises_transient_when_twilio_cannot_be_asked(
    fake_twilio: FakeTwilio, adapters: list[TwilioSmsAdapter]
) -> None:
    unreachable = TwilioSmsAdapter(
        account_sid=fake_twilio.account_sid,
        auth_token=fake_twilio.auth_token,
        from_number=CLINIC_NUMBER,
        base_url=f"http://127.0.0.1:{free_port()}",
    )
    adapters.append(unreachable)

    with pytest.raises(TransientChannelError) as error:
        unreachable.find_sent("comm-4c1e9a", row_of(reminder("comm-4c1e9a")))

    assert error.value.code == "twilio-lookup"


def test_a_journal_that_cannot_reach_redis_does_not_stop_a_send(
    fake_twilio: FakeTwilio, adapters: list[TwilioSmsAdapter]
) -> None:
    journal = RedisSendJournal(f"redis://127.0.0.1:{free_port()}/0")

    receipt = worker(fake_twilio, journal, adapters).send(reminder())

    assert list(fake_twilio.messages) == [receipt.provider_message_id]
