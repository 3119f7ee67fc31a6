"""Turn channel settings into the adapters the pipeline uses, keyed by channel name.

Which provider sits behind "sms" and "email" is purely configuration: a laptop runs with the
outbox, a hospital deployment with Twilio and its SMTP relay. The service settings embed
:class:`ChannelsConfig`; secrets are ``SecretStr`` so they never show up in reprs or logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from channels.base import ChannelAdapter
from channels.outbox import OutboxAdapter
from channels.ratelimit import NoLimit, RateLimiter, RedisTokenBucket
from channels.retry import RetryPolicy
from channels.send_journal import InMemorySendJournal, RedisSendJournal, SendJournal
from channels.smtp import SmtpEmailAdapter
from channels.twilio_sms import TwilioSmsAdapter


class ChannelsConfigError(ValueError):
    """The channel settings are incomplete or contradictory."""


class ChannelsConfig(BaseModel):
    """Provider choice and credentials for every outbound channel."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sms_provider: Literal["twilio", "outbox", "none"] = "outbox"
    email_provider: Literal["smtp", "outbox", "none"] = "outbox"
    outbox_dir: Path = Path("var/outbox")

    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_base_url: str = "https://api.twilio.com"
    twilio_status_callback_url: str | None = None
    twilio_timeout_seconds: float = Field(default=10.0, gt=0)
    twilio_max_attempts: int = Field(default=4, ge=1)

    smtp_host: str | None = None
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    smtp_security: Literal["none", "starttls", "tls"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from_address: str | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)

    sms_rate_per_second: float | None = Field(default=1.0, gt=0)
    sms_rate_burst: int = Field(default=1, ge=1)
    redis_url: str | None = None
    redis_key_prefix: str = "fhir-bridge:"

    @model_validator(mode="after")
    def _providers_have_what_they_need(self) -> ChannelsConfig:
        missing: list[str] = []
        if self.sms_provider == "twilio":
            if not self.twilio_account_sid:
                missing.append("twilio_account_sid")
            if self.twilio_auth_token is None:
                missing.append("twilio_auth_token")
            if not (self.twilio_from_number or self.twilio_messaging_service_sid):
                missing.append("twilio_from_number or twilio_messaging_service_sid")
            if self.sms_rate_per_second is not None and not self.redis_url:
                missing.append("redis_url (shared SMS rate limit)")
        if self.email_provider == "smtp":
            if not self.smtp_host:
                missing.append("smtp_host")
            if not self.smtp_from_address:
                missing.append("smtp_from_address")
        if missing:
            raise ChannelsConfigError("channel settings missing: " + ", ".join(missing))
        return self


def build_adapters(config: ChannelsConfig) -> dict[str, ChannelAdapter]:
    """Build one adapter per enabled channel ("sms", "email"); disabled ones are absent."""
    adapters: dict[str, ChannelAdapter] = {}
    if config.sms_provider == "twilio":
        adapters["sms"] = _twilio(config)
    elif config.sms_provider == "outbox":
        adapters["sms"] = OutboxAdapter(path=config.outbox_dir / "sms.jsonl", channel="sms")
    if config.email_provider == "smtp":
        adapters["email"] = _smtp(config)
    elif config.email_provider == "outbox":
        adapters["email"] = OutboxAdapter(path=config.outbox_dir / "email.jsonl", channel="email")
    return adapters


def _twilio(config: ChannelsConfig) -> TwilioSmsAdapter:
    assert config.twilio_account_sid is not None and config.twilio_auth_token is not None
    return TwilioSmsAdapter(
        account_sid=config.twilio_account_sid,
        auth_token=config.twilio_auth_token.get_secret_value(),
        from_number=config.twilio_from_number,
        messaging_service_sid=config.twilio_messaging_service_sid,
        base_url=config.twilio_base_url,
        status_callback_url=config.twilio_status_callback_url,
        rate_limiter=_sms_rate_limiter(config),
        timeout=config.twilio_timeout_seconds,
        retry=RetryPolicy(max_attempts=config.twilio_max_attempts),
        journal=_send_journal(config),
    )


def _sms_rate_limiter(config: ChannelsConfig) -> RateLimiter:
    if config.sms_rate_per_second is None or config.redis_url is None:
        return NoLimit()
    sender = config.twilio_messaging_service_sid or config.twilio_from_number
    return RedisTokenBucket(
        config.redis_url,
        key=f"{config.redis_key_prefix}ratelimit:sms:{config.twilio_account_sid}:{sender}",
        rate_per_second=config.sms_rate_per_second,
        burst=config.sms_rate_burst,
    )


def _send_journal(config: ChannelsConfig) -> SendJournal:
    if config.redis_url is None:
        return InMemorySendJournal()
    return RedisSendJournal(config.redis_url, prefix=f"{config.redis_key_prefix}sms-intent:")


def _smtp(config: ChannelsConfig) -> SmtpEmailAdapter:
    assert config.smtp_host is not None and config.smtp_from_address is not None
    return SmtpEmailAdapter(
        host=config.smtp_host,
        port=config.smtp_port,
        from_address=config.smtp_from_address,
        security=config.smtp_security,
        username=config.smtp_username,
        password=config.smtp_password.get_secret_value() if config.smtp_password else None,
        timeout=config.smtp_timeout_seconds,
    )
