"""The rules file: validation with line numbers, per-location overrides, the check CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from rules.cli import register
from rules.config import RulesConfigError, load_rules_config, parse_rules_config
from tests.rules.factories import DEFAULT_RULES_PATH

VALID_HEAD = 'organization:\n  clinic_name: "Riverside Health"\n  clinic_phone: "(555) 010-0100"\n'


def _problems(text: str) -> list[str]:
    with pytest.raises(RulesConfigError) as caught:
        parse_rules_config(text, name="clinic.yaml")
    return caught.value.problems


def test_shipped_rules_load_with_documented_defaults() -> None:
    config = load_rules_config(None)

    assert config.appointment_reminders.offsets == ["P3D", "P1D", "PT2H"]
    assert (config.caps.per_day, config.caps.per_week) == (1, 3)
    assert str(config.quiet_hours.start) == "08:00:00"


def test_minimal_file_gets_defaults_for_everything_else() -> None:
    config = parse_rules_config(VALID_HEAD)

    assert config.discharge_checkins.offsets == ["P1D", "P3D"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            "appointment_reminders:\n  offsets: [P3D, P1M]\n",
            "clinic.yaml:6: appointment_reminders.offsets.1: Value error, unsupported duration",
            id="bad-offset-points-at-its-line",
        ),
        pytest.param(
            "caps:\n  per_day: 1\n  per_wek: 3\n",
            "clinic.yaml:7: caps.per_wek: Extra inputs are not permitted",
            id="typo-in-key",
        ),
        pytest.param(
            'locations:\n  "Location/12":\n    timezone: "America/Bostn"\n',
            "clinic.yaml:7: locations.Location/12.timezone: Value error, unknown IANA time zone",
            id="bad-time-zone-in-location-override",
        ),
        pytest.param(
            'quiet_hours:\n  start: "21:00"\n  end: "08:00"\n',
            "clinic.yaml:5: quiet_hours: Value error, quiet_hours.start must be before",
            id="inverted-quiet-hours",
        ),
    ],
)
def test_invalid_rules_are_reported_with_file_line_and_field(body: str, expected: str) -> None:
    problems = _problems(VALID_HEAD + "\n" + body)

    assert problems[0].startswith(expected), problems


def test_missing_organization_is_reported() -> None:
    assert _problems("caps:\n  per_day: 2\n")[0].startswith(
        "clinic.yaml:1: organization: Field required"
    )


def test_yaml_syntax_error_is_reported_with_its_line() -> None:
    assert _problems(VALID_HEAD + "caps: [unclosed\n")[0].startswith("clinic.yaml:5")


def test_consent_and_privacy_sections_are_validated_too() -> None:
    problems = _problems(VALID_HEAD + "consent:\n  channel_order: [sms, pigeon]\n")

    assert problems[0].startswith("clinic.yaml:4: consent")


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fhir-bridge")
    register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_rules_check_accepts_the_shipped_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["rules", "check", str(DEFAULT_RULES_PATH)]) == 0
    assert capsys.readouterr().out.endswith(": OK\n")


def test_rules_check_rejects_a_bad_file_and_prints_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(VALID_HEAD + "caps:\n  per_day: -1\n", encoding="utf-8")

    assert _run(["rules", "check", str(rules_file)]) == 1
    assert f"{rules_file}:5: caps.per_day" in capsys.readouterr().err
