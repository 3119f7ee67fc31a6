"""A clinic's fhir-bridge set up in a temporary folder against the development EHR (sandbox).

``fhir-bridge doctor`` runs as a real process with only ``FHIR_BRIDGE_*`` variables, the way
clinic IT runs it; its text report is parsed back into (mark, detail, fix) per check.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fhir_bridge.fhir.keys import generate_private_key, load_signing_key, public_jwks
from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.settings import Settings
from tests.support.bridge import BridgeProcesses

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_RULES = REPO_ROOT / "rules" / "default_rules.yaml"
CLIENT_ID = "lakeside-fhir-bridge"


def write_clinic_rules(path: Path) -> Path:
    """The shipped rules made the clinic's own: its name, phone and portal."""
    rules = yaml.safe_load(SHIPPED_RULES.read_text())
    rules["organization"].update(
        clinic_name="Lakeside Clinic",
        clinic_phone="(617) 555-0142",
        link="https://portal.lakeside-fp.org/visits",
    )
    path.write_text(yaml.safe_dump(rules, sort_keys=False, allow_unicode=True))
    return path


def clinic_env(tmp_path: Path, ehr: EhrServer, *, register_key: bool = True) -> dict[str, str]:
    """Settings for SMART Backend Services against the sandbox, everything else embedded."""
    pem = generate_private_key("ES384")
    if register_key:
        ehr.register_client(
            CLIENT_ID, public_jwks(load_signing_key(pem)), scope=Settings().ehr_scope
        )
    return {
        "FHIR_BRIDGE_DATA_DIR": str(tmp_path / "var"),
        "FHIR_BRIDGE_EHR_BASE_URL": ehr.base_url,
        "FHIR_BRIDGE_EHR_AUTH": "smart-backend",
        "FHIR_BRIDGE_EHR_CLIENT_ID": CLIENT_ID,
        "FHIR_BRIDGE_EHR_PRIVATE_KEY": pem,
        "FHIR_BRIDGE_NOTIFICATION_SECRET": "lakeside-41c7-Wq7ZkP2xR9mVt4LsN8cYb3HjG6dFa5Ue",
        "FHIR_BRIDGE_RULES_FILE": str(write_clinic_rules(tmp_path / "clinic-rules.yaml")),
    }


@dataclass(frozen=True)
class Line:
    mark: str
    detail: str
    fix: str


@dataclass(frozen=True)
class Report:
    exit_code: int
    stdout: str
    stderr: str
    lines: dict[str, Line]

    def __getitem__(self, name: str) -> Line:
        return self.lines[name]


def run_doctor(bridge: BridgeProcesses, *args: str) -> Report:
    result = bridge.cli("doctor", "--timeout", "3", *args, check=False)
    return Report(result.returncode, result.stdout, result.stderr, parse_report(result.stdout))


def run_doctor_json(bridge: BridgeProcesses) -> tuple[int, dict[str, Any]]:
    result = bridge.cli("doctor", "--timeout", "3", "--json", check=False)
    return result.returncode, json.loads(result.stdout)


def parse_report(text: str) -> dict[str, Line]:
    """``✓ name  detail`` lines, each optionally followed by an indented ``fix: …`` line."""
    lines: dict[str, Line] = {}
    last: str | None = None
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("fix: ") and last is not None:
            line = lines[last]
            lines[last] = Line(line.mark, line.detail, stripped.removeprefix("fix: "))
        elif raw[:1] in ("✓", "✗", "!", "-") and len(raw.split(None, 2)) == 3:
            mark, name, detail = raw.split(None, 2)
            lines[name] = Line(mark, detail, "")
            last = name
    return lines


def wait_until_subscriptions_active(ehr: EhrServer, count: int, timeout: float = 30) -> None:
    """The sandbox activates topic Subscriptions after a handshake to our webhook."""
    deadline = time.monotonic() + timeout
    statuses: list[str] = []
    while time.monotonic() < deadline:
        bundle = ehr.search("Subscription")
        statuses = [entry["resource"]["status"] for entry in bundle.get("entry", [])]
        if len(statuses) == count and set(statuses) == {"active"}:
            return
        time.sleep(0.2)
    raise AssertionError(f"Subscriptions not active: {statuses}")
