"""The collaborators one process needs, built from settings on first use.

API, worker and CLI all get their database, EHR client, rules and channel
adapters here, so there is one way to build each, and nothing is built at
import time (a Celery child builds its own after fork).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from channels.base import ChannelAdapter
from channels.registry import build_adapters
from fhir_bridge.fhir.client import EhrClient, RetryPolicy
from fhir_bridge.settings import ENV_PREFIX, Settings, SettingsError, get_settings
from fhir_bridge.store.db import make_engine, make_session_factory
from rules.config import RulesConfig, load_rules_config


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """Lazily built, process-wide collaborators."""

    settings: Settings
    clock: Callable[[], datetime] = utc_now
    _cache: dict[str, Any] = field(default_factory=dict)

    @property
    def engine(self) -> Engine:
        if "engine" not in self._cache:
            self._cache["engine"] = make_engine(self.settings.database_url)
        engine: Engine = self._cache["engine"]
        return engine

    @property
    def sessions(self) -> sessionmaker[Session]:
        if "sessions" not in self._cache:
            self._cache["sessions"] = make_session_factory(self.engine)
        factory: sessionmaker[Session] = self._cache["sessions"]
        return factory

    @property
    def ehr(self) -> EhrClient:
        if "ehr" not in self._cache:
            self._cache["ehr"] = build_ehr_client(self.settings)
        client: EhrClient = self._cache["ehr"]
        return client

    @property
    def rules(self) -> RulesConfig:
        if "rules" not in self._cache:
            self._cache["rules"] = load_rules_config(self.settings.rules_file)
        config: RulesConfig = self._cache["rules"]
        return config

    @property
    def adapters(self) -> Mapping[str, ChannelAdapter]:
        if "adapters" not in self._cache:
            self._cache["adapters"] = build_adapters(self.settings.channels_config())
        adapters: Mapping[str, ChannelAdapter] = self._cache["adapters"]
        return adapters

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)

    @property
    def skew(self) -> timedelta:
        return timedelta(seconds=self.settings.clock_skew_seconds)


def build_ehr_client(settings: Settings) -> EhrClient:
    """The EHR client with the configured authentication."""
    base_url = settings.require_ehr()
    auth: httpx.Auth | None = None
    if settings.ehr_auth == "static":
        from fhir_bridge.fhir.auth import StaticBearerAuth

        token = settings.ehr_static_token.get_secret_value() if settings.ehr_static_token else ""
        auth = StaticBearerAuth(token)
    elif settings.ehr_auth == "smart-backend":
        from fhir_bridge.fhir.auth import SmartBackendServicesAuth

        assert settings.ehr_client_id is not None
        auth = SmartBackendServicesAuth(
            fhir_base_url=base_url,
            client_id=settings.ehr_client_id,
            signing_key=load_signing_key(settings),
            scope=settings.ehr_scope,
            token_endpoint=settings.ehr_token_url,
            timeout=settings.ehr_timeout_seconds,
        )
    return EhrClient(
        base_url,
        auth=auth,
        timeout=settings.ehr_timeout_seconds,
        retry=RetryPolicy(max_attempts=settings.ehr_max_attempts),
    )


def load_signing_key(settings: Settings) -> Any:
    """The private key for SMART Backend Services, from a file or the environment.

    The algorithm is the key's own; ``FHIR_BRIDGE_EHR_SIGNING_ALG``, when set, must agree.
    Every problem is a ``SettingsError`` naming the variable and the fix.
    """
    from fhir_bridge.fhir.errors import SigningKeyError
    from fhir_bridge.fhir.keys import load_signing_key as from_pem
    from fhir_bridge.fhir.keys import load_signing_key_file

    try:
        if settings.ehr_private_key_file is not None:
            variable = f"{ENV_PREFIX}EHR_PRIVATE_KEY_FILE"
            key = load_signing_key_file(settings.ehr_private_key_file)
        elif settings.ehr_private_key is not None:
            variable = f"{ENV_PREFIX}EHR_PRIVATE_KEY"
            key = from_pem(settings.ehr_private_key.get_secret_value())
        else:
            raise SettingsError(
                f"no signing key configured: set {ENV_PREFIX}EHR_PRIVATE_KEY_FILE to a PEM file "
                "(make one with `fhir-bridge keys generate --alg ES384 --out secrets/ehr.pem`)"
            )
    except SigningKeyError as exc:
        raise SettingsError(f"{variable}: {exc}") from exc
    if settings.ehr_signing_alg is not None and settings.ehr_signing_alg != key.alg:
        raise SettingsError(
            f"{ENV_PREFIX}EHR_SIGNING_ALG is {settings.ehr_signing_alg} but the key in "
            f"{variable} is an {key.alg} key; unset the variable (the key decides) or use "
            f"an {settings.ehr_signing_alg} key"
        )
    return key


@functools.lru_cache(maxsize=1)
def get_runtime() -> Runtime:
    """The process-wide runtime (built on first use, after settings validate)."""
    return Runtime(settings=get_settings())
