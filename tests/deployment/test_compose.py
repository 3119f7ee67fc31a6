"""docker-compose.yml stays in step with the code: no Docker engine runs here, so we check
that it parses, that every command is a real ``fhir-bridge`` command, and that every
FHIR_BRIDGE_* variable it sets is a setting the service reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fhir_bridge.cli import _parser
from fhir_bridge.settings import ENV_PREFIX, Settings

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
ROLES = ("migrate", "api", "worker", "scheduler")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_defines_api_worker_scheduler_postgres_and_redis(compose: dict[str, Any]) -> None:
    assert {*ROLES, "postgres", "redis"} <= set(compose["services"])


@pytest.mark.parametrize("role", ROLES)
def test_each_role_runs_a_real_cli_command(compose: dict[str, Any], role: str) -> None:
    command = compose["services"][role]["command"]
    assert command[0] == "fhir-bridge"
    args = _parser().parse_args(command[1:])
    assert hasattr(args, "func")


@pytest.mark.parametrize("role", ROLES)
def test_every_environment_variable_is_a_known_setting(compose: dict[str, Any], role: str) -> None:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    variables = set(compose["services"][role]["environment"])
    unknown = {v for v in variables if v.startswith(ENV_PREFIX)} - known
    assert unknown == set()


def test_secrets_are_not_written_into_the_file(compose: dict[str, Any]) -> None:
    environment = compose["services"]["api"]["environment"]
    for name in ("FHIR_BRIDGE_NOTIFICATION_SECRET", "FHIR_BRIDGE_DATABASE_URL"):
        assert "${" in environment[name]


def test_dockerfile_copies_every_package() -> None:
    dockerfile = (COMPOSE.parent / "Dockerfile").read_text()
    for package in ("fhir_bridge", "rules", "channels", "smart_app"):
        assert f"COPY {package} " in dockerfile
