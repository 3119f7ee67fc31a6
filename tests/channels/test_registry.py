"""build_adapters: configuration decides which provider sits behind each channel."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from channels.base import ListUnsubscribe, OutboundMessage
from channels.outbox import OutboxAdapter, read_outbox
from channels.ratelimit import RedisTokenBucket
from channels.registry import ChannelsConfig, build_adapters
from channels.smtp import SmtpEmailAdapter
from channels.twilio_sms import TwilioSmsAdapter
from tests.support.fake_twilio import FakeTwilio
from tests.support.smtp import SmtpServer


def twilio_settings(base_url: str, redis_url: str, **extra: object) -> ChannelsConfig:
    fake = FakeTwilio()
    return ChannelsConfig.model_validate(
        {
            "sms_provider": "twilio",
            "email_provider": "none",
            "twilio_account_sid": fake.account_sid,
            "twilio_auth_token": fake.auth_token,
            "twilio_from_number": "+16175550100",
            "twilio_base_url": base_url,
            "redis_url": redis_url,
            **extra,
        }
    )


def test_default_configuration_uses_the_outbox_for_both_channels(tmp_path: Path) -> None:
    adapters = build_adapters(ChannelsConfig(outbox_dir=tmp_path))

    assert sorted(adapters) == ["email", "sms"]
    assert all(isinstance(adapter, OutboxAdapter) for adapter in adapters.values())
    assert {adapter.channel for adapter in adapters.values()} == {"sms", "email"}


def test_disabled_channels_are_absent() -> None:
    adapters = build_adapters(ChannelsConfig(sms_provider="none", email_provider="none"))

    assert adapters == {}


def test_outbox_sms_writes_under_outbox_dir(tmp_path: Path) -> None:
    adapters = build_adapters(ChannelsConfig(outbox_dir=tmp_path, email_provider="none"))

    adapters["sms"].send(OutboundMessage("comm-1", "sms", "+16175550123", "Reminder"))

    assert [r["message_id"] for r in read_outbox(tmp_path / "sms.jsonl")] == ["comm-1"]


def test_twilio_provider_sends_through_twilio_with_shared_rate_limit(
    fake_twilio: FakeTwilio, redis_url: str, redis_prefix: str
) -> None:
    settings = twilio_settings(fake_twilio.base_url, redis_url, redis_key_prefix=redis_prefix)
    adapter = build_adapters(settings)["sms"]
    assert isinstance(adapter, TwilioSmsAdapter)

    receipt = adapter.send(OutboundMessage("comm-1", "sms", "+16175550123", "Reminder"))

    assert receipt.provider_message_id in fake_twilio.messages
    assert isinstance(adapter.rate_limiter, RedisTokenBucket)
    adapter.close()


def test_smtp_provider_sends_through_the_relay() -> None:
    with SmtpServer() as server:
        settings = ChannelsConfig(
            sms_provider="none",
            email_provider="smtp",
            smtp_host=server.host,
            smtp_port=server.port,
            smtp_security="none",
            smtp_from_address="no-reply@riverside-clinic.example.org",
        )
        adapter = build_adapters(settings)["email"]
        adapter.send(
            OutboundMessage(
                "comm-1",
                "email",
                "pat@example.net",
                "Hi",
                subject="Hi",
                list_unsubscribe=ListUnsubscribe("https://bridge.example.org/unsubscribe/email/t"),
            )
        )

    assert isinstance(adapter, SmtpEmailAdapter)
    assert len(server.messages) == 1


@pytest.mark.parametrize(
    ("settings", "missing"),
    [
        pytest.param({"sms_provider": "twilio"}, "twilio_account_sid", id="twilio-without-sid"),
        pytest.param(
            {
                "sms_provider": "twilio",
                "twilio_account_sid": "AC" + "1" * 32,
                "twilio_auth_token": "x",
                "redis_url": "redis://127.0.0.1:6379/5",
            },
            "twilio_from_number or twilio_messaging_service_sid",
            id="twilio-without-sender",
        ),
        pytest.param(
            {
                "sms_provider": "twilio",
                "twilio_account_sid": "AC" + "1" * 32,
                "twilio_auth_token": "x",
                "twilio_from_number": "+16175550100",
            },
            "redis_url",
            id="rate-limit-without-redis",
        ),
        pytest.param({"email_provider": "smtp"}, "smtp_host", id="smtp-without-host"),
        pytest.param({"sms_provider": "carrier-pigeon"}, "sms_provider", id="unknown-provider"),
    ],
)
def test_incomplete_settings_are_refused(settings: dict[str, object], missing: str) -> None:
    with pytest.raises(ValidationError) as error:
        ChannelsConfig.model_validate(settings)

    assert missing in str(error.value)


def test_secrets_do_not_appear_in_the_settings_repr() -> None:
    settings = ChannelsConfig(
        email_provider="smtp",
        smtp_host="smtp.example.org",
        smtp_from_address="no-reply@example.org",
        smtp_password=SecretStr("hunter2-smtp"),
        twilio_auth_token=SecretStr("hunter2-twilio"),
    )

    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())
