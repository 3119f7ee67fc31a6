"""Email over SMTP needs the secret its one-click unsubscribe links are signed with."""

from __future__ import annotations

import pytest

from fhir_bridge.settings import SettingsError, load_settings


def test_smtp_email_without_a_notification_secret_is_refused() -> None:
    with pytest.raises(SettingsError, match="FHIR_BRIDGE_NOTIFICATION_SECRET"):
        load_settings(email_provider="smtp", smtp_host="127.0.0.1")


def test_smtp_email_with_a_notification_secret_is_accepted() -> None:
    settings = load_settings(
        email_provider="smtp",
        smtp_host="127.0.0.1",
        notification_secret="s3cr3t-7f3a9c-Wq7ZkP2xR9mVt4LsN8cYb3HjG6dFa5Ue",
    )

    assert (settings.email_unsubscribe_days, settings.email_unsubscribe_mailto) == (365, None)
