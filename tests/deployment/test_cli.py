"""The CLI as a clinic's IT person meets it: run in a fresh folder, one clear line per mistake.

Each test runs ``fhir-bridge`` as a real process in an empty folder with no FHIR_BRIDGE_*
variables but the ones it names, the way the README's commands are typed.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fhir_bridge.fhir.keys import generate_private_key


def fhir_bridge(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_BRIDGE_")}
    return subprocess.run(
        [sys.executable, "-m", "fhir_bridge", *args],
        cwd=folder,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_garbage_database_url_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    result = fhir_bridge(tmp_path, "migrate", FHIR_BRIDGE_DATABASE_URL="garbage")
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "FHIR_BRIDGE_DATABASE_URL" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_command_on_a_folder_without_a_database_says_to_migrate_and_creates_nothing(
    tmp_path: Path,
) -> None:
    result = fhir_bridge(tmp_path, "subscriptions", "list")
    assert result.returncode != 0
    assert result.stderr == (
        "fhir-bridge: no database at var/fhir-bridge.db — run `fhir-bridge migrate` "
        "(or `fhir-bridge run`)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_an_unmigrated_database_file_is_reported_not_used(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "fhir-bridge.db").touch()
    result = fhir_bridge(tmp_path, "dispatch")
    assert result.returncode != 0
    assert "is not migrated — run `fhir-bridge migrate`" in result.stderr
    assert result.stderr.count("\n") == 1


def test_after_migrate_every_command_in_the_folder_finds_the_database_and_the_secret(
    tmp_path: Path,
) -> None:
    assert fhir_bridge(tmp_path, "migrate").returncode == 0
    secret = tmp_path / "var" / "notification-secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    listed = fhir_bridge(tmp_path, "subscriptions", "list")
    assert (listed.returncode, json.loads(listed.stdout)) == (0, [])
    created = fhir_bridge(
        tmp_path, "subscriptions", "create", FHIR_BRIDGE_EHR_BASE_URL="http://127.0.0.1:9/fhir"
    )
    assert "NOTIFICATION_SECRET" not in created.stderr, "the folder's secret is used"


def test_an_unreachable_ehr_is_one_line_naming_the_url_and_the_variable(tmp_path: Path) -> None:
    assert fhir_bridge(tmp_path, "migrate").returncode == 0
    result = fhir_bridge(
        tmp_path,
        "subscriptions",
        "create",
        FHIR_BRIDGE_EHR_BASE_URL="http://127.0.0.1:9/fhir",
        FHIR_BRIDGE_EHR_MAX_ATTEMPTS="1",
    )
    assert result.returncode != 0
    assert result.stderr == (
        "fhir-bridge: cannot reach the EHR at http://127.0.0.1:9/fhir (connection refused or "
        "host not found): check FHIR_BRIDGE_EHR_BASE_URL and that the EHR is up\n"
    )


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = fhir_bridge(tmp_path, "--debug", "subscriptions", "list")
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_keys_generate_out_makes_a_private_folder_and_an_owner_only_file(tmp_path: Path) -> None:
    result = fhir_bridge(tmp_path, "keys", "generate", "--alg", "ES384", "--out", "secrets/ehr.pem")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "secrets" / "ehr.pem").stat().st_mode) == 0o600
    assert (tmp_path / "secrets" / "ehr.pem").read_text().startswith("-----BEGIN PRIVATE KEY")


def test_keys_generate_never_overwrites_a_key(tmp_path: Path) -> None:
    (tmp_path / "ehr.pem").write_text("the key the EHR already trusts")
    result = fhir_bridge(tmp_path, "keys", "generate", "--out", "ehr.pem")
    assert result.returncode != 0 and "already exists" in result.stderr
    assert (tmp_path / "ehr.pem").read_text() == "the key the EHR already trusts"


def test_keys_generate_without_out_prints_the_key(tmp_path: Path) -> None:
    result = fhir_bridge(tmp_path, "keys", "generate", "--alg", "RS384")
    assert result.stdout.startswith("-----BEGIN PRIVATE KEY")
    assert list(tmp_path.iterdir()) == []


def test_keys_jwks_without_a_key_says_what_to_set(tmp_path: Path) -> None:
    result = fhir_bridge(tmp_path, "keys", "jwks")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert "FHIR_BRIDGE_EHR_PRIVATE_KEY_FILE" in result.stderr


def test_a_missing_key_file_is_named(tmp_path: Path) -> None:
    result = fhir_bridge(
        tmp_path, "keys", "jwks", FHIR_BRIDGE_EHR_PRIVATE_KEY_FILE="secrets/ehr.pem"
    )
    assert result.returncode != 0 and result.stderr.count("\n") == 1
    assert "secrets/ehr.pem" in result.stderr
    assert "FHIR_BRIDGE_EHR_PRIVATE_KEY_FILE" in result.stderr


def _registration(tmp_path: Path, alg: str, **env: str) -> subprocess.CompletedProcess[str]:
    key = tmp_path / f"{alg}.pem"
    key.write_text(generate_private_key(alg, rsa_bits=2048))
    return fhir_bridge(
        tmp_path,
        "registration",
        "--json",
        FHIR_BRIDGE_EHR_PRIVATE_KEY_FILE=str(key),
        FHIR_BRIDGE_PUBLIC_BASE_URL="https://bridge.clinic.example",
        **env,
    )


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_registration_takes_the_algorithm_from_the_key(tmp_path: Path, alg: str) -> None:
    result = _registration(tmp_path, alg)
    backend = json.loads(result.stdout)["backend_services"]
    assert backend["token_endpoint_auth_signing_alg"] == alg


def test_registration_refuses_a_signing_alg_setting_that_contradicts_the_key(
    tmp_path: Path,
) -> None:
    result = _registration(tmp_path, "ES384", FHIR_BRIDGE_EHR_SIGNING_ALG="RS384")
    assert result.returncode != 0 and result.stderr.count("\n") == 1
    assert "FHIR_BRIDGE_EHR_SIGNING_ALG" in result.stderr and "ES384" in result.stderr


def test_registration_covers_the_backend_service_and_the_staff_panel(tmp_path: Path) -> None:
    details = json.loads(_registration(tmp_path, "ES384").stdout)
    assert details["backend_services"]["jwks_uri"] == (
        "https://bridge.clinic.example/.well-known/jwks.json"
    )
    panel = details["staff_panel"]
    assert panel["launch_uri"] == "https://bridge.clinic.example/smart/launch"
    assert panel["redirect_uri"] == "https://bridge.clinic.example/smart/callback"
    assert "PKCE S256" in str(panel["token_endpoint_auth_method"])
    assert "launch" in str(panel["scope"]).split()


def test_every_subcommand_has_a_description_in_its_help(tmp_path: Path) -> None:
    result = fhir_bridge(tmp_path, "keys", "generate", "--help")
    assert "0600" in result.stdout
