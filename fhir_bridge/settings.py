"""Typed configuration, read from ``FHIR_BRIDGE_*`` environment variables.

Settings are built on first use (``get_settings()``), never at import time, and
validated then: a bad value stops the process with a message naming the
variable, not a stack trace from deep inside a worker.
"""

from __future__ import annotations

import functools
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from channels.registry import ChannelsConfig

ENV_PREFIX = "FHIR_BRIDGE_"
SUBSCRIBED_TYPES = ("Appointment", "MedicationRequest", "Encounter")


class UserError(RuntimeError):
    """Something the person running fhir-bridge can fix; the message says what and how.

    The CLI prints it as one line (no traceback unless ``--debug``).
    """


class SettingsError(UserError):
    """Configuration is missing or invalid; the message names the variables."""


NOTIFICATION_SECRET_FILE = "notification-secret"  # noqa: S105 (a file name)
DATABASE_FILE = "fhir-bridge.db"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def default_ehr_scope() -> str:
    """What we read and write on the EHR: the planned resources, the patient, everything
    the rules read through a reference (``rules.snapshot.REFERENCED_TYPES``), consents,
    Communications, Tasks and our Subscriptions."""
    from rules.snapshot import REFERENCED_TYPES

    referenced = " ".join(f"system/{name}.rs" for name in sorted(REFERENCED_TYPES))
    return (
        "system/Appointment.rus system/MedicationRequest.rs system/Encounter.rs "
        f"system/Patient.rs {referenced} system/Consent.crs system/Communication.crus "
        "system/Task.crs system/Subscription.crus"
    )


class Settings(BaseSettings):
    """Every knob of the service. See the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=None, extra="ignore", case_sensitive=False
    )

    # Storage and queue. The database, broker folder and outbox default to places inside
    # the data folder, so every command run in one folder finds what ``run`` set up there.
    data_dir: Path = Path("var")
    database_url: str = f"sqlite:///var/{DATABASE_FILE}"
    broker_url: str = "filesystem://"
    broker_dir: Path = Path("var/broker")
    queue_name: str = "fhir-bridge"

    # The EHR
    ehr_base_url: str | None = None
    ehr_auth: Literal["static", "smart-backend", "none"] = "static"
    ehr_static_token: SecretStr | None = None
    ehr_client_id: str | None = None
    ehr_private_key_file: Path | None = None
    ehr_private_key: SecretStr | None = None
    # Only a check: the algorithm is the key's own (EC P-384 -> ES384, RSA -> RS384).
    ehr_signing_alg: Literal["RS384", "ES384"] | None = None
    ehr_scope: str = Field(default_factory=lambda: default_ehr_scope())
    ehr_token_url: str | None = None
    ehr_timeout_seconds: float = Field(default=10.0, gt=0)
    ehr_max_attempts: int = Field(default=5, ge=1, le=20)

    # How changes reach us
    ingest_mode: Literal["subscriptions", "polling"] = "subscriptions"
    subscription_kind: Literal["topic", "classic"] = "topic"
    subscription_payload: Literal["empty", "id-only", "full-resource"] = "id-only"
    subscription_topic_base: str = "http://fhir-bridge.test/SubscriptionTopic"
    heartbeat_period_seconds: int = Field(default=60, ge=0)
    public_base_url: str = "http://127.0.0.1:8000"
    notification_secret: SecretStr | None = None
    max_notification_bytes: int = Field(default=1_000_000, ge=1024)
    poll_page_size: int = Field(default=100, ge=1, le=1000)
    # How polling searches (docs: README "EHRs without subscriptions"): `system` asks
    # `Type?_lastUpdated=ge…` of every type; EHRs that refuse system-level search (Epic-style)
    # take `per-location` (`Appointment?location=…&date=…`) or `per-day` (`Appointment?date=…`).
    poll_search: Literal["system", "per-location", "per-day"] = "system"
    poll_locations: str | None = None  # comma-separated Location ids; default: the rules file's
    poll_window_days: int = Field(default=14, ge=1, le=90)
    clock_skew_seconds: int = Field(default=5, ge=0)
    reference_ttl_seconds: int = Field(default=3600, ge=0)

    # Periodic work (seconds)
    dispatch_interval_seconds: float = Field(default=5.0, gt=0)
    relay_interval_seconds: float = Field(default=5.0, gt=0)
    subscription_check_interval_seconds: float = Field(default=60.0, gt=0)
    poll_interval_seconds: float = Field(default=60.0, gt=0)
    lease_seconds: int = Field(default=120, ge=5)
    max_send_attempts: int = Field(default=5, ge=1)

    # Outreach
    rules_file: Path | None = None
    communication_identifier_system: str = "urn:fhir-bridge:message-id"
    sender_reference: str | None = None

    # Channels
    sms_provider: Literal["twilio", "outbox", "none"] = "outbox"
    email_provider: Literal["smtp", "outbox", "none"] = "outbox"
    outbox_dir: Path = Path("var/outbox")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_security: Literal["none", "starttls", "tls"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "noreply@clinic.invalid"
    email_unsubscribe_mailto: str | None = None
    email_unsubscribe_days: int = Field(default=365, ge=30, le=3650)
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_base_url: str = "https://api.twilio.com"
    sms_rate_per_second: float = Field(default=10.0, gt=0)
    sms_rate_burst: int = Field(default=10, ge=1)
    redis_url: str = "redis://127.0.0.1:6379/0"

    # Serving
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # `run` without FHIR_BRIDGE_EHR_BASE_URL, and `fhir-bridge sandbox`: the development EHR.
    sandbox_port: int = Field(default=8090, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    api_docs: bool = True

    # Two-way messaging
    clinic_reference: str | None = None
    inbound_identifier_system: str = "urn:fhir-bridge:inbound-sms"
    crisis_reply_text: str = (
        "If you are in danger or thinking about harming yourself, call or text 988 "
        "(Suicide & Crisis Lifeline) or call 911."
    )
    crisis_terms: list[str] | None = None
    confirmation_window_days: int = Field(default=14, ge=1)
    ehr_update_attempts: int = Field(default=3, ge=1, le=10)
    channel_fallback: bool = True

    # Staff SMART app
    smart_client_id: str = "fhir-bridge-staff"
    smart_client_secret: SecretStr | None = None
    smart_scope: str = (
        "launch openid fhirUser patient/Patient.rs patient/Communication.rs patient/Consent.rs"
    )
    smart_session_seconds: int = Field(default=3600, ge=60, le=86400)
    smart_frame_ancestors: str | None = None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_case_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _database_url_is_a_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            backend = make_url(value).get_backend_name()
        except ArgumentError:
            raise ValueError(
                "not a database URL; use e.g. sqlite:///var/fhir-bridge.db or "
                "postgresql://user:password@host/dbname"
            ) from None
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {backend!r}; use sqlite or postgresql")
        return value

    @field_validator("public_base_url", "ehr_base_url", "twilio_base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _inside_the_data_folder(self) -> Settings:
        """Unset storage paths follow the data folder; an unset secret is read from it."""
        given = self.model_fields_set
        if "database_url" not in given:
            self.database_url = f"sqlite:///{(self.data_dir / DATABASE_FILE).as_posix()}"
        if "broker_dir" not in given:
            self.broker_dir = self.data_dir / "broker"
        if "outbox_dir" not in given:
            self.outbox_dir = self.data_dir / "outbox"
        if self.notification_secret is None:
            secret = read_notification_secret(self.data_dir)
            if secret:
                self.notification_secret = SecretStr(secret)
        return self

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.ehr_auth == "smart-backend":
            missing = [
                name
                for name, value in (
                    ("EHR_CLIENT_ID", self.ehr_client_id),
                    (
                        "EHR_PRIVATE_KEY_FILE or EHR_PRIVATE_KEY",
                        self.ehr_private_key_file or self.ehr_private_key,
                    ),
                )
                if not value
            ]
            if missing:
                raise ValueError(
                    "EHR_AUTH=smart-backend needs " + ", ".join(ENV_PREFIX + m for m in missing)
                )
        if self.email_provider == "smtp" and (
            self.notification_secret is None or not self.notification_secret.get_secret_value()
        ):
            raise ValueError(
                f"EMAIL_PROVIDER=smtp needs {ENV_PREFIX}NOTIFICATION_SECRET "
                "(every email carries a signed one-click unsubscribe link)"
            )
        try:
            self.channels_config()
        except ValidationError as exc:
            problems = "; ".join(str(error["msg"]) for error in exc.errors())
            raise ValueError(f"channel settings: {problems}") from None
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def notification_secret_file(self) -> Path:
        """Where ``run``/``migrate`` keep a generated secret when the variable is unset."""
        return self.data_dir / NOTIFICATION_SECRET_FILE

    def channels_config(self) -> ChannelsConfig:
        """The channel adapters' own config, from the flat FHIR_BRIDGE_* variables."""
        from channels.registry import ChannelsConfig

        return ChannelsConfig(
            sms_provider=self.sms_provider,
            email_provider=self.email_provider,
            outbox_dir=self.outbox_dir,
            twilio_account_sid=self.twilio_account_sid,
            twilio_auth_token=self.twilio_auth_token,
            twilio_from_number=self.twilio_from_number,
            twilio_messaging_service_sid=self.twilio_messaging_service_sid,
            twilio_base_url=self.twilio_base_url,
            smtp_host=self.smtp_host,
            smtp_port=self.smtp_port,
            smtp_security=self.smtp_security,
            smtp_username=self.smtp_username,
            smtp_password=self.smtp_password,
            smtp_from_address=self.smtp_from,
            sms_rate_per_second=self.sms_rate_per_second,
            sms_rate_burst=self.sms_rate_burst,
            redis_url=self.redis_url,
        )

    def require_ehr(self) -> str:
        """The EHR base URL, or a clear error for commands that need one."""
        if not self.ehr_base_url:
            raise SettingsError(f"{ENV_PREFIX}EHR_BASE_URL is not set")
        return self.ehr_base_url

    def require_notification_secret(self) -> str:
        """The master secret notification tokens are derived from."""
        if self.notification_secret is None or not self.notification_secret.get_secret_value():
            raise SettingsError(
                f"{ENV_PREFIX}NOTIFICATION_SECRET is not set and there is no "
                f"{self.notification_secret_file}: run `fhir-bridge migrate` (or "
                "`fhir-bridge run`) here to create one, or set the variable"
            )
        return self.notification_secret.get_secret_value()


def read_notification_secret(data_dir: Path) -> str | None:
    """The secret kept in the data folder, if one was created there."""
    try:
        return (data_dir / NOTIFICATION_SECRET_FILE).read_text(encoding="utf-8").strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def ensure_notification_secret(settings: Settings) -> bool:
    """Create the data folder's secret once (mode 0600) when none is configured.

    Only the commands that set a folder up (``run``, ``migrate``) call this; every command
    then reads it through settings. Returns True when a new secret was written.
    """
    if settings.notification_secret is not None:
        return False
    path = settings.notification_secret_file
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secrets.token_urlsafe(32))
    return True


def load_settings(**overrides: object) -> Settings:
    """Build and validate settings, turning pydantic's error into a readable one."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            name = ENV_PREFIX + where.upper() if error["loc"] else where
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{name}: {message}")
        if len(lines) == 1:
            raise SettingsError(f"invalid configuration: {lines[0]}") from None
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, built on first use."""
    return load_settings()
