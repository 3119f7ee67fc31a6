"""The README is the contract with a new user: its commands and settings must be real."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhir_bridge.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented_in_the_readme(name: str) -> None:
    assert f"`{ENV_PREFIX}{name.upper()}`" in README, "add a row to the configuration table"


def test_readme_gives_the_run_and_test_commands() -> None:
    assert "./dev run" in README and "./dev test" in README


def test_ci_runs_the_readmes_test_command() -> None:
    assert "./dev test" in (ROOT / ".ci" / "run").read_text()
