"""TwilioSmsAdapter against the local fake Twilio server: sends, errors (one try), callbacks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from channels.base import OutboundMessage, PermanentChannelError, TransientChannelError
from channels.ratelimit import RedisTokenBucket
from channels.twilio_signature import is_valid_signature
from channels.twilio_sms import CALLBACK_ID_PARAM, TwilioSmsAdapter
from tests.channels.conftest import RecordingSleep
from tests.channels.webhook_sink import WebhookSink
from tests.support.fake_twilio import AUTH_TOKEN, FakeTwilio
from tests.support.smtp import free_port

CLINIC_NUMBER = "+16175550100"
PATIENT_NUMBER = "+16175550123"

AdapterFactory = Callable[..., TwilioSmsAdapter]


def reminder(message_id: str = "comm-4c1e9a", to: str = PATIENT_NUMBER) -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id,
        channel="sms",
        to=to,
        text="Riverside Clinic: reminder of your appointment Tue 2 Dec 09:30. Reply STOP to end.",
    )


@pytest.fixture
def make_adapter(fake_twilio: FakeTwilio) -> Iterator[AdapterFactory]:
    created: list[TwilioSmsAdapter] = []

    def build(**overrides: object) -> TwilioSmsAdapter:
        options: dict[str, object] = {
            "account_sid": fake_twilio.account_sid,
            "auth_token": fake_twilio.auth_token,
            "from_number": CLINIC_NUMBER,
            "base_url": fake_twilio.base_url,
            "timeout": 5.0,
        }
        options.update(overrides)
        adapter = TwilioSmsAdapter(**options)  # type: ignore[arg-type]
        created.append(adapter)
        return adapter

    yield build
    for adapter in created:
        adapter.close()


def test_accepted_message_returns_twilio_sid_and_queued_status(
    fake_twilio: FakeTwilio, make_adapter: AdapterFactory
) -> None:
    receipt = make_adapter().send(reminder())

    assert receipt.provider == "twilio"
    assert receipt.provider_message_id.startswith("SM")
    assert receipt.provider_message_id in fake_twilio.messages
    assert receipt.status == "queued"


def test_create_request_carries_to_from_body_and_callback_with_our_id(
    fake_twilio: FakeTwilio, make_adapter: AdapterFactory
) -> None:
    adapter = make_adapter(status_callback_url="https://bridge.example.org/twilio/status?v=1")

    adapter.send(reminder("comm-4c1e9a"))

    form = fake_twilio.create_requests[0]
    assert (form["To"], form["From"]) == (PATIENT_NUMBER, CLINIC_NUMBER)
    assert form["Body"].startswith("Riverside Clinic")
    callback_query = parse_qs(urlsplit(form["StatusCallback"]).query)
    assert callback_query == {"v": ["1"], CALLBACK_ID_PARAM: ["comm-4c1e9a"]}


def test_messaging_service_is_used_when_configured(
    fake_twilio: FakeTwilio, make_adapter: AdapterFactory
) -> None:
    adapter = make_adapter(from_number=None, messaging_service_sid="MG" + "0" * 32)

    receipt = adapter.send(reminder())

    assert "From" not in fake_twilio.create_requests[0]
    assert receipt.status == "accepted"


def test_wrong_credentials_are_permanent_and_not_retried(
    fake_twilio: FakeTwilio, make_adapter: AdapterFactory
) -> None:
    with pytest.raises(PermanentChannelError) as error:
        make_adapter(auth_token="not-the-token").send(reminder())

    assert (error.value.code, error.value.reason) == ("20003", "rejected")


def test_delivered_message_sends_signed_callbacks_queued_sent_delivered(
    fake_twilio: FakeTwilio, webhook_sink: WebhookSink, make_adapter: AdapterFactory
) -> None:
    adapter = make_adapter(status_callback_url=webhook_sink.url("/twilio/status"))

    receipt = adapter.send(reminder("comm-4c1e9a"))
    callbacks = webhook_sink.wait_for(3)

    assert [hook.param("MessageStatus") for hook in callbacks] == ["queued", "sent", "delivered"]
    assert {hook.param("MessageSid") for hook in callbacks} == {receipt.provider_message_id}
    assert all(f"{CALLBACK_ID_PARAM}=comm-4c1e9a" in hook.url for hook in callbacks)
    assert all(
        is_valid_signature(AUTH_TOKEN, hook.url, hook.params, hook.signature or "")
        for hook in callbacks
    )


def test_tampered_status_callback_fails_signature_check(
    fake_twilio: FakeTwilio, webhook_sink: WebhookSink, make_adapter: AdapterFactory
) -> None:
    fake_twilio.set_outcome(PATIENT_NUMBER, "undelivered", 30003)
    make_adapter(status_callback_url=webhook_sink.url("/twilio/status")).send(reminder())
    final = webhook_sink.wait_for(3)[-1]

    forged = [(k, "delivered" if k == "MessageStatus" else v) for k, v in final.params]

    assert is_valid_signature(AUTH_TOKEN, final.url, final.params, final.signature or "")
    assert not is_valid_signature(AUTH_TOKEN, final.url, forged, final.signature or "")


def test_undelivered_message_callback_carries_error_code(
    fake_twilio: FakeTwilio, webhook_sink: WebhookSink, make_adapter: AdapterFactory
) -> None:
    fake_twilio.set_outcome(PATIENT_NUMBER, "undelivered", 30003)

    make_adapter(status_callback_url=webhook_sink.url("/status")).send(reminder())
    final = webhook_sink.wait_for(3)[-1]

    assert (final.param("MessageStatus"), final.param("ErrorCode")) == ("undelivered", "30003")


def test_unsubscribed_recipient_is_permanent_21610_and_not_retried(
    fake_twilio: FakeTwilio, make_adapter: AdapterFactory
) -> None:
    fake_twilio.unsubscribed_numbers.add(PATIENT_NUMBER)

    with pytest.raises(PermanentChannelError) as error:
        make_adapter().send(reminder())

    assert (error.value.code, error.value.reason) == ("21610", "unsubscribed")
    assert len(fake_twilio.create_requests) == 1


@pytest.mark.parametrize(
    ("number", "configure", "expected_code"),
    [
        pytest.param("+15005550001", "invalid_numbers", "21211", id="21211-invalid-number"),
        pytest.param("6175550123", None, "21211", id="21211-not-e164"),
        pytest.param("+16175550188", "landline_numbers", "21614", id="21614-not-mobile"),
    ],
)
def test_invalid_or_non_mobile_number_is_permanent_invalid_address(
    fake_twilio: FakeTwilio,
    make_adapter: AdapterFactory,
    number: str,
    configure: str | None,
    expected_code: str,
) -> None:
    if configure is not None:
        getattr(fake_twilio, configure).add(number)

    with pytest.raises(PermanentChannelError) as error:
        make_adapter().send(reminder(to=number))

    assert (error.value.code, error.value.reason) == (expected_code, "invalid-address")
    assert len(fake_twilio.create_requests) == 1


def test_429_is_tried_once_and_raised_with_twilio_retry_after(
    fake_twilio: FakeTwilio, make_adapter: AdapterFactory
) -> None:
    fake_twilio.fail_next(1, status=429, retry_after=2.0)

    with pytest.raises(TransientChannelError) as error:
        make_adapter().send(reminder())

    assert (error.value.code, error.value.retry_after) == ("20429", 2.0)
    assert len(fake_twilio.create_requests) == 1
    assert fake_twilio.messages == {}


def test_429_without_retry_after_leaves_the_delay_to_the_caller(
    fake_twilio: FakeTwilio, make_adapter: AdapterFactory
) -> None:
    fake_twilio.fail_next(1, status=429)

    with pytest.raises(TransientChannelError) as error:
        make_adapter().send(reminder())

    assert error.value.retry_after is None


def test_500_is_tried_once_and_raised_as_transient(
    fake_twilio: FakeTwilio, make_adapter: AdapterFactory
) -> None:
    fake_twilio.fail_next(10, status=500)

    with pytest.raises(TransientChannelError) as error:
        make_adapter().send(reminder())

    assert error.value.code == "20500"
    assert len(fake_twilio.create_requests) == 1
    assert fake_twilio.messages == {}


def test_the_callers_next_attempt_after_a_429_creates_the_message_once(
    fake_twilio: FakeTwilio, make_adapter: AdapterFactory
) -> None:
    fake_twilio.fail_next(1, status=429)
    adapter = make_adapter()
    with pytest.raises(TransientChannelError):
        adapter.send(reminder())

    receipt = adapter.send(reminder())

    assert len(fake_twilio.create_requests) == 2
    assert list(fake_twilio.messages) == [receipt.provider_message_id]


def test_connection_refused_is_transient() -> None:
    adapter = TwilioSmsAdapter(
        account_sid="AC" + "0" * 32,
        auth_token=AUTH_TOKEN,
        from_number=CLINIC_NUMBER,
        base_url=f"http://127.0.0.1:{free_port()}",
    )

    with pytest.raises(TransientChannelError) as error:
        adapter.send(reminder())

    assert error.value.code == "twilio-connect"
    adapter.close()


def test_timed_out_create_is_reconciled_instead_of_sent_twice(
    fake_twilio: FakeTwilio, make_adapter: AdapterFactory
) -> None:
    fake_twilio.latency = 0.6
    adapter = make_adapter(timeout=0.3)

    receipt = adapter.send(reminder())

    assert len(fake_twilio.create_requests) == 1
    assert list(fake_twilio.messages) == [receipt.provider_message_id]


def test_rate_limited_burst_is_paced_through_the_shared_bucket(
    fake_twilio: FakeTwilio,
    make_adapter: AdapterFactory,
    redis_url: str,
    redis_prefix: str,
) -> None:
    limiter_sleep = RecordingSleep()
    limiter = RedisTokenBucket(
        redis_url, redis_prefix + "sms", rate_per_second=1.0, burst=2, sleep=limiter_sleep
    )
    adapter = make_adapter(rate_limiter=limiter)

    for n in range(5):
        adapter.send(reminder(f"comm-{n}", to=f"+1617555020{n}"))

    assert len(fake_twilio.messages) == 5
    assert len(limiter_sleep.delays) == 3
    assert limiter_sleep.delays == sorted(limiter_sleep.delays)


def test_inbound_sms_webhook_is_signed_by_the_fake(
    fake_twilio: FakeTwilio, webhook_sink: WebhookSink
) -> None:
    status = fake_twilio.send_inbound(
        webhook_sink.url("/twilio/inbound"),
        from_number=PATIENT_NUMBER,
        to=CLINIC_NUMBER,
        body="STOP",
    )
    inbound = webhook_sink.wait_for(1)[0]

    assert status == 200
    assert inbound.param("Body") == "STOP"
    assert is_valid_signature(AUTH_TOKEN, inbound.url, inbound.params, inbound.signature or "")


def test_logs_carry_ids_and_codes_but_no_number_or_text(
    fake_twilio: FakeTwilio, make_adapter: AdapterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="channels")
    fake_twilio.fail_next(1, status=429)
    fake_twilio.invalid_numbers.add("+15005550001")
    adapter = make_adapter()

    with pytest.raises(TransientChannelError):
        adapter.send(reminder("comm-ok"))
    adapter.send(reminder("comm-ok"))
    with pytest.raises(PermanentChannelError) as error:
        adapter.send(reminder("comm-bad", to="+15005550001"))

    assert "comm-ok" in caplog.text and "21211" in caplog.text
    for secret in (PATIENT_NUMBER, "+15005550001", "appointment"):
        assert secret not in caplog.text
        assert secret not in str(error.value)
