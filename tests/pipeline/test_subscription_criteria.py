"""Classic Subscriptions use R4 search-URL criteria (``Appointment?``), and their secrets
can be printed for an EHR admin to type in by hand."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fhir_bridge.cli import main
from fhir_bridge.ingest.auth import is_authentic, subscription_token
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.sandbox.receiver import NotificationReceiver
from tests.conftest import NOTIFICATION_SECRET
from tests.pipeline.conftest import make_runtime
from tests.pipeline.ehr_flow import create_subscriptions
from tests.support.databases import sqlite_database

pytestmark = pytest.mark.integration

EARLIER_VERSION_ID = "0b9e5d7c-2f41-4c3a-9a55-7e1d2c3b4a59"


@pytest.fixture
def classic_runtime(
    ehr: EhrServer, receiver: NotificationReceiver, sqlite_url: str, tmp_path: Path
) -> Iterator[Runtime]:
    rt = make_runtime(
        sqlite_url,
        tmp_path,
        ehr_base_url=ehr.base_url,
        public_base_url=receiver.url.removesuffix("/notify"),
        subscription_kind="classic",
        subscription_payload="full-resource",
    )
    yield rt
    rt.ehr.close()
    rt.engine.dispose()


def _remote(ehr: EhrServer) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in ehr.search("Subscription").get("entry", [])]


def test_classic_subscriptions_ask_for_every_change_with_a_type_search_url(
    ehr: EhrServer, classic_runtime: Runtime
) -> None:
    create_subscriptions(classic_runtime)

    assert sorted(s["criteria"] for s in _remote(ehr)) == [
        "Appointment?",
        "Encounter?",
        "MedicationRequest?",
    ]


def test_a_bare_criteria_subscription_from_an_earlier_version_is_adopted_and_rewritten(
    ehr: EhrServer, classic_runtime: Runtime, tmp_path: Path
) -> None:
    endpoint = f"{classic_runtime.settings.public_base_url}/notifications/{EARLIER_VERSION_ID}"
    token = subscription_token(NOTIFICATION_SECRET, EARLIER_VERSION_ID)
    earlier = ehr.create(
        {
            "resourceType": "Subscription",
            "status": "requested",
            "reason": "fhir-bridge patient outreach: Appointment changes",
            "criteria": "Appointment",
            "channel": {
                "type": "rest-hook",
                "endpoint": endpoint,
                "payload": "application/fhir+json",
                "header": [f"Authorization: Bearer {token}"],
            },
        }
    )

    [adopted] = create_subscriptions(classic_runtime, ("Appointment",))

    assert (adopted.id, adopted.remote_id) == (EARLIER_VERSION_ID, earlier["id"])
    assert adopted.criteria == "Appointment?"
    assert [s["criteria"] for s in _remote(ehr)] == ["Appointment?"]


def test_creating_classic_subscriptions_again_changes_nothing(
    ehr: EhrServer, classic_runtime: Runtime
) -> None:
    first = create_subscriptions(classic_runtime)
    versions = {s["id"]: s["meta"]["versionId"] for s in _remote(ehr)}

    second = create_subscriptions(classic_runtime)

    assert [s.remote_id for s in first] == [s.remote_id for s in second]
    assert {s["id"]: s["meta"]["versionId"] for s in _remote(ehr)} == versions


@pytest.fixture
def cli_env(ehr: EhrServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Runtime]:
    """The CLI's own settings (environment), on a migrated database with our Subscriptions."""
    from fhir_bridge.runtime import get_runtime
    from fhir_bridge.settings import get_settings

    with sqlite_database(tmp_path) as url:
        rt = make_runtime(url, tmp_path, ehr_base_url=ehr.base_url)
        create_subscriptions(rt)
        monkeypatch.chdir(tmp_path)
        for name, value in {
            "DATABASE_URL": url,
            "DATA_DIR": str(tmp_path),
            "NOTIFICATION_SECRET": NOTIFICATION_SECRET,
            "EHR_BASE_URL": ehr.base_url,
        }.items():
            monkeypatch.setenv(f"FHIR_BRIDGE_{name}", value)
        for cached in (get_settings, get_runtime):
            getattr(cached, "cache_clear", lambda: None)()
        yield rt
        for cached in (get_settings, get_runtime):
            getattr(cached, "cache_clear", lambda: None)()
        rt.ehr.close()
        rt.engine.dispose()


def test_secrets_are_not_printed_into_a_pipe_or_file_without_force(
    cli_env: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["subscriptions", "secrets"]) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert "--force" in err


def test_secrets_print_each_subscriptions_endpoint_and_bearer_header(
    cli_env: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["subscriptions", "secrets", "--force", "--json"]) == 0

    out, err = capsys.readouterr()
    printed = {item["resource_type"]: item for item in json.loads(out)}
    assert set(printed) == {"Appointment", "MedicationRequest", "Encounter"}
    appointment = printed["Appointment"]
    subscription_id = appointment["endpoint"].rsplit("/", 1)[-1]
    assert is_authentic(
        master_secret=NOTIFICATION_SECRET,
        subscription_id=subscription_id,
        authorization=appointment["header"].removeprefix("Authorization: "),
        signature=None,
        body=b"{}",
    )
    assert "secrets" in err


def test_the_printed_x_signature_key_signs_notifications_we_accept(
    cli_env: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["subscriptions", "secrets", "--force", "--json"])
    appointment = next(
        item
        for item in json.loads(capsys.readouterr().out)
        if item["resource_type"] == "Appointment"
    )
    body = b'{"resourceType":"Appointment","id":"eWLhfjXHp4RUczv2VLqhCGQ3","status":"booked"}'
    medplum_signature = hmac.new(
        appointment["medplum_extension"]["valueString"].encode(), body, hashlib.sha256
    ).hexdigest()

    assert is_authentic(
        master_secret=NOTIFICATION_SECRET,
        subscription_id=appointment["endpoint"].rsplit("/", 1)[-1],
        authorization=None,
        signature=medplum_signature,
        body=body,
    )


def test_secrets_as_text_name_the_medplum_extension(
    cli_env: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["subscriptions", "secrets", "--force"])

    out = capsys.readouterr().out
    assert "Authorization: Bearer " in out
    assert "https://www.medplum.com/fhir/StructureDefinition/subscription-secret" in out
