"""Turn channel settings into the adapters the pipeline uses, keyed by channel name.

Which provider sits behind "sms" and "email" is purely configuration: a laptop runs with the
outbox, a hospital deployment with Twilio and its SMTP relay. The settings themselves live in
one model, ``fhir_bridge.settings.Settings`` (flat ``FHIR_BRIDGE_*`` variables, one default
each); this module only declares what it reads (:class:`ChannelSettings`) and what each
provider needs (:func:`missing_channel_settings`). Secrets are ``SecretStr`` there, so they
never show up in reprs or logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import SecretStr

from channels.base import ChannelAdapter
from channels.outbox import OutboxAdapter
from channels.ratelimit import NoLimit, RateLimiter, RedisTokenBucket
from channels.send_journal import InMemorySendJournal, RedisSendJournal, SendJournal
from channels.smtp import SmtpEmailAdapter, SmtpSecurity
from channels.twilio_sms import TwilioSmsAdapter

PROVIDER_TIMEOUT_SECONDS = 10.0
"""One provider call (a Twilio request, an SMTP session step) gives up after this long."""


class ChannelSettings(Protocol):
    """The channel part of the service settings (``fhir_bridge.settings.Settings``)."""

    @property
    def sms_provider(self) -> str: ...
    @property
    def email_provider(self) -> str: ...
    @property
    def outbox_dir(self) -> Path: ...
    @property
    def twilio_account_sid(self) -> str | None: ...
    @property
    def twilio_auth_token(self) -> SecretStr | None: ...
    @property
    def twilio_from_number(self) -> str | None: ...
    @property
    def twilio_messaging_service_sid(self) -> str | None: ...
    @property
    def twilio_base_url(self) -> str: ...
    @property
    def smtp_host(self) -> str: ...
    @property
    def smtp_port(self) -> int: ...
    @property
    def smtp_security(self) -> SmtpSecurity: ...
    @property
    def smtp_username(self) -> str | None: ...
    @property
    def smtp_password(self) -> SecretStr | None: ...
    @property
    def smtp_from(self) -> str: ...
    @property
    def sms_rate_per_second(self) -> float: ...
    @property
    def sms_rate_burst(self) -> int: ...
    @property
    def redis_url(self) -> str: ...
    @property
    def redis_key_prefix(self) -> str: ...


def missing_channel_settings(config: ChannelSettings) -> list[str]:
    """The settings (field names) the chosen providers need but lack; empty when complete."""
    missing: list[str] = []
    if config.sms_provider == "twilio":
        if not config.twilio_account_sid:
            missing.append("twilio_account_sid")
        if config.twilio_auth_token is None or not config.twilio_auth_token.get_secret_value():
            missing.append("twilio_auth_token")
        if not (config.twilio_from_number or config.twilio_messaging_service_sid):
            missing.append("twilio_from_number or twilio_messaging_service_sid")
        if not config.redis_url:
            missing.append("redis_url")  # the SMS rate limit is shared through Redis
    if config.email_provider == "smtp":
        if not config.smtp_host:
            missing.append("smtp_host")
        if not config.smtp_from:
            missing.append("smtp_from")
    return missing


def build_adapters(config: ChannelSettings) -> dict[str, ChannelAdapter]:
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


def _twilio(config: ChannelSettings) -> TwilioSmsAdapter:
    assert config.twilio_account_sid is not None and config.twilio_auth_token is not None
    return TwilioSmsAdapter(
        account_sid=config.twilio_account_sid,
        auth_token=config.twilio_auth_token.get_secret_value(),
        from_number=config.twilio_from_number,
        messaging_service_sid=config.twilio_messaging_service_sid,
        base_url=config.twilio_base_url,
        rate_limiter=_sms_rate_limiter(config),
        timeout=PROVIDER_TIMEOUT_SECONDS,
        journal=_send_journal(config),
    )


def _sms_rate_limiter(config: ChannelSettings) -> RateLimiter:
    if not config.redis_url:
        return NoLimit()
    sender = config.twilio_messaging_service_sid or config.twilio_from_number
    return RedisTokenBucket(
        config.redis_url,
        key=f"{config.redis_key_prefix}ratelimit:sms:{config.twilio_account_sid}:{sender}",
        rate_per_second=config.sms_rate_per_second,
        burst=config.sms_rate_burst,
    )


def _send_journal(config: ChannelSettings) -> SendJournal:
    if not config.redis_url:
        return InMemorySendJournal()
    return RedisSendJournal(config.redis_url, prefix=f"{config.redis_key_prefix}sms-intent:")


def _smtp(config: ChannelSettings) -> SmtpEmailAdapter:
    return SmtpEmailAdapter(
        host=config.smtp_host,
        port=config.smtp_port,
        from_address=config.smtp_from,
        security=config.smtp_security,
        username=config.smtp_username,
        password=config.smtp_password.get_secret_value() if config.smtp_password else None,
        timeout=PROVIDER_TIMEOUT_SECONDS,
    )
