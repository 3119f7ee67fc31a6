"""Settings are validated at start, with messages that name the variable and never a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhir_bridge.cli import main
from fhir_bridge.settings import SettingsError, load_settings


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
    assert "twilio_account_sid" in str(error.value)
    assert "s3cret-token-value" not in str(error.value)


def test_environment_variables_are_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIR_BRIDGE_EHR_BASE_URL", "https://ehr.example.org/fhir/")
    assert load_settings().ehr_base_url == "https://ehr.example.org/fhir"


def test_commands_that_need_the_notification_secret_say_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from fhir_bridge.runtime import get_runtime
    from fhir_bridge.settings import get_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FHIR_BRIDGE_EHR_BASE_URL", "http://127.0.0.1:9/fhir")
    monkeypatch.delenv("FHIR_BRIDGE_NOTIFICATION_SECRET", raising=False)
    get_settings.cache_clear()
    get_runtime.cache_clear()
    try:
        assert main(["subscriptions", "create"]) == 2
    finally:
        get_settings.cache_clear()
        get_runtime.cache_clear()
    assert "FHIR_BRIDGE_NOTIFICATION_SECRET" in capsys.readouterr().err
