"""A clinic's own rules file: ``rules init`` makes one to edit; the example clinic is flagged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fhir_bridge.cli import main, warn_about_example_rules
from fhir_bridge.settings import load_settings
from rules.config import example_values_in_use, load_rules_config, parse_rules_config

OWN_CLINIC = """
version: 1
organization:
  clinic_name: "Lakeside Clinic"
  clinic_phone: "(608) 555-2210"
  link: "https://mychart.lakeside-fp.org"
  timezone: "America/Chicago"
"""


def test_rules_init_writes_a_valid_commented_copy_of_the_shipped_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["rules", "init"]) == 0
    text = (tmp_path / "rules.yaml").read_text()
    assert text.startswith("# Your clinic's outreach rules")
    assert "FHIR_BRIDGE_RULES_FILE=rules.yaml" in text
    assert load_rules_config(tmp_path / "rules.yaml").organization.clinic_name


def test_rules_init_never_overwrites_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "clinic.yaml"
    target.write_text(OWN_CLINIC)
    assert main(["rules", "init", str(target)]) != 0
    assert target.read_text() == OWN_CLINIC
    assert "already exists" in capsys.readouterr().err


def test_the_shipped_rules_are_recognised_as_the_example() -> None:
    assert example_values_in_use(load_rules_config(None)) == [
        "organization.clinic_name",
        "organization.clinic_phone",
        "organization.link",
    ]


def test_a_clinics_own_rules_are_not_the_example() -> None:
    assert example_values_in_use(parse_rules_config(OWN_CLINIC)) == []


def test_the_example_phone_is_recognised_however_it_is_written() -> None:
    text = OWN_CLINIC.replace('"(608) 555-2210"', '"+1 555 010 0100"')
    assert example_values_in_use(parse_rules_config(text)) == ["organization.clinic_phone"]


def test_starting_on_the_example_rules_logs_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    warn_about_example_rules(load_settings(data_dir=tmp_path))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "rules init" in warnings[0].getMessage()


def test_starting_on_a_clinics_own_rules_logs_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    own = tmp_path / "clinic.yaml"
    own.write_text(OWN_CLINIC)
    caplog.set_level(logging.WARNING)
    warn_about_example_rules(load_settings(data_dir=tmp_path, rules_file=own))
    assert caplog.records == []
