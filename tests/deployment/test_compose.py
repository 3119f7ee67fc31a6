"""docker-compose.yml, the Dockerfile and .env.example stay a deployment that works.

No Docker engine runs here, so these tests read the files and check the properties a
working deployment depends on: every role is a real ``fhir-bridge`` command; the app roles
start only after PostgreSQL and Redis are healthy and ``migrate`` has finished; every
long-running service has a health check; Redis persists; the non-root user can write its
data volume; ``.env.example`` lists every variable a deployment needs; no secret is written
into any of these files."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from fhir_bridge.cli import _parser
from fhir_bridge.settings import ENV_PREFIX, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()
ENV_EXAMPLE = (ROOT / ".env.example").read_text()

ROLES = ("migrate", "api", "worker", "scheduler")
LONG_RUNNING_ROLES = ("api", "worker", "scheduler")
LONG_RUNNING = (*LONG_RUNNING_ROLES, "postgres", "redis")

#: What a production deployment cannot run without, besides what docker-compose.yml itself
#: marks required with ``${VARIABLE:?message}``: the clinic's own rules file (the shipped
#: one speaks for a fictional clinic).
REQUIRED_FOR_PRODUCTION = {
    "POSTGRES_PASSWORD",
    "FHIR_BRIDGE_PUBLIC_BASE_URL",
    "FHIR_BRIDGE_NOTIFICATION_SECRET",
    "FHIR_BRIDGE_EHR_BASE_URL",
    "FHIR_BRIDGE_EHR_CLIENT_ID",
    "FHIR_BRIDGE_RULES_FILE",
}
#: Settings a clinic switches on later; .env.example must at least list them (commented).
LISTED_FOR_PRODUCTION = {
    "FHIR_BRIDGE_SMS_PROVIDER",
    "FHIR_BRIDGE_TWILIO_ACCOUNT_SID",
    "FHIR_BRIDGE_TWILIO_AUTH_TOKEN",
    "FHIR_BRIDGE_TWILIO_FROM_NUMBER",
    "FHIR_BRIDGE_TWILIO_MESSAGING_SERVICE_SID",
    "FHIR_BRIDGE_EMAIL_PROVIDER",
    "FHIR_BRIDGE_SMTP_HOST",
    "FHIR_BRIDGE_SMTP_PORT",
    "FHIR_BRIDGE_SMTP_SECURITY",
    "FHIR_BRIDGE_SMTP_USERNAME",
    "FHIR_BRIDGE_SMTP_PASSWORD",
    "FHIR_BRIDGE_SMTP_FROM",
    "FHIR_BRIDGE_CLINIC_REFERENCE",
    "FHIR_BRIDGE_INGEST_MODE",
    "FHIR_BRIDGE_SUBSCRIPTION_KIND",
    "FHIR_BRIDGE_SUBSCRIPTION_TOPIC_BASE",
    "FHIR_BRIDGE_SENDER_REFERENCE",
    "FHIR_BRIDGE_SMART_CLIENT_ID",
    "FHIR_BRIDGE_SMART_FRAME_ANCESTORS",
    "FHIR_BRIDGE_LOG_LEVEL",
}
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|TOKEN|PRIVATE_KEY)$")
KNOWN_SETTINGS = {ENV_PREFIX + name.upper() for name in Settings.model_fields}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_TEXT)


def _interpolated(text: str) -> dict[str, str]:
    """Variables docker compose substitutes from .env: name -> the operator used ('' if none)."""
    found: dict[str, str] = {}
    for match in re.finditer(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+])?", text):
        found[match[1]] = found.get(match[1]) or (match[2] or "")
    for match in re.finditer(r"(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)", text):
        found.setdefault(match[1], "")
    return found


def _env_example() -> tuple[dict[str, str], set[str]]:
    """(active assignments, names only mentioned in commented-out assignments)."""
    active: dict[str, str] = {}
    commented: set[str] = set()
    for line in ENV_EXAMPLE.splitlines():
        if match := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line.strip()):
            active[match[1]] = match[2]
        elif match := re.fullmatch(r"#\s*([A-Z][A-Z0-9_]*)=.*", line.strip()):
            commented.add(match[1])
    return active, commented


def _dockerfile_instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), " ".join(rest.split())))
    return instructions


def _python_snippet(healthcheck: dict[str, Any]) -> str:
    test = healthcheck["test"]
    assert test[:3] == ["CMD", "python", "-c"], "health checks use the image's python"
    return str(test[3])


# --- roles and start order -------------------------------------------------------------


def test_compose_defines_the_four_roles_postgres_and_redis(compose: dict[str, Any]) -> None:
    assert {*ROLES, "postgres", "redis"} <= set(compose["services"])


@pytest.mark.parametrize("role", ROLES)
def test_each_role_runs_a_real_cli_command(compose: dict[str, Any], role: str) -> None:
    command = compose["services"][role]["command"]
    assert command[0] == "fhir-bridge"
    args = _parser().parse_args(command[1:])
    assert hasattr(args, "func")


@pytest.mark.parametrize("role", LONG_RUNNING_ROLES)
def test_app_roles_start_only_after_migrate_completed_successfully(
    compose: dict[str, Any], role: str
) -> None:
    depends_on = compose["services"][role]["depends_on"]
    assert depends_on["migrate"] == {"condition": "service_completed_successfully"}


@pytest.mark.parametrize("role", LONG_RUNNING_ROLES)
def test_app_roles_wait_for_a_healthy_database_and_broker(
    compose: dict[str, Any], role: str
) -> None:
    depends_on = compose["services"][role]["depends_on"]
    assert depends_on["postgres"] == {"condition": "service_healthy"}
    assert depends_on["redis"] == {"condition": "service_healthy"}


def test_migrate_waits_for_a_healthy_database(compose: dict[str, Any]) -> None:
    assert compose["services"]["migrate"]["depends_on"]["postgres"] == {
        "condition": "service_healthy"
    }


def test_migrate_is_a_one_shot_and_everything_else_restarts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["restart"] == "no"
    for name in LONG_RUNNING:
        assert services[name]["restart"] == "unless-stopped", name


# --- health checks ---------------------------------------------------------------------


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_every_long_running_service_has_a_health_check(
    compose: dict[str, Any], service: str
) -> None:
    healthcheck = compose["services"][service]["healthcheck"]
    assert healthcheck["test"][0] in ("CMD", "CMD-SHELL")
    assert healthcheck["interval"] and healthcheck["retries"] >= 1


def test_the_api_health_check_asks_health_with_python_not_curl(compose: dict[str, Any]) -> None:
    snippet = _python_snippet(compose["services"]["api"]["healthcheck"])
    assert "urllib.request" in snippet
    assert "http://127.0.0.1:8000/health" in snippet
    assert "timeout=" in snippet


def test_the_api_health_path_is_a_real_route() -> None:
    from fhir_bridge.api.health import router

    assert "/health" in {getattr(route, "path", None) for route in router.routes}


@pytest.mark.parametrize("role", LONG_RUNNING_ROLES)
def test_health_check_snippets_are_valid_python(compose: dict[str, Any], role: str) -> None:
    compile(_python_snippet(compose["services"][role]["healthcheck"]), role, "exec")


def test_the_worker_health_check_pings_its_own_celery_node(compose: dict[str, Any]) -> None:
    snippet = _python_snippet(compose["services"]["worker"]["healthcheck"])
    assert "celery_app.control.ping" in snippet
    assert "'celery@' + socket.gethostname()" in snippet


def test_the_scheduler_health_check_reads_the_schedule_in_the_data_folder(
    compose: dict[str, Any],
) -> None:
    snippet = _python_snippet(compose["services"]["scheduler"]["healthcheck"])
    data_dir = compose["services"]["scheduler"]["environment"]["FHIR_BRIDGE_DATA_DIR"]
    assert f"'{data_dir}/celerybeat-schedule*'" in snippet


def test_postgres_counts_as_healthy_only_when_it_answers_over_tcp(
    compose: dict[str, Any],
) -> None:
    # During first-start initialisation the image's temporary server listens on the socket only.
    test = compose["services"]["postgres"]["healthcheck"]["test"]
    assert "pg_isready" in test and "-h" in test and "127.0.0.1" in test


def test_redis_counts_as_healthy_only_once_it_answers_pong(compose: dict[str, Any]) -> None:
    # While Redis loads its append-only file it answers LOADING, and redis-cli still exits 0.
    test = compose["services"]["redis"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "redis-cli ping" in test[1] and "PONG" in test[1]


# --- persistence and volumes -----------------------------------------------------------


def test_redis_keeps_an_append_only_file_on_a_named_volume(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    volume, _, path = redis["volumes"][0].partition(":")
    assert path == "/data" and volume in compose["volumes"]


def test_postgres_keeps_its_data_on_a_named_volume(compose: dict[str, Any]) -> None:
    volume, _, path = compose["services"]["postgres"]["volumes"][0].partition(":")
    assert path == "/var/lib/postgresql/data" and volume in compose["volumes"]


@pytest.mark.parametrize("role", ROLES)
def test_each_role_keeps_its_data_in_the_shared_data_volume(
    compose: dict[str, Any], role: str
) -> None:
    service = compose["services"][role]
    assert service["environment"]["FHIR_BRIDGE_DATA_DIR"] == "/data"
    assert "bridge-data:/data" in service["volumes"]
    assert "bridge-data" in compose["volumes"]


@pytest.mark.parametrize("role", ROLES)
def test_the_ehr_key_comes_from_the_secrets_folder_mounted_read_only(
    compose: dict[str, Any], role: str
) -> None:
    service = compose["services"][role]
    mounts = {m.split(":")[1]: m for m in service["volumes"] if m.startswith("./secrets:")}
    assert len(mounts) == 1
    ((target, mount),) = mounts.items()
    assert mount.endswith(":ro")
    assert service["environment"]["FHIR_BRIDGE_EHR_PRIVATE_KEY_FILE"].startswith(target + "/")


def test_the_dockerfile_gives_data_to_the_runtime_user_before_declaring_the_volume() -> None:
    instructions = _dockerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]
    user = next(rest for keyword, rest in instructions if keyword == "USER").split(":")[0]
    volume_at = keywords.index("VOLUME")
    assert "/data" in instructions[volume_at][1]
    prepared_at = next(
        i
        for i, (keyword, rest) in enumerate(instructions)
        if keyword == "RUN" and "mkdir -p /data" in rest and f"chown {user}:" in rest
    )
    assert prepared_at < volume_at < keywords.index("USER")
    assert user not in ("root", "0")


def test_the_runtime_user_has_a_fixed_unprivileged_uid_and_gid() -> None:
    args = {
        name: default
        for keyword, rest in _dockerfile_instructions()
        if keyword == "ARG"
        for name, _, default in [rest.partition("=")]
    }
    run = next(rest for keyword, rest in _dockerfile_instructions() if "useradd" in rest)

    def resolved(flag: str) -> int:
        value = re.search(rf"{flag} \"?([^\s\"]+)", run)
        assert value, flag
        return int(re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], value[1]))

    assert resolved("--uid") >= 10000
    assert resolved("--gid") >= 10000 or "--gid bridge" in run


def test_dockerfile_copies_every_package_the_project_ships() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in packages:
        assert f"COPY {pattern.rstrip('*')} " in DOCKERFILE, pattern


# --- settings and .env.example ---------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_every_environment_variable_is_a_known_setting(compose: dict[str, Any], role: str) -> None:
    variables = set(compose["services"][role]["environment"])
    assert {v for v in variables if v.startswith(ENV_PREFIX)} - KNOWN_SETTINGS == set()


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_the_deployments_env_file(compose: dict[str, Any], role: str) -> None:
    env_file = compose["services"][role]["env_file"]
    assert env_file == ".env" or ".env" in env_file


def test_env_example_lists_every_variable_the_compose_file_reads() -> None:
    active, commented = _env_example()
    assert set(_interpolated(COMPOSE_TEXT)) - (set(active) | commented) == set()


def test_env_example_sets_every_variable_required_for_production() -> None:
    active, _ = _env_example()
    required = {name for name, op in _interpolated(COMPOSE_TEXT).items() if op == ":?"}
    assert (REQUIRED_FOR_PRODUCTION | required) - set(active) == set()


def test_env_example_lists_the_settings_a_clinic_switches_on_later() -> None:
    active, commented = _env_example()
    assert LISTED_FOR_PRODUCTION - (set(active) | commented) == set()


def test_env_example_names_only_real_settings() -> None:
    active, commented = _env_example()
    named = {n for n in set(active) | commented if n.startswith(ENV_PREFIX)}
    assert named - KNOWN_SETTINGS == set()


def test_env_example_does_not_set_what_the_compose_file_fixes(compose: dict[str, Any]) -> None:
    active, _ = _env_example()
    for role in ROLES:
        environment = compose["services"][role]["environment"]
        fixed = {name for name, value in environment.items() if "${" not in str(value)}
        assert fixed & set(active) == set(), role


def test_env_example_leaves_only_values_compose_insists_on_empty() -> None:
    # An empty line in .env reaches the service as an empty string; only variables compose
    # refuses to start without (${NAME:?…}) may be left empty for the clinic to fill in.
    active, _ = _env_example()
    required = {name for name, op in _interpolated(COMPOSE_TEXT).items() if op == ":?"}
    assert {name for name, value in active.items() if not value} - required == set()


def test_the_notification_secret_comes_with_how_to_generate_it() -> None:
    assert 'python3 -c "import secrets;print(secrets.token_urlsafe(48))"' in ENV_EXAMPLE


def test_env_example_filled_in_is_a_valid_configuration(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    active, _ = _env_example()
    placeholders = {
        "POSTGRES_PASSWORD": "pw",
        "FHIR_BRIDGE_PUBLIC_BASE_URL": "https://bridge.clinic.example",
        "FHIR_BRIDGE_NOTIFICATION_SECRET": "Wq7ZkP2xR9mVt4LsN8cYb3HjG6dFa5Ue-n7Kq2xV4bT9",
        "FHIR_BRIDGE_EHR_BASE_URL": "https://ehr.clinic.example/fhir/R4",
        "FHIR_BRIDGE_EHR_CLIENT_ID": "fhir-bridge",
    }
    values = {name: value or placeholders[name] for name, value in active.items()}
    for name, value in compose["services"]["worker"]["environment"].items():
        values[name] = re.sub(r"\$\{(\w+)[^}]*\}", lambda m: values[m[1]], str(value))
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.ehr_auth == "smart-backend"
    assert settings.data_dir == Path("/data")


# --- no secrets in the files -----------------------------------------------------------


def _looks_random(value: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9_\-+=]{20,}", value)) and bool(re.search(r"\d", value))


def test_compose_takes_every_secret_from_the_environment(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            value = str(value)
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{\w+(:\?[^}]*)?\}", value), (name, key)
            if credentials := re.search(r"://[^/:@]+:([^@]+)@", value):
                assert credentials[1].startswith("${"), (name, key)
            assert not _looks_random(value), (name, key)


def test_env_example_holds_no_secret_values() -> None:
    active, _ = _env_example()
    for name, value in active.items():
        if SECRET_NAME.search(name):
            assert value == "", name
        assert not _looks_random(value), name


@pytest.mark.parametrize("text", [COMPOSE_TEXT, ENV_EXAMPLE, DOCKERFILE])
def test_no_key_material_in_deployment_files(text: str) -> None:
    assert "PRIVATE KEY-----" not in text
    assert not re.search(r"\bAC[0-9a-f]{32}\b", text)  # a Twilio account SID


def test_secrets_and_env_stay_out_of_git_and_the_image() -> None:
    for ignore_file in (".gitignore", ".dockerignore"):
        lines = {line.strip() for line in (ROOT / ignore_file).read_text().splitlines()}
        assert ".env" in lines, ignore_file
        assert lines & {"secrets/", "/secrets/"}, ignore_file
