"""Typed configuration, read from ``FHIR_BRIDGE_*`` environment variables.

Settings are built on first use (``get_settings()``), never at import time, and
validated then: a bad value stops the process with a message naming the
variable, not a stack trace from deep inside a worker.
"""

from __future__ import annotations

import functools
import math
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rules.resource_types import PLANNED_TYPES

if TYPE_CHECKING:
    from channels.registry import ChannelSettings

ENV_PREFIX = "FHIR_BRIDGE_"
# One Subscription (and one polling search) per planned type: the list lives in rules/.
SUBSCRIBED_TYPES = PLANNED_TYPES


class UserError(RuntimeError):
    """Something the person running fhir-bridge can fix; the message says what and how.

    The CLI prints it as one line (no traceback unless ``--debug``).
    """


class SettingsError(UserError):
    """Configuration is missing or invalid; the message names the variables."""


NOTIFICATION_SECRET_FILE = "notification-secret"  # noqa: S105 (a file name)
DATABASE_FILE = "fhir-bridge.db"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# The notification secret's strength rule (README "Configuration"): at least 256 bits,
# counted as length x bits per character of the smallest alphabet the value fits (hex: 4,
# URL-safe/standard base64: 6, any other printable ASCII: log2(95)), and not mostly one
# character (at least 8 different ones). So: 64 hex digits or 43 base64 characters (what
# `secrets.token_urlsafe(32)` prints) at the least.
MIN_SECRET_BITS = 256
MIN_SECRET_DISTINCT_CHARACTERS = 8
GENERATE_SECRET_HINT = 'python -c "import secrets;print(secrets.token_urlsafe(48))"'  # noqa: S105 (a command)
_HEX = frozenset("0123456789abcdefABCDEF")
_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=")


def default_ehr_scope() -> str:
    """What we read and write on the EHR: the planned resources, the patient, everything
    the rules read through a reference (``rules.snapshot.REFERENCED_TYPES``), consents,
    Communications, Tasks and our Subscriptions."""
    from rules.snapshot import REFERENCED_TYPES

    referenced = " ".join(f"system/{name}.rs" for name in sorted(REFERENCED_TYPES))
    return (
        "system/Appointment.rus system/MedicationRequest.rs system/Encounter.rs "
        f"system/Patient.rs {referenced} system/Consent.crs system/Communication.crus "
        "system/Task.crs system/Subscription.crus system/AuditEvent.c"
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
    # JSON map type -> topic canonical URL; unset types: {topic_base}/{type}-change, or
    # whichever of the EHR's topics fits (`fhir-bridge subscriptions create` discovers them).
    subscription_topics: dict[str, str] = Field(default_factory=dict)
    # Classic Subscriptions have no event numbers or heartbeats: a `_lastUpdated` search
    # this often catches up what a lost notification would have said.
    classic_catch_up_seconds: int = Field(default=300, ge=10)
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
    # /ready answers 503 (and the relay logs a WARNING) when the oldest unprocessed item of
    # a kind of work is older than this.
    stall_seconds: int = Field(default=300, ge=10)

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
    redis_key_prefix: str = "fhir-bridge:"

    # Serving
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # `run` without FHIR_BRIDGE_EHR_BASE_URL, and `fhir-bridge sandbox`: the development EHR.
    sandbox_port: int = Field(default=8090, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    api_docs: bool = True
    # Bearer token Prometheus must send to /metrics; unset: /metrics answers without one.
    metrics_token: SecretStr | None = None

    # Two-way messaging
    clinic_reference: str | None = None
    inbound_identifier_system: str = "urn:fhir-bridge:inbound-sms"
    crisis_reply_text: str = (
        "If you are in danger or thinking about harming yourself, call or text 988 "
        "(Suicide & Crisis Lifeline) or call 911."
    )
    crisis_terms: list[str] | None = None
    confirmation_window_days: int = Field(default=14, ge=1)
    # Double opt-in for health tips (fhir_bridge.optin)
    optin_invite_period_days: int = Field(default=180, ge=1, le=3650)
    optin_invite_valid_days: int = Field(default=7, ge=1, le=90)
    ehr_update_attempts: int = Field(default=3, ge=1, le=10)
    channel_fallback: bool = True

    # Staff SMART app
    smart_client_id: str = "fhir-bridge-staff"
    smart_client_secret: SecretStr | None = None
    smart_scope: str = (
        "launch openid fhirUser patient/Patient.rs patient/Communication.rs patient/Consent.rs"
    )
    smart_session_seconds: int = Field(default=3600, ge=60, le=86400)
    smart_session_idle_seconds: int = Field(default=900, ge=60, le=86400)
    smart_standalone_scope: str = "openid fhirUser user/Patient.rs user/Communication.rs"
    smart_frame_ancestors: str | None = None

    # Audit (IHE BALP AuditEvents, kept here; pushed to the EHR unless it refuses them)
    audit_push: bool = True

    # Read-only FHIR API for auditors (/fhir): JSON map client id -> its JWKS (an https URL
    # or a file path); access tokens are signed with a key derived from the notification secret.
    auditor_clients: dict[str, str] = Field(default_factory=dict)
    auditor_token_seconds: int = Field(default=300, ge=60, le=3600)

    # Reconciliation with the EHR and retention (fhir-bridge audit reconcile / purge).
    # false: the EHR refuses Communication writes; our /fhir API is the system of record.
    ehr_writes_communication: bool = True
    retain_bodies_days: int = Field(default=365, ge=1)
    retain_records_days: int = Field(default=2190, ge=1)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_case_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("notification_secret", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("notification_secret")
    @classmethod
    def _secret_is_strong(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_secret_strength(value.get_secret_value())
        return value

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

    @field_validator("subscription_topics")
    @classmethod
    def _topics_for_subscribed_types(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(SUBSCRIBED_TYPES))
        if unknown:
            raise ValueError(
                f"unknown resource type {unknown[0]!r}; use {', '.join(SUBSCRIBED_TYPES)}"
            )
        for resource_type, url in value.items():
            if not url.startswith(("http://", "https://", "urn:")):
                raise ValueError(f"the {resource_type} topic must be a canonical URL")
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
    def _records_outlive_bodies(self) -> Settings:
        if self.retain_records_days < self.retain_bodies_days:
            raise ValueError(
                f"{ENV_PREFIX}RETAIN_RECORDS_DAYS must be at least {ENV_PREFIX}RETAIN_BODIES_DAYS"
            )
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
        from channels.registry import missing_channel_settings

        missing = missing_channel_settings(self)
        if missing:
            raise ValueError(
                "channel settings missing: "
                + ", ".join(
                    " or ".join(ENV_PREFIX + part.upper() for part in name.split(" or "))
                    for name in missing
                )
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def notification_secret_file(self) -> Path:
        """Where ``run``/``migrate`` keep a generated secret when the variable is unset."""
        return self.data_dir / NOTIFICATION_SECRET_FILE

    def channels_config(self) -> ChannelSettings:
        """What ``channels.registry.build_adapters`` reads: these settings themselves (the
        channel settings have one model and one default each, here)."""
        return self

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
                f"`fhir-bridge run`) here to create one, or set the variable (make one with "
                f"`{GENERATE_SECRET_HINT}`)"
            )
        return self.notification_secret.get_secret_value()


def secret_strength_bits(value: str) -> float:
    """Bits a secret can carry: its length times the bits of the smallest alphabet it fits."""
    characters = set(value)
    if characters <= _HEX:
        per_character = 4.0
    elif characters <= _BASE64:
        per_character = 6.0
    else:
        per_character = math.log2(95)
    return len(value) * per_character


def check_secret_strength(value: str) -> None:
    """Refuse a notification secret under 256 bits (see ``MIN_SECRET_BITS``)."""
    if (
        secret_strength_bits(value) < MIN_SECRET_BITS
        or len(set(value)) < MIN_SECRET_DISTINCT_CHARACTERS
    ):
        raise ValueError(
            f"too weak: it must carry at least {MIN_SECRET_BITS} bits (64 hex digits or 43 "
            f"base64 characters); make one with `{GENERATE_SECRET_HINT}`"
        )


def read_notification_secret(data_dir: Path) -> str | None:
    """The secret kept in the data folder, if one was created there."""
    path = data_dir / NOTIFICATION_SECRET_FILE
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise SettingsError(
            f"cannot read the notification secret {path} ({reason}): fix the file or its "
            f"permissions, or set {ENV_PREFIX}NOTIFICATION_SECRET"
        ) from None


def ensure_notification_secret(settings: Settings) -> bool:
    """Create the data folder's secret once when none is configured: 0600 from the start,
    written whole before it appears (``private_files``), in a 0700 data folder.

    Only the commands that set a folder up (``run``, ``migrate``) call this; every command
    then reads it through settings. Returns True when a new secret was written.
    """
    from fhir_bridge.private_files import private_dir, write_new_private_file

    private_dir(settings.data_dir)
    if settings.notification_secret is not None:
        return False
    return write_new_private_file(settings.notification_secret_file, secrets.token_urlsafe(48))


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
