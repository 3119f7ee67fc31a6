"""Checks that need no EHR: settings, database revision, rules file, exit status."""

from __future__ import annotations

from pathlib import Path

import yaml
from alembic import command

from fhir_bridge.doctor import (
    CheckResult,
    DoctorContext,
    check_batch,
    check_database,
    check_rules,
    exit_status,
    run_checks,
)
from fhir_bridge.settings import load_settings
from fhir_bridge.store.migrate import alembic_config
from tests.doctor.clinic import SHIPPED_RULES, write_clinic_rules


def test_invalid_settings_fail_naming_the_variable_and_skip_everything_else() -> None:
    results = run_checks(lambda: load_settings(ehr_auth="smart-backend"))

    assert results[0].name == "settings"
    assert results[0].status == "fail"
    assert "FHIR_BRIDGE_EHR_CLIENT_ID" in results[0].detail
    assert {result.status for result in results[1:]} == {"skip"}
    assert exit_status(results) == 1


def test_a_database_one_migration_behind_says_run_migrate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fhir-bridge.db'}"
    command.upgrade(alembic_config(url), "0001")
    settings = load_settings(database_url=url)

    result = check_database(DoctorContext(settings=settings))

    assert result.status == "fail"
    assert "newest is" in result.detail
    assert "fhir-bridge migrate" in result.fix


def test_a_postgres_password_never_appears_in_the_database_line() -> None:
    url = "postgresql://bridge:S3cret-pw@127.0.0.1:1/fhir_bridge"

    result = check_database(DoctorContext(settings=load_settings(database_url=url), timeout=2))

    assert result.status == "fail"
    assert "S3cret-pw" not in result.detail + result.fix
    assert "FHIR_BRIDGE_DATABASE_URL" in result.fix


def test_the_shipped_example_rules_fail_with_the_rules_init_fix(tmp_path: Path) -> None:
    result = check_rules(DoctorContext(settings=load_settings(data_dir=tmp_path)))

    assert result.status == "fail"
    assert "FHIR_BRIDGE_RULES_FILE is not set" in result.detail
    assert "fhir-bridge rules init" in result.fix


def test_a_copy_still_naming_the_example_clinic_fails_naming_what_to_edit(tmp_path: Path) -> None:
    copy = tmp_path / "rules.yaml"
    copy.write_text(SHIPPED_RULES.read_text())

    result = check_rules(DoctorContext(settings=load_settings(rules_file=copy)))

    assert result.status == "fail"
    assert "organization.clinic_name" in result.detail
    assert "organization.clinic_phone" in result.detail


def test_an_invalid_rules_file_fails_with_its_line_number(tmp_path: Path) -> None:
    broken = write_clinic_rules(tmp_path / "rules.yaml")
    rules = yaml.safe_load(broken.read_text())
    rules["quiet_hours"] = {"start": "21:00", "end": "08:00"}
    broken.write_text(yaml.safe_dump(rules, sort_keys=False))

    result = check_rules(DoctorContext(settings=load_settings(rules_file=broken)))

    assert result.status == "fail"
    assert f"{broken}:" in result.detail
    assert "fhir-bridge rules check" in result.fix


def test_the_clinics_own_rules_pass(tmp_path: Path) -> None:
    own = write_clinic_rules(tmp_path / "rules.yaml")

    result = check_rules(DoctorContext(settings=load_settings(rules_file=own)))

    assert result.status == "ok"
    assert "Lakeside Clinic" in result.detail


def test_warnings_and_skips_do_not_fail_the_exit_status() -> None:
    results = [
        CheckResult("settings", "ok", "valid"),
        CheckResult("capability.operations", "warn", "not advertised: $events", "nothing to set"),
        CheckResult("topics", "skip", "classic Subscriptions"),
    ]

    assert exit_status(results) == 0
    assert exit_status([*results, CheckResult("rules", "fail", "x", "y")]) == 1


def test_an_ehr_without_batch_is_a_warning_that_names_the_cost() -> None:
    ctx = DoctorContext(settings=load_settings())
    ctx.capability = {
        "resourceType": "CapabilityStatement",
        "rest": [{"mode": "server", "interaction": [{"code": "transaction"}]}],
    }

    result = check_batch(ctx)

    assert (result.status, result.detail) == ("warn", "batch not declared")
    assert "side by side" in result.fix


def test_an_ehr_declaring_batch_passes() -> None:
    ctx = DoctorContext(settings=load_settings())
    ctx.capability = {
        "resourceType": "CapabilityStatement",
        "rest": [{"interaction": [{"code": "batch"}]}],
    }

    assert check_batch(ctx).status == "ok"
