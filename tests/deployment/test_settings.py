"""Settings are validated at start, with messages that name the variable and never a secret."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from fhir_bridge.settings import SettingsError, ensure_notification_secret, load_settings

VAULT_SECRET = "from-the-vault-Wq7ZkP2xR9mVt4LsN8cYb3HjG6dFa5Ue"


def test_defaults_are_the_embedded_sqlite_and_filesystem_broker() -> None:
    settings = load_settings()
    assert settings.database_url.startswith("sqlite:///")
    assert settings.broker_url == "filesystem://"


def test_an_invalid_value_names_the_environment_variable() -> None:
    with pytest.raises(SettingsError, match="FHIR_BRIDGE_PORT"):
        load_settings(port="not-a-port")


def test_smart_backend_auth_requires_a_client_id_and_a_key() -> None:
    with pytest.raises(SettingsError, match="FHIR_BRIDGE_EHR_CLIENT_ID"):
        load_settings(ehr_auth="smart-backend")


def test_twilio_without_credentials_is_refused_without_echoing_secrets() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(sms_provider="twilio", twilio_auth_token="s3cret-token-value")
    assert "FHIR_BRIDGE_TWILIO_ACCOUNT_SID" in str(error.value)
    assert "s3cret-token-value" not in str(error.value)


def test_environment_variables_are_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIR_BRIDGE_EHR_BASE_URL", "https://ehr.example.org/fhir/")
    assert load_settings().ehr_base_url == "https://ehr.example.org/fhir"


def test_commands_that_need_the_notification_secret_say_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FHIR_BRIDGE_NOTIFICATION_SECRET", raising=False)
    with pytest.raises(SettingsError) as error:
        load_settings(data_dir=tmp_path).require_notification_secret()
    assert "FHIR_BRIDGE_NOTIFICATION_SECRET" in str(error.value)
    assert "fhir-bridge migrate" in str(error.value)


def test_the_data_folders_secret_is_used_when_the_variable_is_unset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FHIR_BRIDGE_NOTIFICATION_SECRET", raising=False)
    assert ensure_notification_secret(load_settings(data_dir=tmp_path))
    secret = (tmp_path / "notification-secret").read_text()
    assert load_settings(data_dir=tmp_path).require_notification_secret() == secret
    assert stat.S_IMODE((tmp_path / "notification-secret").stat().st_mode) == 0o600


def test_a_configured_secret_beats_the_data_folders(tmp_path: Path) -> None:
    (tmp_path / "notification-secret").write_text("from-the-folder")
    settings = load_settings(data_dir=tmp_path, notification_secret=VAULT_SECRET)
    assert settings.require_notification_secret() == VAULT_SECRET
    assert not ensure_notification_secret(settings)


def test_database_broker_and_outbox_live_in_the_data_folder_unless_set() -> None:
    settings = load_settings(data_dir=Path("/srv/fhir-bridge"))
    assert settings.database_url == "sqlite:////srv/fhir-bridge/fhir-bridge.db"
    assert settings.broker_dir == Path("/srv/fhir-bridge/broker")
    assert settings.outbox_dir == Path("/srv/fhir-bridge/outbox")
    own = load_settings(data_dir=Path("/srv/x"), database_url="postgresql://bridge@db/bridge")
    assert own.database_url == "postgresql://bridge@db/bridge"


def test_a_bad_database_url_is_one_line_naming_the_variable_without_echoing_it() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(database_url="postgres-at-db-host:5432 with p4ssw0rd")
    assert "\n" not in str(error.value)
    assert "FHIR_BRIDGE_DATABASE_URL" in str(error.value)
    assert "p4ssw0rd" not in str(error.value)


def test_log_levels_are_accepted_in_lower_case() -> None:
    assert load_settings(log_level="debug").log_level == "DEBUG"


def test_the_signing_algorithm_is_unset_by_default_so_the_key_decides() -> None:
    assert load_settings().ehr_signing_alg is None
