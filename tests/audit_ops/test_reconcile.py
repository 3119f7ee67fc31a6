"""``fhir-bridge audit reconcile``: our Communications against the development EHR's."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from fhir_bridge.audit.reconcile import differences
from fhir_bridge.doctor import DoctorContext, check_reconciliation, ok
from fhir_bridge.fhir_api.repository import communication_history, communication_id
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox import EhrServer
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import AuditEventRecord
from tests.audit_ops.conftest import (
    IDENTIFIER_SYSTEM,
    NOW,
    PATIENT_REF,
    SPANISH_TEXT,
    ehr_copies,
    ehr_delete,
    run_cli,
    sent_reminder,
    written_back,
)


def reconcile_json(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    code = run_cli("audit", "reconcile", "--json", *extra)
    return code, json.loads(capsys.readouterr().out)


def test_a_communication_deleted_in_the_ehr_is_written_again_once(
    bridge: Callable[..., Runtime], ehr: EhrServer, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = bridge()
    kept, lost = written_back(rt, sent_reminder(NOW - timedelta(hours=3)), sent_reminder(NOW))
    ehr_delete(ehr, ehr_copies(ehr, lost)[0]["id"])

    code, report = reconcile_json(capsys)

    assert code == 0
    assert (report["held"], report["matched"], report["missing"], report["rewritten"]) == (
        2,
        1,
        1,
        1,
    )
    assert report["findings"] == [
        {
            "kind": "missing",
            "identifier": f"{IDENTIFIER_SYSTEM}|{lost}",
            "resource_id": communication_id(IDENTIFIER_SYSTEM, lost),
            "ehr_id": report["findings"][0]["ehr_id"],
            "fields": [],
            "outcome": "rewritten",
        }
    ]
    again = ehr_copies(ehr, lost)
    assert len(again) == 1 and again[0]["payload"] == [{"contentString": SPANISH_TEXT}]
    code, second = reconcile_json(capsys)
    assert (code, second["missing"], second["matched"]) == (0, 0, 2)
    assert len(ehr_copies(ehr, lost)) == 1 and len(ehr_copies(ehr, kept)) == 1


def test_a_communication_changed_in_the_ehr_is_reported_by_field_and_the_command_fails(
    bridge: Callable[..., Runtime], ehr: EhrServer, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = bridge()
    (changed,) = written_back(rt, sent_reminder(NOW))
    theirs = ehr_copies(ehr, changed)[0]
    ehr.update({**theirs, "status": "entered-in-error", "text": {"status": "generated"}})

    code = run_cli("audit", "reconcile")
    table = capsys.readouterr().out

    assert code == 3
    assert "different" in table and f"{IDENTIFIER_SYSTEM}|{changed}" in table
    assert "status" in table.split(changed, 1)[1]
    assert "Clínica" not in table  # names of fields, never their values
    assert ehr_copies(ehr, changed)[0]["status"] == "entered-in-error"  # reported, not fixed


def test_an_ehr_communication_with_our_identifier_that_we_do_not_hold_is_reported(
    bridge: Callable[..., Runtime], ehr: EhrServer, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = bridge()
    written_back(rt, sent_reminder(NOW))
    stranger = str(uuid.uuid4())
    created = ehr.create(
        {
            "resourceType": "Communication",
            "identifier": [{"system": IDENTIFIER_SYSTEM, "value": stranger}],
            "status": "completed",
            "subject": {"reference": PATIENT_REF},
        }
    )

    code, report = reconcile_json(capsys)

    assert code == 3 and report["status"] == "differences"
    assert [(f["kind"], f["identifier"], f["ehr_id"]) for f in report["findings"]] == [
        ("unknown", f"{IDENTIFIER_SYSTEM}|{stranger}", created["id"])
    ]


def test_an_ehr_refusing_communication_writes_keeps_versions_here_and_reconcile_says_so(
    bridge: Callable[..., Runtime], ehr: EhrServer, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = bridge(ehr_writes_communication="false")
    (message,) = written_back(rt, sent_reminder(NOW))

    code, report = reconcile_json(capsys)

    assert ehr_copies(ehr, message) == []
    with transaction(rt.sessions) as session:
        versions = communication_history(session, communication_id(IDENTIFIER_SYSTEM, message))
        assert [v.ehr_id for v in versions] == [None]
    assert code == 0
    assert (report["status"], report["held"], report["findings"]) == ("system-of-record", 1, [])


def test_each_run_is_audited_and_doctor_shows_the_last_one(
    bridge: Callable[..., Runtime], ehr: EhrServer, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = bridge()
    (changed,) = written_back(rt, sent_reminder(NOW))
    ehr.update({**ehr_copies(ehr, changed)[0], "sent": "2026-01-05T09:00:00Z"})
    reconcile_json(capsys)
    ctx = DoctorContext(settings=rt.settings)
    ctx.results["database"] = ok("database", "reachable")

    result = check_reconciliation(ctx)

    assert result.status == "warn"
    assert "1 held, 0 matching, 0 missing (0 written again), 1 different" in result.detail
    with transaction(rt.sessions) as session:
        audit = session.query(AuditEventRecord).filter_by(subtype_code="reconcile").one()
        details = {d["type"]: d["valueString"] for d in audit.resource["entity"][0]["detail"]}
    assert details["different"] == "1" and audit.outcome == "4"


def test_fields_that_only_the_server_sets_or_formats_are_not_differences() -> None:
    ours = {
        "status": "completed",
        "sent": "2026-11-30T14:05:00+00:00",
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": "m-1"}],
        "payload": [{"contentString": "Hola"}],
    }
    theirs = {
        **ours,
        "id": "8812",
        "meta": {"versionId": "3"},
        "text": {"status": "generated", "div": "<div/>"},
        "sent": "2026-11-30T09:05:00-05:00",
        "identifier": [*ours["identifier"], {"system": "urn:oid:1.2.840", "value": "77"}],
        "payload": [{"contentString": "Hola, otra vez"}],
    }

    assert differences(ours, theirs, body_purged=True) == []
    assert differences(ours, theirs, body_purged=False) == ["payload"]


def test_the_daily_job_reconciles_and_stores_its_summary(
    bridge: Callable[..., Runtime], ehr: EhrServer
) -> None:
    from fhir_bridge.audit.cli import reconcile_job
    from fhir_bridge.store.models import ReconciliationRun

    rt = bridge()
    written_back(rt, sent_reminder(NOW))

    assert reconcile_job(rt) == "ok"

    with transaction(rt.sessions) as session:
        run = session.query(ReconciliationRun).one()
        assert (run.trigger, run.status, run.held, run.matched) == ("schedule", "ok", 1, 1)
