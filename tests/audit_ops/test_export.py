"""``fhir-bridge audit export``: Bulk Data style NDJSON and a CSV without free text."""

from __future__ import annotations

import csv
import json
import stat
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from fhirclient.models.fhirelementfactory import FHIRElementFactory

from fhir_bridge.audit import events
from fhir_bridge.audit.service import record
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction
from tests.audit_ops.conftest import (
    NOW,
    PATIENT_REF,
    SPANISH_TEXT,
    run_cli,
    sent_reminder,
    written_back,
)

OBSERVER = events.Observer(base_url="https://bridge.riverside-clinic.example")


def seed(rt: Runtime) -> None:
    """Three reminders (one withheld, with a free-text reason) and two staff panel opens in
    the window; one reminder and one panel open outside it."""
    written_back(
        rt,
        sent_reminder(NOW - timedelta(days=2)),
        sent_reminder(NOW - timedelta(days=1), address="lucia.garcia@example.org", channel="email"),
        sent_reminder(
            NOW - timedelta(days=1),
            status="withheld",
            reason="sensitive",
            reason_detail="Nota: paciente pidió no recibir mensajes sobre su tratamiento",
            text=None,
            sent_at=None,
        ),
        sent_reminder(NOW - timedelta(days=40)),
    )
    with transaction(rt.sessions) as session:
        for days in (1, 2, 40):
            record(
                session,
                events.panel_opened(
                    observer=OBSERVER,
                    recorded=NOW - timedelta(days=days),
                    staff_ref="Practitioner/eM5CWtq15N0WJeuCet5bJlQ3",
                    patient_ref=PATIENT_REF,
                    client=events.PanelClient("fhir-bridge-staff"),
                ),
            )


def window(out: Path, *extra: str) -> list[str]:
    since = (NOW - timedelta(days=7)).date().isoformat()
    until = (NOW + timedelta(days=1)).date().isoformat()
    return ["audit", "export", "--since", since, "--until", until, "--out", str(out), *extra]


def test_ndjson_has_one_file_per_type_with_every_resource_in_the_window_as_strict_r4(
    bridge: Callable[..., Runtime], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = bridge()
    seed(rt)
    out = tmp_path / "export"

    assert run_cli(*window(out)) == 0

    files = sorted(p.name for p in out.iterdir())
    assert files == ["AuditEvent.ndjson", "Communication.ndjson"]
    lines = {name: (out / name).read_text(encoding="utf-8").splitlines() for name in files}
    assert (len(lines["Communication.ndjson"]), len(lines["AuditEvent.ndjson"])) == (3, 2)
    for name, rows in lines.items():
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600
        for line in rows:
            resource = json.loads(line)
            assert resource["resourceType"] == name.split(".")[0]
            FHIRElementFactory.instantiate(resource["resourceType"], resource)
    text = "\n".join(lines["Communication.ndjson"])
    assert "recordatorio" not in text and "paciente pidió" not in text
    assert "2 resources" in capsys.readouterr().out


def test_the_export_itself_is_recorded_as_an_audit_event(
    bridge: Callable[..., Runtime], tmp_path: Path
) -> None:
    rt = bridge()
    seed(rt)
    run_cli(*window(tmp_path / "export"))

    with transaction(rt.sessions) as session:
        from fhir_bridge.store.models import AuditEventRecord

        row = session.query(AuditEventRecord).filter_by(subtype_code="export").one()
        details = {d["type"]: d["valueString"] for d in row.resource["entity"][0]["detail"]}
    assert row.type_code == "110106" and row.action == "R"
    assert details["Communication.ndjson"] == "3" and details["include-text"] == "false"


def test_csv_has_one_row_per_communication_and_no_free_text_columns_by_default(
    bridge: Callable[..., Runtime], tmp_path: Path
) -> None:
    rt = bridge()
    seed(rt)
    out = tmp_path / "export"

    assert run_cli(*window(out, "--format", "csv")) == 0

    path = out / "Communication.csv"
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert len(rows) == 3 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not {"payload_text", "address", "subject_line", "reason_detail"} & set(rows[0])
    raw = path.read_text(encoding="utf-8")
    assert "recordatorio" not in raw and "lucia.garcia" not in raw and "pidió" not in raw
    assert sorted(r["status"] for r in rows) == ["completed", "completed", "not-done"]
    assert {r["rule"] for r in rows} == {"appointment-reminder"}
    assert sorted(r["status_reason"] for r in rows) == ["", "", "sensitive"]
    assert sorted(r["channel"] for r in rows) == ["email", "sms", "sms"]


def test_csv_with_include_text_adds_the_message_text_and_address(
    bridge: Callable[..., Runtime], tmp_path: Path
) -> None:
    rt = bridge()
    seed(rt)
    out = tmp_path / "export"

    assert run_cli(*window(out, "--format", "csv", "--include-text")) == 0

    rows = list(csv.DictReader((out / "Communication.csv").open(encoding="utf-8")))
    assert SPANISH_TEXT in {r["payload_text"] for r in rows}
    assert "lucia.garcia@example.org" in {r["address"] for r in rows}


def test_an_existing_export_is_never_overwritten(
    bridge: Callable[..., Runtime], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bridge()
    out = tmp_path / "export"
    assert run_cli(*window(out)) == 0

    assert run_cli(*window(out)) == 2
    assert "exists already" in capsys.readouterr().err
