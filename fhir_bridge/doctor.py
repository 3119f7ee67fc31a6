"""``fhir-bridge doctor``: is this installation ready to send? One check per line, each with a fix.

Every check is a function of a :class:`DoctorContext` (settings plus what earlier checks
found) returning a :class:`CheckResult`. Network calls make one bounded attempt with a short
timeout; the EHR client's retry policy is deliberately not used here, because a person is
waiting at the terminal. Details and fixes name settings, URLs, ids and HTTP statuses only:
never secrets, never patient data (nothing read from the EHR is echoed).
"""

from __future__ import annotations

import functools
import os
import smtplib
import ssl
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx

from fhir_bridge.fhir.client import MAX_PARALLEL_READS, EhrClient, RetryPolicy, declares_batch
from fhir_bridge.fhir.errors import EhrAuthError, EhrError, EhrNotFound, EhrNotSupported
from fhir_bridge.settings import ENV_PREFIX, SUBSCRIBED_TYPES, Settings, SettingsError

Status = Literal["ok", "fail", "warn", "skip"]
DEFAULT_TIMEOUT_SECONDS = 5.0
BACKPORT_IG = "http://hl7.org/fhir/uv/subscriptions-backport"
TOPIC_CANONICAL_EXTENSION = (
    f"{BACKPORT_IG}/StructureDefinition/capabilitystatement-subscriptiontopic-canonical"
)
# What we search by: change tracking on the three types, consent by patient.
REQUIRED_SEARCH_PARAMS: tuple[tuple[str, str], ...] = (
    *((resource_type, "_lastUpdated") for resource_type in SUBSCRIBED_TYPES),
    ("Consent", "patient"),
)
TEST_MESSAGE_TEXT = (
    "fhir-bridge test message: this clinic's patient messaging is set up. No reply needed."
)
MIGRATE_FIX = "run `fhir-bridge migrate` (with the same FHIR_BRIDGE_DATABASE_URL)"


def _env(name: str) -> str:
    return ENV_PREFIX + name


@dataclass(frozen=True)
class CheckResult:
    """One line of the report. ``detail`` and ``fix`` never carry secrets or PHI."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, "ok", detail)


def fail(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, "fail", detail, fix)


def warn(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, "warn", detail, fix)


def skip(name: str, reason: str) -> CheckResult:
    return CheckResult(name, "skip", reason)


@dataclass
class DoctorContext:
    """Settings, options and what earlier checks learned (the CapabilityStatement, …)."""

    settings: Settings
    send_test_to: str | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    results: dict[str, CheckResult] = field(default_factory=dict)
    capability: dict[str, Any] | None = None
    _ehr: EhrClient | None = None
    _smart_auth: Any = None

    def passed(self, name: str) -> bool:
        """Whether check ``name`` ran and did not fail (warnings count as passed)."""
        result = self.results.get(name)
        return result is not None and result.status in ("ok", "warn")

    @property
    def uses_subscriptions(self) -> bool:
        return self.settings.ingest_mode == "subscriptions"

    def ehr(self) -> EhrClient:
        """An EHR client for the doctor: one attempt, short timeout, the configured auth."""
        if self._ehr is None:
            self._ehr = _doctor_ehr_client(self, self.settings.require_ehr())
        return self._ehr

    def close(self) -> None:
        if self._ehr is not None:
            self._ehr.close()
        if self._smart_auth is not None:
            self._smart_auth.close()


def _doctor_ehr_client(ctx: DoctorContext, base_url: str) -> EhrClient:
    settings = ctx.settings
    timeout = min(settings.ehr_timeout_seconds, ctx.timeout)
    auth: httpx.Auth | None = None
    if settings.ehr_auth == "static":
        from fhir_bridge.fhir.auth import StaticBearerAuth

        token = settings.ehr_static_token.get_secret_value() if settings.ehr_static_token else ""
        auth = StaticBearerAuth(token)
    elif settings.ehr_auth == "smart-backend":
        from fhir_bridge.fhir.auth import SmartBackendServicesAuth
        from fhir_bridge.runtime import load_signing_key

        ctx._smart_auth = SmartBackendServicesAuth(
            fhir_base_url=base_url,
            client_id=settings.ehr_client_id or "",
            signing_key=load_signing_key(settings),
            scope=settings.ehr_scope,
            token_endpoint=settings.ehr_token_url,
            timeout=timeout,
        )
        auth = ctx._smart_auth
    return EhrClient(base_url, auth=auth, timeout=timeout, retry=RetryPolicy(max_attempts=1))


# --------------------------------------------------------------------------- settings


def check_settings(load: Callable[[], Settings]) -> tuple[CheckResult, Settings | None]:
    """The FHIR_BRIDGE_* variables validate (the message names each bad variable)."""
    try:
        settings = load()
    except SettingsError as exc:
        problems = " ".join(str(exc).replace("invalid configuration:", "").split())
        return (
            fail(
                "settings",
                f"invalid: {problems}",
                "correct the FHIR_BRIDGE_* variables named above (README: Configuration)",
            ),
            None,
        )
    mode: str = settings.ingest_mode
    if mode == "subscriptions":
        mode += f" ({settings.subscription_kind})"
    detail = f"valid (ingest: {mode}; EHR auth: {settings.ehr_auth})"
    if mode.startswith("subscriptions") and not _notification_secret_available(settings):
        return (
            warn(
                "settings",
                detail + f"; {_env('NOTIFICATION_SECRET')} is not set",
                f"set {_env('NOTIFICATION_SECRET')} (or run `fhir-bridge run` once, which keeps "
                f"one in {settings.data_dir / 'notification-secret'}); Subscriptions need it",
            ),
            settings,
        )
    return ok("settings", detail), settings


def _notification_secret_available(settings: Settings) -> bool:
    if settings.notification_secret is not None and settings.notification_secret.get_secret_value():
        return True
    return (settings.data_dir / "notification-secret").is_file()


# --------------------------------------------------------------------------- database


def check_database(ctx: DoctorContext) -> CheckResult:
    """The database answers and its schema is at Alembic's head (never creates a database)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from fhir_bridge.store.migrate import alembic_config

    raw = ctx.settings.database_url
    name = "database"
    fix_url = f"check {_env('DATABASE_URL')} (e.g. postgresql://user:pass@host/db)"
    try:
        url = make_url(raw)
    except ArgumentError:
        return fail(name, f"{_env('DATABASE_URL')} is not a database URL", fix_url)
    shown = url.render_as_string(hide_password=True)
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        path = url.database or ""
        if path in ("", ":memory:"):
            return warn(name, "in-memory SQLite: nothing persists", fix_url)
        if not Path(path).is_file():
            return fail(
                name,
                f"no database file at {Path(path).resolve()} (not created yet)",
                MIGRATE_FIX,
            )
    else:
        connect_args["connect_timeout"] = max(1, int(ctx.timeout))
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
    expected = set(ScriptDirectory.from_config(alembic_config(raw)).get_heads())
    try:
        engine = create_engine(url, connect_args=connect_args)
    except (ArgumentError, ImportError) as exc:
        return fail(name, f"cannot use {shown} ({type(exc).__name__})", fix_url)
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    except SQLAlchemyError as exc:
        return fail(
            name,
            f"cannot connect to {shown} ({type(exc).__name__})",
            fix_url + "; is the database server running and reachable?",
        )
    finally:
        engine.dispose()
    if not current:
        return fail(name, f"{shown} has no fhir-bridge schema (not migrated)", MIGRATE_FIX)
    if current != expected:
        if current - expected and not _known_revisions(raw, current):
            return fail(
                name,
                f"{shown} is at revision {', '.join(sorted(current))}, "
                "which this fhir-bridge does not know (made by a newer version?)",
                "upgrade fhir-bridge to the version that migrated this database",
            )
        return fail(
            name,
            f"{shown} is at revision {', '.join(sorted(current))}, "
            f"newest is {', '.join(sorted(expected))}",
            MIGRATE_FIX,
        )
    return ok(name, f"{shown} reachable, schema at head ({', '.join(sorted(current))})")


def check_reconciliation(ctx: DoctorContext) -> CheckResult:
    """The last reconciliation of our Communications with the EHR's (daily, or the command)."""
    from fhir_bridge.audit.reconcile import last_run_summary
    from fhir_bridge.store.db import make_engine, make_session_factory

    name, fix = "reconciliation", "run `fhir-bridge audit reconcile` to list what differs"
    if not ctx.passed("database"):
        return skip(name, "the database is not ready (see 'database')")
    engine = make_engine(ctx.settings.database_url)
    try:
        summary = last_run_summary(make_session_factory(engine))
    finally:
        engine.dispose()
    if summary is None:
        return ok(name, "none yet: one runs daily (or `fhir-bridge audit reconcile` now)")
    status, line = summary
    return ok(name, line) if status in ("ok", "system-of-record") else warn(name, line, fix)


def _known_revisions(database_url: str, revisions: set[str]) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    from fhir_bridge.store.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config(database_url))
    try:
        return all(script.get_revision(rev) is not None for rev in revisions)
    except CommandError:
        return False


# --------------------------------------------------------------------------- broker


def check_broker(ctx: DoctorContext) -> CheckResult:
    """Redis answers PING, or the filesystem broker's folder is writable."""
    broker = ctx.settings.broker_url
    name = "broker"
    scheme = urlsplit(broker).scheme
    if scheme in ("redis", "rediss"):
        problem = _redis_problem(broker, ctx.timeout)
        if problem:
            return fail(
                name,
                f"no answer from {_safe_url(broker)} ({problem})",
                f"start Redis or correct {_env('BROKER_URL')}",
            )
        return ok(name, f"{_safe_url(broker)} answers PING")
    if scheme == "filesystem":
        folder = ctx.settings.broker_dir
        problem = _folder_problem(folder)
        if problem:
            return fail(
                name,
                f"filesystem broker folder {folder}: {problem}",
                f"make {folder} writable by this user, or set {_env('BROKER_DIR')}",
            )
        return ok(name, f"filesystem broker, folder {folder} writable")
    return skip(name, f"{scheme}:// brokers are not checked (only redis:// and filesystem://)")


def _redis_problem(url: str, timeout: float) -> str | None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except redis.RedisError as exc:
        return type(exc).__name__
    finally:
        client.close()
    return None


def _folder_problem(folder: Path) -> str | None:
    """Why this folder cannot be written (None if it can, or could be created)."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            return "no existing parent folder"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable by this user"
    return None


def _safe_url(url: str) -> str:
    """The URL without a password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


# --------------------------------------------------------------------------- the EHR


def check_ehr(ctx: DoctorContext) -> CheckResult:
    """``GET [base]/metadata`` answers with a CapabilityStatement."""
    name = "ehr"
    base = ctx.settings.ehr_base_url
    if not base:
        return fail(
            name,
            f"{_env('EHR_BASE_URL')} is not set",
            f"set {_env('EHR_BASE_URL')} to the EHR's FHIR R4 base URL "
            "(`fhir-bridge run` without it uses the development sandbox)",
        )
    url = f"{base}/metadata"
    fix = (
        f"check {_env('EHR_BASE_URL')} (now {base}): it must be the FHIR base the EHR's "
        "/metadata sits under, reachable from this machine (firewall, VPN, proxy)"
    )
    try:
        response = httpx.get(
            url,
            headers={"Accept": "application/fhir+json", "User-Agent": "fhir-bridge-doctor"},
            timeout=ctx.timeout,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        return fail(name, f"no answer from {url} ({type(exc).__name__})", fix)
    body: Any = None
    if response.status_code in (401, 403):
        try:
            body = ctx.ehr().capabilities()
        except Exception as exc:  # any failure here is a finding, reported below
            return fail(name, f"{url} needs authentication and refused ours ({_why(exc)})", fix)
    elif response.status_code != 200:
        return fail(name, f"{url} answered HTTP {response.status_code}", fix)
    else:
        try:
            body = response.json()
        except ValueError:
            body = None
    if not isinstance(body, dict) or body.get("resourceType") != "CapabilityStatement":
        return fail(name, f"{url} did not answer with a CapabilityStatement", fix)
    ctx.capability = body
    software = body.get("software") or {}
    label = " ".join(str(software.get(key, "")) for key in ("name", "version")).strip()
    version = str(body.get("fhirVersion") or "unknown")
    detail = f"{base} answers" + (f" ({label})" if label else "") + f", FHIR {version}"
    if not version.startswith(("4.0", "4.3")):
        return warn(name, detail, "fhir-bridge speaks FHIR R4 (4.0.1); use the EHR's R4 endpoint")
    return ok(name, detail)


def _why(exc: BaseException) -> str:
    """A PHI-free reason: our own exception messages carry statuses and codes only."""
    if isinstance(exc, EhrError):
        return str(exc)
    return type(exc).__name__


def _server_rest(capability: Mapping[str, Any]) -> Mapping[str, Any]:
    for rest in capability.get("rest") or []:
        if isinstance(rest, dict) and rest.get("mode", "server") == "server":
            return rest
    return {}


def _resources(capability: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    rest = _server_rest(capability)
    return {
        str(item.get("type")): item
        for item in rest.get("resource") or []
        if isinstance(item, dict) and item.get("type")
    }


def _topic_capable(capability: Mapping[str, Any]) -> bool:
    """Backport IG: declared server, topic canonicals, or SubscriptionTopic resources."""
    declared = [
        str(value)
        for key in ("instantiates", "implementationGuide")
        for value in capability.get(key) or []
    ]
    if any("subscriptions-backport" in value for value in declared):
        return True
    resources = _resources(capability)
    if "SubscriptionTopic" in resources:
        return True
    return bool(_advertised_topics(capability))


def _advertised_topics(capability: Mapping[str, Any]) -> set[str]:
    subscription = _resources(capability).get("Subscription") or {}
    return {
        str(extension.get("valueCanonical") or extension.get("valueUri"))
        for extension in subscription.get("extension") or []
        if isinstance(extension, dict) and extension.get("url") == TOPIC_CANONICAL_EXTENSION
    }


def _needs_capability(ctx: DoctorContext, name: str) -> CheckResult | None:
    if ctx.capability is None:
        return skip(name, "the EHR's CapabilityStatement could not be read (see 'ehr')")
    return None


def check_subscription_support(ctx: DoctorContext) -> CheckResult:
    """The EHR supports the Subscription kind we are configured for."""
    name = "capability.subscriptions"
    if not ctx.uses_subscriptions:
        return skip(name, f"{_env('INGEST_MODE')}=polling: no Subscriptions used")
    missing = _needs_capability(ctx, name)
    if missing or ctx.capability is None:
        return missing or skip(name, "no CapabilityStatement")
    polling_fix = (
        f"set {_env('INGEST_MODE')}=polling (search by _lastUpdated every "
        f"{_env('POLL_INTERVAL_SECONDS')}), or ask the EHR vendor to enable Subscriptions"
    )
    subscription = _resources(ctx.capability).get("Subscription")
    if subscription is None:
        return fail(
            name, "the EHR does not list Subscription in its CapabilityStatement", polling_fix
        )
    interactions = {str(item.get("code")) for item in subscription.get("interaction") or [] if item}
    if interactions and "create" not in interactions:
        return fail(name, "the EHR does not allow creating Subscriptions", polling_fix)
    topic_capable = _topic_capable(ctx.capability)
    if ctx.settings.subscription_kind == "topic":
        if not topic_capable:
            return fail(
                name,
                "the EHR has classic Subscriptions only (no Backport IG topic support)",
                f"set {_env('SUBSCRIPTION_KIND')}=classic, or {_env('INGEST_MODE')}=polling",
            )
        return ok(name, "topic-based Subscriptions (R5 Backport IG) supported")
    extra = (
        f"; topic-based also offered ({_env('SUBSCRIPTION_KIND')}=topic)" if topic_capable else ""
    )
    return ok(name, "classic Subscriptions supported" + extra)


def check_subscription_operations(ctx: DoctorContext) -> CheckResult:
    """``$status`` and ``$events`` (Backport IG) are advertised for topic Subscriptions."""
    name = "capability.operations"
    if not ctx.uses_subscriptions or ctx.settings.subscription_kind != "topic":
        return skip(name, "only topic-based Subscriptions use $status/$events")
    if not ctx.passed("capability.subscriptions"):
        return skip(name, "no usable Subscription support (see 'capability.subscriptions')")
    assert ctx.capability is not None
    subscription = _resources(ctx.capability).get("Subscription") or {}
    operations = {
        str(item.get("name", "")).lstrip("$")
        for source in (subscription, _server_rest(ctx.capability))
        for item in source.get("operation") or []
        if isinstance(item, dict)
    }
    missing = [f"${op}" for op in ("status", "events") if op not in operations]
    if missing:
        return warn(
            name,
            f"not advertised: {', '.join(missing)}",
            "nothing to set: fhir-bridge then finds missed notifications by _lastUpdated "
            "search instead (slower catch-up after an outage)",
        )
    return ok(name, "$status and $events advertised")


def check_batch(ctx: DoctorContext) -> CheckResult:
    """The system ``batch`` interaction: several reads in one request."""
    name = "capability.batch"
    missing_capability = _needs_capability(ctx, name)
    if missing_capability or ctx.capability is None:
        return missing_capability or skip(name, "no CapabilityStatement")
    if not declares_batch(ctx.capability):
        return warn(
            name,
            "batch not declared",
            f"nothing to set: a worker then reads side by side (up to {MAX_PARALLEL_READS} "
            "requests at a time) instead of one batch per chunk of notifications and one per "
            "delivery",
        )
    return ok(name, "batch declared: a chunk's reads and a delivery's re-reads go in one request")


def check_search_parameters(ctx: DoctorContext) -> CheckResult:
    """The searches we rely on: ``_lastUpdated`` on our three types, ``patient`` on Consent."""
    name = "capability.search"
    missing_capability = _needs_capability(ctx, name)
    if missing_capability or ctx.capability is None:
        return missing_capability or skip(name, "no CapabilityStatement")
    resources = _resources(ctx.capability)
    common = {
        str(param.get("name"))
        for param in _server_rest(ctx.capability).get("searchParam") or []
        if isinstance(param, dict)
    }
    missing = []
    for resource_type, parameter in REQUIRED_SEARCH_PARAMS:
        resource = resources.get(resource_type)
        if resource is None:
            missing.append(f"{resource_type} (not offered)")
            continue
        params = common | {
            str(param.get("name"))
            for param in resource.get("searchParam") or []
            if isinstance(param, dict)
        }
        if parameter not in params:
            missing.append(f"{resource_type}?{parameter}")
    if not missing:
        wanted = ", ".join(f"{rt}?{param}" for rt, param in REQUIRED_SEARCH_PARAMS)
        return ok(name, f"advertised: {wanted}")
    detail = "not advertised: " + ", ".join(missing)
    consent_missing = any(item.startswith("Consent") for item in missing)
    fix = (
        "ask the EHR vendor to enable these searches; without Consent?patient no message "
        "can be sent (consent defaults to deny); without _lastUpdated use per-location or "
        "per-day Appointment search (README: EHRs without system-level search)"
    )
    if consent_missing or not ctx.uses_subscriptions:
        return fail(name, detail, fix)
    return warn(name, detail + " (Subscriptions still work; catch-up after outages does not)", fix)


def check_token(ctx: DoctorContext) -> CheckResult:
    """A token from the EHR with our key (SMART Backend Services), and a read that uses it."""
    name = "ehr.auth"
    if not ctx.passed("ehr"):
        return skip(name, "the EHR is not reachable (see 'ehr')")
    settings = ctx.settings
    smart_fix = (
        f"check that {_env('EHR_CLIENT_ID')} ({settings.ehr_client_id}) is the client id the "
        f"EHR registered, that {_env('EHR_PRIVATE_KEY_FILE')} is the key whose public JWKS "
        "was registered (`fhir-bridge keys jwks`, `fhir-bridge registration`), and that "
        f"{_env('EHR_SIGNING_ALG')} matches the registration"
    )
    static_fix = (
        f"check {_env('EHR_STATIC_TOKEN')}; for a production EHR use {_env('EHR_AUTH')}="
        f"smart-backend with {_env('EHR_CLIENT_ID')}, a private key and its registered JWKS"
    )
    try:
        ehr = ctx.ehr()
    except (OSError, ValueError) as exc:
        return fail(
            name,
            f"cannot load the private key ({type(exc).__name__})",
            f"point {_env('EHR_PRIVATE_KEY_FILE')} at a readable PEM key "
            "(`fhir-bridge keys generate --alg ES384 --out secrets/ehr.pem`)",
        )
    token_detail = ""
    if ctx._smart_auth is not None:
        try:
            ctx._smart_auth.access_token()
        except EhrAuthError as exc:
            return fail(name, str(exc), smart_fix)
        except EhrNotSupported:
            return fail(
                name,
                "the EHR publishes no .well-known/smart-configuration",
                f"set {_env('EHR_TOKEN_URL')} to the EHR's OAuth token endpoint",
            )
        except EhrError as exc:
            return fail(
                name,
                f"no token ({exc})",
                f"check {_env('EHR_TOKEN_URL')} or the EHR's smart-configuration; is the "
                "token endpoint reachable from here?",
            )
        token_detail = f"token issued to {settings.ehr_client_id}; "
    try:
        ehr.search(SUBSCRIBED_TYPES[0], {"_count": "1"})
    except EhrAuthError as exc:
        if settings.ehr_auth == "smart-backend":
            fix = (
                f"the token works but lacks access: register the scopes in {_env('EHR_SCOPE')} "
                "for this client on the EHR; " + smart_fix
            )
        elif settings.ehr_auth == "static":
            fix = static_fix
        else:
            fix = f"the EHR requires authentication: set {_env('EHR_AUTH')}=smart-backend"
        return fail(name, f"the EHR refused a read (HTTP {exc.status})", fix)
    except EhrError as exc:
        return fail(
            name,
            f"a read failed ({exc})",
            "check the EHR's logs for this request; the token was accepted",
        )
    return ok(
        name,
        token_detail + f"{settings.ehr_auth} auth: a {SUBSCRIBED_TYPES[0]}?_count=1 search works",
    )


def check_topics(ctx: DoctorContext) -> CheckResult:
    """The SubscriptionTopics our Subscriptions name exist on the EHR."""
    name = "topics"
    if not ctx.uses_subscriptions or ctx.settings.subscription_kind != "topic":
        return skip(name, "only topic-based Subscriptions need topics")
    if not ctx.passed("capability.subscriptions"):
        return skip(name, "no usable Subscription support (see 'capability.subscriptions')")
    assert ctx.capability is not None
    # The same discovery and choice as `subscriptions create`, so the two never disagree.
    from fhir_bridge.sync.topics import (
        Discovery,
        Topic,
        choose_topics,
        default_topic_url,
        discover_topics,
        named_topics,
    )

    if ctx.passed("ehr.auth"):
        discovery = discover_topics(ctx.ehr(), ctx.capability)
    else:
        canonicals = _advertised_topics(ctx.capability)
        discovery = Discovery(
            tuple(Topic(url, "CapabilityStatement") for url in sorted(canonicals)),
            bool(canonicals),
        )
    choices = choose_topics(
        discovery,
        SUBSCRIBED_TYPES,
        configured=named_topics(ctx.settings),
        default_url=lambda rt: default_topic_url(ctx.settings.subscription_topic_base, rt),
    )
    refusals = [choice.refusal for choice in choices if choice.refusal]
    if refusals:
        return fail(
            name,
            "; ".join(refusal.split("; set ")[0] for refusal in refusals),
            "create these SubscriptionTopics on the EHR (`fhir-bridge subscriptions topics "
            "install`, or README recipes: HAPI FHIR, Medplum), set "
            f"{_env('SUBSCRIPTION_TOPICS')} to topics the EHR has that fire on create and "
            f"update, or set {_env('SUBSCRIPTION_TOPIC_BASE')} to where the EHR's topics live "
            f"(now {ctx.settings.subscription_topic_base})",
        )
    chosen = ", ".join(f"{choice.resource_type} {choice.url}" for choice in choices)
    return ok(name, f"{len(choices)} topics fit (fire on create and update): {chosen}")


def check_subscriptions(ctx: DoctorContext) -> CheckResult:
    """Our Subscriptions exist on the EHR and the EHR says they are active."""
    name = "subscriptions"
    if not ctx.uses_subscriptions:
        return skip(name, f"{_env('INGEST_MODE')}=polling")
    for needed, why in (
        ("capability.subscriptions", "no usable Subscription support"),
        ("database", "the database is not ready"),
        ("ehr.auth", "no working access to the EHR"),
    ):
        if not ctx.passed(needed):
            return skip(name, f"{why} (see '{needed}')")
    from fhir_bridge.runtime import Runtime
    from fhir_bridge.store.db import transaction
    from fhir_bridge.sync.repository import list_subscriptions

    runtime = Runtime(settings=ctx.settings)
    try:
        with transaction(runtime.sessions) as session:
            rows = {
                row.resource_type: row.remote_id
                for row in list_subscriptions(session)
                if row.kind == ctx.settings.subscription_kind
            }
    finally:
        runtime.engine.dispose()
    create_fix = "run `fhir-bridge subscriptions create` (while the API is running)"
    problems: list[str] = []
    pending: list[str] = []
    for resource_type in SUBSCRIBED_TYPES:
        remote_id = rows.get(resource_type)
        if not remote_id:
            problems.append(f"{resource_type}: not created")
            continue
        try:
            remote = ctx.ehr().read("Subscription", remote_id)
        except EhrNotFound:
            problems.append(f"{resource_type}: Subscription/{remote_id} gone from the EHR")
            continue
        except EhrError as exc:
            problems.append(f"{resource_type}: cannot read Subscription/{remote_id} ({exc})")
            continue
        status = str(remote.get("status") or "unknown")
        remote_endpoint = (remote.get("channel") or {}).get("endpoint") or ""
        if not remote_endpoint.startswith(f"{ctx.settings.public_base_url}/"):
            problems.append(f"{resource_type}: notifies another address than the public URL")
        elif status == "requested":
            pending.append(f"{resource_type}: requested (handshake pending)")
        elif status != "active":
            problems.append(f"{resource_type}: Subscription/{remote_id} is {status}")
    if problems:
        return fail(
            name,
            "; ".join(problems),
            create_fix + "; a Subscription in error usually means the EHR cannot reach the "
            "webhook (see 'webhook'); `fhir-bridge subscriptions status` reactivates it",
        )
    if pending:
        return warn(
            name,
            "; ".join(pending),
            "the EHR activates a Subscription after a handshake to the webhook: keep the API "
            "running and check 'webhook'",
        )
    return ok(name, f"{len(SUBSCRIBED_TYPES)} active on the EHR ({', '.join(SUBSCRIBED_TYPES)})")


# --------------------------------------------------------------------------- webhook


def check_webhook(ctx: DoctorContext) -> CheckResult:
    """``GET {public base URL}/health`` answers 200 (only while the API is running)."""
    name = "webhook"
    public = ctx.settings.public_base_url
    url = f"{public}/health"
    fix = (
        "start the API (`fhir-bridge run` or `fhir-bridge serve`): this check only passes "
        f"while it runs; then make {_env('PUBLIC_BASE_URL')} (now {public}) the address the "
        "EHR and the SMS provider reach it at (reverse proxy, firewall, TLS)"
    )
    try:
        response = httpx.get(url, timeout=ctx.timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        return fail(name, f"no answer from {url} ({type(exc).__name__})", fix)
    if response.status_code != 200:
        return fail(name, f"{url} answered HTTP {response.status_code}", fix)
    public_host = urlsplit(public).hostname or ""
    ehr_host = urlsplit(ctx.settings.ehr_base_url or "").hostname or ""
    if _is_loopback(public_host) and ehr_host and not _is_loopback(ehr_host):
        return warn(
            name,
            f"{url} answers 200, but it is a loopback address the EHR at {ehr_host} cannot reach",
            f"set {_env('PUBLIC_BASE_URL')} to the https address the EHR reaches this service at",
        )
    return ok(name, f"{url} answers 200")


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


# --------------------------------------------------------------------------- channels


def check_channels(ctx: DoctorContext) -> list[CheckResult]:
    """One line per channel: the adapter builds and its provider answers (dry run).

    With ``send_test_to`` a real test message goes to that address through the channel the
    address belongs to (an ``@`` means email, otherwise SMS).
    """
    from channels.registry import build_adapters

    settings = ctx.settings
    providers = {"sms": settings.sms_provider, "email": settings.email_provider}
    try:
        adapters = build_adapters(settings.channels_config())
    except Exception as exc:  # a broken adapter is a finding, not a crash
        return [
            fail(
                "channels",
                f"channel adapters cannot be built ({type(exc).__name__})",
                f"check the {_env('SMS_PROVIDER')}/{_env('EMAIL_PROVIDER')} settings",
            )
        ]
    target = _test_channel(ctx.send_test_to)
    results: list[CheckResult] = []
    for channel in ("sms", "email"):
        name = f"channel.{channel}"
        adapter = adapters.get(channel)
        if adapter is None:
            results.append(skip(name, f"{_env(channel.upper() + '_PROVIDER')}=none"))
            continue
        if providers[channel] == "outbox":
            result = _check_outbox(name, settings.outbox_dir, channel)
        elif providers[channel] == "smtp":
            result = _check_smtp(name, adapter, ctx.timeout)
        else:
            result = _check_twilio(name, settings, ctx.timeout)
        if result.status != "fail" and target == channel and ctx.send_test_to:
            result = _send_test(ctx, name, adapter, channel, ctx.send_test_to)
        results.append(result)
    if target is not None and target not in adapters:
        results.append(
            fail(
                "channel.test",
                f"no {target} channel configured to send the test message through",
                f"set {_env(target.upper() + '_PROVIDER')}",
            )
        )
    return results


def _test_channel(address: str | None) -> str | None:
    if not address:
        return None
    return "email" if "@" in address else "sms"


def _check_outbox(name: str, folder: Path, channel: str) -> CheckResult:
    problem = _folder_problem(folder)
    if problem:
        return fail(
            name, f"outbox {folder}: {problem}", f"make it writable or set {_env('OUTBOX_DIR')}"
        )
    return ok(
        name,
        f"development outbox: {channel} messages are written to {folder / (channel + '.jsonl')}, "
        "not sent",
    )


def _check_smtp(name: str, adapter: Any, timeout: float) -> CheckResult:
    """Connect, EHLO, STARTTLS and login as configured, NOOP; nothing is sent."""
    where = f"{adapter.host}:{adapter.port}"
    fix = (
        f"check {_env('SMTP_HOST')}, {_env('SMTP_PORT')} and {_env('SMTP_SECURITY')} "
        f"(now {adapter.security}) with your mail relay's settings"
    )
    context = adapter.ssl_context or ssl.create_default_context()
    try:
        connection: smtplib.SMTP
        if adapter.security == "tls":
            connection = smtplib.SMTP_SSL(
                adapter.host, adapter.port, timeout=timeout, context=context
            )
        else:
            connection = smtplib.SMTP(adapter.host, adapter.port, timeout=timeout)
        with connection:
            connection.ehlo()
            if adapter.security == "starttls":
                connection.starttls(context=context)
                connection.ehlo()
            if adapter.username is not None:
                connection.login(adapter.username, adapter.password or "")
            code, _message = connection.noop()
    except smtplib.SMTPAuthenticationError as exc:
        return fail(
            name,
            f"{where} refused our login (SMTP {exc.smtp_code})",
            f"check {_env('SMTP_USERNAME')} and {_env('SMTP_PASSWORD')}",
        )
    except smtplib.SMTPNotSupportedError:
        return fail(name, f"{where} does not offer STARTTLS or AUTH", fix)
    except (smtplib.SMTPException, OSError) as exc:
        return fail(name, f"no usable SMTP session with {where} ({type(exc).__name__})", fix)
    if code != 250:
        return fail(name, f"{where} answered NOOP with {code}", fix)
    login = " and login" if adapter.username is not None else ""
    return ok(name, f"SMTP {where}: EHLO{login} ok ({adapter.security}); nothing sent (dry run)")


def _check_twilio(name: str, settings: Settings, timeout: float) -> CheckResult:
    """GET the Twilio account resource with our credentials; ping the rate-limit Redis."""
    sid = settings.twilio_account_sid or ""
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    url = f"{settings.twilio_base_url}/2010-04-01/Accounts/{sid}.json"
    credentials_fix = f"check {_env('TWILIO_ACCOUNT_SID')} and {_env('TWILIO_AUTH_TOKEN')}"
    try:
        response = httpx.get(url, auth=(sid, token), timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        return fail(
            name,
            f"no answer from {settings.twilio_base_url} ({type(exc).__name__})",
            f"check outbound HTTPS to Twilio and {_env('TWILIO_BASE_URL')}",
        )
    if response.status_code in (401, 403, 404):
        return fail(
            name, f"Twilio refused account {sid} (HTTP {response.status_code})", credentials_fix
        )
    if response.status_code != 200:
        return fail(name, f"Twilio answered HTTP {response.status_code}", credentials_fix)
    try:
        status = str(response.json().get("status", "unknown"))
    except (ValueError, AttributeError):
        status = "unknown"
    if status != "active":
        return fail(
            name,
            f"Twilio account {sid} is {status}",
            "reactivate the account in the Twilio console",
        )
    if settings.redis_url:
        problem = _redis_problem(settings.redis_url, timeout)
        if problem:
            return fail(
                name,
                f"the shared SMS rate limit's Redis {_safe_url(settings.redis_url)} does not "
                f"answer ({problem})",
                f"start Redis or correct {_env('REDIS_URL')}",
            )
    sender = settings.twilio_messaging_service_sid or settings.twilio_from_number
    return ok(name, f"Twilio account {sid} active, sender {sender}; nothing sent (dry run)")


def _send_test(
    ctx: DoctorContext, name: str, adapter: Any, channel: str, address: str
) -> CheckResult:
    """Send one real, content-free test message (only with ``--send-test-to``)."""
    from channels.base import ChannelError, OutboundMessage
    from fhir_bridge.optout import email_unsubscribe_links

    message_id = f"doctor-test-{uuid.uuid4().hex[:12]}"
    unsubscribe = None
    if channel == "email":
        unsubscribe = email_unsubscribe_links(ctx.settings, message_id, lambda: datetime.now(UTC))
    message = OutboundMessage(
        message_id=message_id,
        channel=channel,
        to=address,
        text=TEST_MESSAGE_TEXT,
        subject="fhir-bridge test message" if channel == "email" else None,
        list_unsubscribe=unsubscribe,
    )
    try:
        receipt = adapter.send(message)
    except ChannelError as exc:
        return fail(
            name,
            f"the test message to {_mask(address)} failed ({exc.code})",
            "check the provider's settings and the address",
        )
    return ok(
        name,
        f"test message sent to {_mask(address)} via {receipt.provider} "
        f"(id {receipt.provider_message_id})",
    )


def _mask(address: str) -> str:
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    return "***" + address[-2:] if len(address) > 2 else "***"


# --------------------------------------------------------------------------- rules


def check_rules(ctx: DoctorContext) -> CheckResult:
    """The rules file loads and no longer names the shipped example clinic."""
    from rules.config import RulesConfigError, example_values_in_use, load_rules_config

    name = "rules"
    path = ctx.settings.rules_file
    init_fix = (
        "run `fhir-bridge rules init` (writes rules.yaml), put your clinic's name, phone "
        f"and portal in it, and set {_env('RULES_FILE')} to it"
    )
    try:
        config = load_rules_config(path)
    except RulesConfigError as exc:
        first = exc.problems[0] if exc.problems else "invalid"
        more = f" (+{len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        return fail(
            name,
            first + more,
            f"fix the rules file (`fhir-bridge rules check {path}` lists every problem)",
        )
    if path is None:
        return fail(
            name,
            f"{_env('RULES_FILE')} is not set: the shipped example rules are in use",
            init_fix,
        )
    in_use = example_values_in_use(config)
    if in_use:
        return fail(
            name,
            f"{path} still uses the example clinic's values: {', '.join(in_use)}",
            f"put your clinic's own name, phone and portal link at these places in {path}",
        )
    return ok(name, f"{path} valid ({config.organization.clinic_name})")


# --------------------------------------------------------------------------- running


CHECK_ORDER = (
    "settings",
    "database",
    "reconciliation",
    "broker",
    "ehr",
    "capability.subscriptions",
    "capability.operations",
    "capability.batch",
    "capability.search",
    "ehr.auth",
    "topics",
    "subscriptions",
    "webhook",
    "channel.sms",
    "channel.email",
    "rules",
)


def run_checks(
    load_settings: Callable[[], Settings],
    *,
    send_test_to: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    raise_errors: bool = False,
) -> list[CheckResult]:
    """Run every check in order; a crash inside one check becomes its ✗ line."""
    settings_result, settings = check_settings(load_settings)
    if settings is None:
        return [settings_result] + [
            skip(name, "settings are invalid (see 'settings')") for name in CHECK_ORDER[1:]
        ]
    ctx = DoctorContext(settings=settings, send_test_to=send_test_to, timeout=timeout)
    ctx.results["settings"] = settings_result
    single: tuple[tuple[str, Callable[[DoctorContext], CheckResult]], ...] = (
        ("database", check_database),
        ("reconciliation", check_reconciliation),
        ("broker", check_broker),
        ("ehr", check_ehr),
        ("capability.subscriptions", check_subscription_support),
        ("capability.operations", check_subscription_operations),
        ("capability.batch", check_batch),
        ("capability.search", check_search_parameters),
        ("ehr.auth", check_token),
        ("topics", check_topics),
        ("subscriptions", check_subscriptions),
        ("webhook", check_webhook),
    )
    try:
        for name, check in single:
            ctx.results[name] = _guarded(name, functools.partial(_one, check, ctx), raise_errors)[0]
        results = list(ctx.results.values())
        results += _guarded("channels", lambda: check_channels(ctx), raise_errors)
        results += _guarded("rules", functools.partial(_one, check_rules, ctx), raise_errors)
    finally:
        ctx.close()
    return results


def _one(check: Callable[[DoctorContext], CheckResult], ctx: DoctorContext) -> list[CheckResult]:
    return [check(ctx)]


def _guarded(
    name: str, check: Callable[[], list[CheckResult]], raise_errors: bool
) -> list[CheckResult]:
    try:
        return check()
    except Exception as exc:
        if raise_errors:
            raise
        return [
            fail(
                name,
                f"the check itself failed ({type(exc).__name__})",
                "run `fhir-bridge --debug doctor` for the traceback and report it",
            )
        ]


def exit_status(results: Iterable[CheckResult]) -> int:
    """0 when nothing failed (warnings and skips allowed), else 1."""
    return 1 if any(result.status == "fail" for result in results) else 0
