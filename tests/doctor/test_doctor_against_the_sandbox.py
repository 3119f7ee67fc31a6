"""``fhir-bridge doctor`` as clinic IT runs it: a real process against the development EHR.

Acceptance (issue #12): all ✓ against the sandbox with our Subscriptions; an EHR without
Subscriptions or without our topics, an unreachable EHR and an unmigrated database each give
a ✗ line that names the fix, and exit status 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fhir_bridge.sandbox.process import EhrServer
from tests.doctor.clinic import (
    clinic_env,
    run_doctor,
    run_doctor_json,
    wait_until_subscriptions_active,
)
from tests.support.bridge import BridgeProcesses, free_port

pytestmark = pytest.mark.integration

ALL_CHECKS = [
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
]


@pytest.fixture
def sandbox() -> Iterator[EhrServer]:
    with EhrServer() as ehr:
        yield ehr


@pytest.fixture
def connected(tmp_path: Path, sandbox: EhrServer) -> Iterator[BridgeProcesses]:
    """Migrated, API running, Subscriptions created and activated by the EHR's handshake."""
    bridge = BridgeProcesses(clinic_env(tmp_path, sandbox), tmp_path)
    try:
        bridge.cli("migrate")
        bridge.start_api()
        bridge.cli("subscriptions", "create")
        wait_until_subscriptions_active(sandbox, 3)
        yield bridge
    finally:
        bridge.stop()


def test_every_check_passes_against_the_sandbox_with_our_subscriptions(
    connected: BridgeProcesses,
) -> None:
    report = run_doctor(connected)

    assert list(report.lines) == ALL_CHECKS, report.stdout
    assert {name: line.mark for name, line in report.lines.items()} == dict.fromkeys(
        ALL_CHECKS, "✓"
    ), report.stdout
    assert report.exit_code == 0
    assert "3 active on the EHR" in report["subscriptions"].detail


def test_json_output_lists_each_check_with_status_detail_and_fix(
    connected: BridgeProcesses,
) -> None:
    exit_code, body = run_doctor_json(connected)

    assert exit_code == 0
    assert body["ok"] is True
    assert [check["name"] for check in body["checks"]] == ALL_CHECKS
    assert {check["status"] for check in body["checks"]} == {"ok"}
    assert all(set(check) == {"name", "status", "detail", "fix"} for check in body["checks"])


def test_a_subscription_the_ehr_put_in_error_fails_although_we_think_it_active(
    connected: BridgeProcesses, sandbox: EhrServer
) -> None:
    remote = sandbox.search("Subscription", criteria=[])["entry"][0]["resource"]
    sandbox.force_error(remote["id"])

    report = run_doctor(connected)

    assert report["subscriptions"].mark == "✗"
    assert f"Subscription/{remote['id']} is error" in report["subscriptions"].detail
    assert "fhir-bridge subscriptions status" in report["subscriptions"].fix
    assert report.exit_code == 1


def test_an_ehr_without_subscriptions_fails_with_the_polling_fix(tmp_path: Path) -> None:
    with EhrServer(supports_subscriptions=False) as ehr:
        bridge = BridgeProcesses(clinic_env(tmp_path, ehr), tmp_path)
        bridge.cli("migrate")
        report = run_doctor(bridge)

    line = report["capability.subscriptions"]
    assert line.mark == "✗"
    assert "does not list Subscription" in line.detail
    assert "FHIR_BRIDGE_INGEST_MODE=polling" in line.fix
    assert report["topics"].mark == "-"
    assert report["subscriptions"].mark == "-"
    assert report["ehr"].mark == "✓"
    assert report.exit_code == 1


def test_topics_missing_on_the_ehr_are_named_with_the_setting_to_fix(
    tmp_path: Path, sandbox: EhrServer
) -> None:
    env = {
        **clinic_env(tmp_path, sandbox),
        "FHIR_BRIDGE_SUBSCRIPTION_TOPIC_BASE": "https://ehr.lakeside-fp.org/fhir/SubscriptionTopic",
    }
    bridge = BridgeProcesses(env, tmp_path)
    bridge.cli("migrate")

    report = run_doctor(bridge)

    line = report["topics"]
    assert line.mark == "✗"
    assert "https://ehr.lakeside-fp.org/fhir/SubscriptionTopic/appointment-change" in line.detail
    assert "FHIR_BRIDGE_SUBSCRIPTION_TOPIC_BASE" in line.fix
    assert "SubscriptionTopics on the EHR" in line.fix
    assert report.exit_code == 1


def test_classic_subscriptions_on_the_sandbox_skip_the_topic_checks(
    tmp_path: Path, sandbox: EhrServer
) -> None:
    env = {**clinic_env(tmp_path, sandbox), "FHIR_BRIDGE_SUBSCRIPTION_KIND": "classic"}
    bridge = BridgeProcesses(env, tmp_path)
    bridge.cli("migrate")

    report = run_doctor(bridge)

    assert report["capability.subscriptions"].mark == "✓"
    assert "classic Subscriptions supported" in report["capability.subscriptions"].detail
    assert report["topics"].mark == "-"
    assert report["capability.operations"].mark == "-"


def test_an_unreachable_ehr_names_the_url_and_the_setting_without_a_traceback(
    tmp_path: Path,
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/fhir"
    env = {
        "FHIR_BRIDGE_DATA_DIR": str(tmp_path / "var"),
        "FHIR_BRIDGE_EHR_BASE_URL": nobody,
        "FHIR_BRIDGE_EHR_STATIC_TOKEN": "lakeside-dev-token",
    }
    bridge = BridgeProcesses(env, tmp_path)
    bridge.cli("migrate")

    report = run_doctor(bridge)

    line = report["ehr"]
    assert line.mark == "✗"
    assert f"{nobody}/metadata" in line.detail
    assert "FHIR_BRIDGE_EHR_BASE_URL" in line.fix
    assert report["ehr.auth"].mark == "-"
    assert "Traceback" not in report.stdout + report.stderr
    assert report.exit_code == 1


def test_an_unmigrated_database_says_run_migrate_and_creates_no_file(
    tmp_path: Path, sandbox: EhrServer
) -> None:
    bridge = BridgeProcesses(clinic_env(tmp_path, sandbox), tmp_path)

    report = run_doctor(bridge)

    line = report["database"]
    assert line.mark == "✗"
    assert "run `fhir-bridge migrate`" in line.fix
    assert report["subscriptions"].mark == "-"
    assert not (tmp_path / "var" / "fhir-bridge.db").exists()
    assert report.exit_code == 1


def test_a_key_the_ehr_never_registered_names_client_id_key_and_jwks(
    tmp_path: Path, sandbox: EhrServer
) -> None:
    bridge = BridgeProcesses(clinic_env(tmp_path, sandbox, register_key=False), tmp_path)
    bridge.cli("migrate")

    report = run_doctor(bridge)

    line = report["ehr.auth"]
    assert line.mark == "✗"
    assert "refused" in line.detail
    for named in ("FHIR_BRIDGE_EHR_CLIENT_ID", "FHIR_BRIDGE_EHR_PRIVATE_KEY_FILE", "JWKS"):
        assert named in line.fix
    assert report.exit_code == 1


def test_a_wrong_static_token_names_the_token_setting(tmp_path: Path, sandbox: EhrServer) -> None:
    env = {
        "FHIR_BRIDGE_DATA_DIR": str(tmp_path / "var"),
        "FHIR_BRIDGE_EHR_BASE_URL": sandbox.base_url,
        "FHIR_BRIDGE_EHR_STATIC_TOKEN": "not-the-sandbox-token",
    }
    bridge = BridgeProcesses(env, tmp_path)
    bridge.cli("migrate")

    report = run_doctor(bridge)

    line = report["ehr.auth"]
    assert line.mark == "✗"
    assert "HTTP 401" in line.detail
    assert "FHIR_BRIDGE_EHR_STATIC_TOKEN" in line.fix
    assert "not-the-sandbox-token" not in report.stdout
