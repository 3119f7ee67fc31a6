"""``fhir-bridge preview``: what would be sent, when, where and why, without sending."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from rules.cli import register
from tests.rules.factories import FIXTURES, appointment

BUNDLE = FIXTURES / "bundle-maria.json"


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fhir-bridge")
    register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_json_preview_lists_each_message_with_text_time_channel_and_trace(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _run(["preview", str(BUNDLE), "--json", "--now", "2026-11-20T18:00:00Z"]) == 0

    output = json.loads(capsys.readouterr().out)
    first = output["messages"][0]
    assert first["key"] == "discharge-checkin|Encounter/eGmO0h.1.UQQrExl4bfM7OQ3|P1D"
    assert (first["status"], first["channel"], first["address"]) == ("planned", "sms", "***0142")
    assert first["send_at_local"] == "2026-11-21T10:00:00-05:00"
    assert first["text"].endswith("Responda BAJA para no recibir SMS.")
    assert first["trace"]["zone_source"] == "patient-address"
    statuses = {m["key"]: m["status"] for m in output["messages"]}
    assert statuses["appointment-reminder|Appointment/e3Yh7qKdUUtrpXNb1gB3Nig3|PT2H"] == "withheld"


def test_text_preview_explains_sends_and_withheld_messages(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _run(["preview", str(BUNDLE), "--now", "2026-11-20T18:00:00Z"]) == 0

    text = capsys.readouterr().out
    assert "SEND 2026-11-21T10:00:00-05:00 via sms to ***0142" in text
    assert (
        "WITHHELD appointment-reminder|Appointment/e3Yh7qKdUUtrpXNb1gB3Nig3|PT2H: cap-reached"
        in text
    )


def test_single_resource_without_patient_is_previewed_as_withheld(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    single = tmp_path / "appointment.json"
    single.write_text(json.dumps(appointment()), encoding="utf-8")

    assert _run(["preview", str(single), "--json", "--now", "2026-11-23T12:00:00Z"]) == 0

    reasons = {m["reason"] for m in json.loads(capsys.readouterr().out)["messages"]}
    assert reasons == {"unknown-patient"}


def test_preview_with_custom_rules_file_uses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(
        'organization:\n  clinic_name: "Eastside Clinic"\n  clinic_phone: "(555) 010-0300"\n'
        "discharge_checkins:\n  enabled: false\nrefill_notices:\n  enabled: false\n",
        encoding="utf-8",
    )

    argv = ["preview", str(BUNDLE), "--json", "--now", "2026-11-20T18:00:00Z", "--rules"]
    assert _run([*argv, str(rules_file)]) == 0

    planned = [
        m for m in json.loads(capsys.readouterr().out)["messages"] if m["status"] == "planned"
    ]
    assert {m["purpose"] for m in planned} == {"appointment-reminder"}
    assert "Eastside Clinic" in planned[0]["text"]


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        pytest.param(["--now", "2026-11-20T18:00:00"], 2, id="naive-now"),
        pytest.param(["--rules", "/nonexistent/rules.yaml"], 1, id="missing-rules"),
    ],
)
def test_preview_rejects_bad_options_with_an_exit_code(argv: list[str], code: int) -> None:
    assert _run(["preview", str(BUNDLE), *argv]) == code


def test_preview_of_a_file_that_is_not_fhir_exits_2(tmp_path: Path) -> None:
    not_fhir = tmp_path / "x.json"
    not_fhir.write_text('{"hello": "world"}', encoding="utf-8")

    assert _run(["preview", str(not_fhir)]) == 2
