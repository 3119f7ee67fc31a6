"""Everything on 127.0.0.1 for one end-to-end run: EHR, SMTP, PostgreSQL, Redis, fhir-bridge."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fhir_bridge.fhir.keys import generate_private_key, load_signing_key, public_jwks
from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.settings import Settings
from tests.support.bridge import BridgeProcesses
from tests.support.databases import postgres_database
from tests.support.smtp import SmtpServer

REDIS_BROKER = "redis://127.0.0.1:6379/2"
NOTIFICATION_SECRET = "e2e-notification-secret-Hq3v9XkR2mWp7LsN4tYb8ZcJ6dFg"
DEFAULT_RULES = Path(__file__).resolve().parents[2] / "rules" / "default_rules.yaml"


@dataclass
class Stack:
    ehr: EhrServer
    smtp: SmtpServer
    bridge: BridgeProcesses
    database_url: str

    def communications(self, patient_id: str) -> list[dict[str, Any]]:
        bundle = self.ehr.search("Communication", subject=f"Patient/{patient_id}")
        return [entry["resource"] for entry in bundle.get("entry", [])]


def write_rules(path: Path, offsets: list[str]) -> Path:
    """The shipped rules with test-friendly timing: no quiet hours, generous caps."""
    rules = yaml.safe_load(DEFAULT_RULES.read_text())
    rules["quiet_hours"] = {"start": "00:00", "end": "23:59"}
    rules["caps"] = {"per_day": 20, "per_week": 50}
    rules["channels"]["preferred"] = ["email", "sms"]
    rules["appointment_reminders"]["offsets"] = offsets
    rules["appointment_reminders"]["catch_up"] = False
    rules["appointment_reminders"]["overrides"] = []
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


@contextmanager
def running_stack(
    tmp_path: Path,
    *,
    offsets: list[str],
    subscription_kind: str = "topic",
    payload: str = "id-only",
    fhir_version: str = "R4",
    supports_events: bool = True,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    with ExitStack() as stack:
        ehr = stack.enter_context(
            EhrServer(fhir_version=fhir_version, supports_events=supports_events)
        )
        smtp = stack.enter_context(SmtpServer())
        database_url = stack.enter_context(postgres_database())
        pem = generate_private_key("ES384")
        ehr.register_client(
            "fhir-bridge-e2e", public_jwks(load_signing_key(pem)), scope=Settings().ehr_scope
        )
        env = {
            "FHIR_BRIDGE_DATABASE_URL": database_url,
            "FHIR_BRIDGE_BROKER_URL": REDIS_BROKER,
            "FHIR_BRIDGE_QUEUE_NAME": f"e2e-{uuid.uuid4().hex[:10]}",
            "FHIR_BRIDGE_DATA_DIR": str(tmp_path),
            "FHIR_BRIDGE_EHR_BASE_URL": ehr.base_url,
            "FHIR_BRIDGE_EHR_AUTH": "smart-backend",
            "FHIR_BRIDGE_EHR_CLIENT_ID": "fhir-bridge-e2e",
            "FHIR_BRIDGE_EHR_PRIVATE_KEY": pem,
            "FHIR_BRIDGE_EHR_SIGNING_ALG": "ES384",
            "FHIR_BRIDGE_SUBSCRIPTION_KIND": subscription_kind,
            "FHIR_BRIDGE_SUBSCRIPTION_PAYLOAD": payload,
            "FHIR_BRIDGE_HEARTBEAT_PERIOD_SECONDS": "5",
            "FHIR_BRIDGE_NOTIFICATION_SECRET": NOTIFICATION_SECRET,
            "FHIR_BRIDGE_EMAIL_PROVIDER": "smtp",
            "FHIR_BRIDGE_SMTP_HOST": "127.0.0.1",
            "FHIR_BRIDGE_SMTP_PORT": str(smtp.port),
            "FHIR_BRIDGE_SMTP_SECURITY": "none",
            "FHIR_BRIDGE_SMTP_FROM": "reminders@riverside.example.org",
            "FHIR_BRIDGE_SMS_PROVIDER": "none",
            "FHIR_BRIDGE_RULES_FILE": str(write_rules(tmp_path / "rules.yaml", offsets)),
            "FHIR_BRIDGE_DISPATCH_INTERVAL_SECONDS": "1",
            "FHIR_BRIDGE_RELAY_INTERVAL_SECONDS": "1",
            "FHIR_BRIDGE_SUBSCRIPTION_CHECK_INTERVAL_SECONDS": "2",
            "FHIR_BRIDGE_LEASE_SECONDS": "8",
            "FHIR_BRIDGE_CLOCK_SKEW_SECONDS": "2",
            **(extra_env or {}),
        }
        bridge = BridgeProcesses(env, tmp_path)
        stack.callback(bridge.stop)
        bridge.cli("migrate")
        bridge.start_api()
        created = json.loads(bridge.cli("subscriptions", "create").stdout)
        assert len(created) == 3, created
        yield Stack(ehr=ehr, smtp=smtp, bridge=bridge, database_url=database_url)


def wait_for(
    condition: Callable[[], Any], *, timeout: float, what: str, logs: Callable[[], str]
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{logs()}")
