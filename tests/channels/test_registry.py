"""build_adapters: configuration decides which provider sits behind each channel.

The channel settings live in the one ``Settings`` model (flat ``FHIR_BRIDGE_*`` names,
one default each); ``build_adapters`` reads them from it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from channels.base import ListUnsubscribe, OutboundMessage
from channels.outbox import OutboxAdapter, read_outbox
from channels.ratelimit import RedisTokenBucket
from channels.registry import build_adapters
from channels.smtp import SmtpEmailAdapter
from channels.twilio_sms import TwilioSmsAdapter
from fhir_bridge.settings import Settings, SettingsError, load_settings
from tests.support.fake_twilio import FakeTwilio
from tests.support.smtp import SmtpServer

STRONG_SECRET = "9f2c4e6a8b0d1f3e5a7c9e1b3d5f7a9c0e2b4d6f8a1c3e5b7d9f0a2c4e6b8d0f"


def settings(tmp_path: Path, **values: object) -> Settings:
    """The service settings as FHIR_BRIDGE_* variables would give them."""
    return load_settings(data_dir=tmp_path, notification_secret=STRONG_SECRET, **values)


def twilio_settings(tmp_path: Path, base_url: str, redis_url: str, **extra: object) -> Settings:
    fake = FakeTwilio()
    return settings(
        tmp_path,
        sms_provider="twilio",
        email_provider="none",
        twilio_account_sid=fake.account_sid,
        twilio_auth_token=fake.auth_token,
        twilio_from_number="+16175550100",
        twilio_base_url=base_url,
        redis_url=redis_url,
        **extra,
    )


def test_default_configuration_uses_the_outbox_for_both_channels(tmp_path: Path) -> None:
    adapters = build_adapters(settings(tmp_path, outbox_dir=tmp_path))

    assert sorted(adapters) == ["email", "sms"]
    assert all(isinstance(adapter, OutboxAdapter) for adapter in adapters.values())
    assert {adapter.channel for adapter in adapters.values()} == {"sms", "email"}


def test_disabled_channels_are_absent(tmp_path: Path) -> None:
    adapters = build_adapters(settings(tmp_path, sms_provider="none", email_provider="none"))

    assert adapters == {}


def test_outbox_sms_writes_under_outbox_dir(tmp_path: Path) -> None:
    adapters = build_adapters(settings(tmp_path, outbox_dir=tmp_path, email_provider="none"))

    adapters["sms"].send(OutboundMessage("comm-1", "sms", "+16175550123", "Reminder"))

    assert [r["message_id"] for r in read_outbox(tmp_path / "sms.jsonl")] == ["comm-1"]


def test_twilio_provider_sends_through_twilio_with_shared_rate_limit(
    fake_twilio: FakeTwilio, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    config = twilio_settings(
        tmp_path, fake_twilio.base_url, redis_url, redis_key_prefix=redis_prefix
    )
    adapter = build_adapters(config)["sms"]
    assert isinstance(adapter, TwilioSmsAdapter)

    receipt = adapter.send(OutboundMessage("comm-1", "sms", "+16175550123", "Reminder"))

    assert receipt.provider_message_id in fake_twilio.messages
    assert isinstance(adapter.rate_limiter, RedisTokenBucket)
    adapter.close()


def test_smtp_provider_sends_through_the_relay(tmp_path: Path) -> None:
    with SmtpServer() as server:
        config = settings(
            tmp_path,
            sms_provider="none",
            email_provider="smtp",
            smtp_host=server.host,
            smtp_port=server.port,
            smtp_security="none",
            smtp_from="no-reply@riverside-clinic.example.org",
        )
        adapter = build_adapters(config)["email"]
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
    ("values", "missing"),
    [
        pytest.param(
            {"sms_provider": "twilio"}, "FHIR_BRIDGE_TWILIO_ACCOUNT_SID", id="twilio-without-sid"
        ),
        pytest.param(
            {
                "sms_provider": "twilio",
                "twilio_account_sid": "AC" + "1" * 32,
                "twilio_auth_token": "x",
                "redis_url": "redis://127.0.0.1:6379/5",
            },
            "FHIR_BRIDGE_TWILIO_FROM_NUMBER or FHIR_BRIDGE_TWILIO_MESSAGING_SERVICE_SID",
            id="twilio-without-sender",
        ),
        pytest.param(
            {
                "sms_provider": "twilio",
                "twilio_account_sid": "AC" + "1" * 32,
                "twilio_auth_token": "x",
                "twilio_from_number": "+16175550100",
                "redis_url": "",
            },
            "FHIR_BRIDGE_REDIS_URL",
            id="rate-limit-without-redis",
        ),
        pytest.param(
            {"email_provider": "smtp", "smtp_host": ""}, "FHIR_BRIDGE_SMTP_HOST", id="smtp-no-host"
        ),
        pytest.param(
            {"sms_provider": "carrier-pigeon"}, "FHIR_BRIDGE_SMS_PROVIDER", id="unknown-provider"
        ),
    ],
)
def test_incomplete_settings_are_refused_naming_the_variables(
    tmp_path: Path, values: dict[str, object], missing: str
) -> None:
    with pytest.raises(SettingsError) as error:
        settings(tmp_path, **values)

    assert missing in str(error.value)


def test_secrets_do_not_appear_in_the_settings_repr(tmp_path: Path) -> None:
    config = settings(
        tmp_path,
        email_provider="smtp",
        smtp_host="smtp.example.org",
        smtp_from="no-reply@example.org",
        smtp_password=SecretStr("hunter2-smtp"),
        twilio_auth_token=SecretStr("hunter2-twilio"),
    )

    assert "hunter2" not in repr(config)
    assert "hunter2" not in str(config.model_dump())


def test_each_channel_setting_has_one_default(tmp_path: Path) -> None:
    config = settings(tmp_path)

    assert (config.smtp_port, config.sms_rate_per_second, config.sms_rate_burst) == (25, 10.0, 10)
    assert build_adapters(config.channels_config()).keys() == {"sms", "email"}
