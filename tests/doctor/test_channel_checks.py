"""Each configured channel is tried without sending (dry run); ``--send-test-to`` sends one.

Real local servers only: aiosmtpd for SMTP, the repo's fake Twilio for SMS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fhir_bridge.doctor import DoctorContext, check_channels
from fhir_bridge.settings import load_settings
from tests.support.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.support.smtp import SmtpServer

SECRET = "lakeside-notification-secret-41c7-Wq7ZkP2xR9mVt4LsN8cYb3HjG6dFa5Ue"
RELAY_USER = "reminders@lakeside-fp.org"
RELAY_PASSWORD = "relay-pass-77"
REDIS_URL = "redis://127.0.0.1:6379/5"


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


def _smtp_context(
    tmp_path: Path, smtp: SmtpServer, *, password: str = RELAY_PASSWORD, send_to: str | None = None
) -> DoctorContext:
    settings = load_settings(
        data_dir=tmp_path / "var",
        sms_provider="none",
        email_provider="smtp",
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_security="starttls",
        smtp_username=RELAY_USER,
        smtp_password=password,
        smtp_from="reminders@lakeside-fp.org",
        notification_secret=SECRET,
    )
    return DoctorContext(settings=settings, send_test_to=send_to, timeout=3)


@pytest.fixture
def relay(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    """A STARTTLS relay with AUTH; its self-signed certificate is trusted the way a clinic
    trusts a private CA (``SSL_CERT_FILE``)."""
    with SmtpServer(tls="starttls", username=RELAY_USER, password=RELAY_PASSWORD) as smtp:
        assert smtp._certificate is not None
        monkeypatch.setenv("SSL_CERT_FILE", str(smtp._certificate.cert_path))
        yield smtp


def _line(results: list, name: str):  # type: ignore[no-untyped-def,type-arg]
    return next(result for result in results if result.name == name)


def test_smtp_dry_run_logs_in_over_starttls_and_sends_nothing(
    tmp_path: Path, relay: SmtpServer
) -> None:
    results = check_channels(_smtp_context(tmp_path, relay))

    assert _line(results, "channel.email").status == "ok", results
    assert "dry run" in _line(results, "channel.email").detail
    assert relay.authenticated_logins == [RELAY_USER]
    assert relay.messages == []
    assert _line(results, "channel.sms").status == "skip"


def test_smtp_refusing_our_login_names_the_credential_settings(
    tmp_path: Path, relay: SmtpServer
) -> None:
    results = check_channels(_smtp_context(tmp_path, relay, password="wrong-pass"))

    line = _line(results, "channel.email")
    assert line.status == "fail"
    assert "FHIR_BRIDGE_SMTP_USERNAME" in line.fix
    assert "FHIR_BRIDGE_SMTP_PASSWORD" in line.fix
    assert "wrong-pass" not in line.detail + line.fix


def test_an_smtp_relay_that_is_not_there_names_host_and_port_settings(tmp_path: Path) -> None:
    with SmtpServer() as smtp:
        port = smtp.port
    settings = load_settings(
        data_dir=tmp_path / "var",
        email_provider="smtp",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        smtp_from="reminders@lakeside-fp.org",
        notification_secret=SECRET,
        sms_provider="none",
    )

    line = _line(check_channels(DoctorContext(settings=settings, timeout=3)), "channel.email")

    assert line.status == "fail"
    assert f"127.0.0.1:{port}" in line.detail
    assert "FHIR_BRIDGE_SMTP_HOST" in line.fix


def test_send_test_to_an_email_address_sends_one_email_with_an_unsubscribe_link(
    tmp_path: Path, relay: SmtpServer
) -> None:
    results = check_channels(_smtp_context(tmp_path, relay, send_to="it-desk@lakeside-fp.org"))

    assert _line(results, "channel.email").status == "ok", results
    assert len(relay.messages) == 1
    sent = relay.messages[0]
    assert sent["To"] == "it-desk@lakeside-fp.org"
    assert sent["List-Unsubscribe"]
    assert "i***@lakeside-fp.org" in _line(results, "channel.email").detail


def _twilio_settings(tmp_path: Path, twilio: FakeTwilio, token: str = AUTH_TOKEN):  # type: ignore[no-untyped-def]
    return load_settings(
        data_dir=tmp_path / "var",
        sms_provider="twilio",
        email_provider="none",
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=token,
        twilio_from_number="+16175550142",
        twilio_base_url=twilio.base_url,
        redis_url=REDIS_URL,
    )


def test_twilio_dry_run_reads_the_account_and_creates_no_message(
    tmp_path: Path, twilio: FakeTwilio
) -> None:
    ctx = DoctorContext(settings=_twilio_settings(tmp_path, twilio), timeout=3)

    line = _line(check_channels(ctx), "channel.sms")

    assert line.status == "ok", line
    assert f"Twilio account {ACCOUNT_SID} active" in line.detail
    assert twilio.create_requests == []


def test_twilio_refusing_our_credentials_names_sid_and_token_settings(
    tmp_path: Path, twilio: FakeTwilio
) -> None:
    settings = _twilio_settings(tmp_path, twilio, token="0" * 32)

    line = _line(check_channels(DoctorContext(settings=settings, timeout=3)), "channel.sms")

    assert line.status == "fail"
    assert "HTTP 401" in line.detail
    assert "FHIR_BRIDGE_TWILIO_ACCOUNT_SID" in line.fix
    assert "FHIR_BRIDGE_TWILIO_AUTH_TOKEN" in line.fix


def test_send_test_to_a_phone_number_sends_one_sms_through_twilio(
    tmp_path: Path, twilio: FakeTwilio
) -> None:
    ctx = DoctorContext(
        settings=_twilio_settings(tmp_path, twilio), send_test_to="+16175550199", timeout=3
    )

    line = _line(check_channels(ctx), "channel.sms")

    assert line.status == "ok", line
    assert [request["To"] for request in twilio.create_requests] == ["+16175550199"]
    assert "***99" in line.detail
    assert "+16175550199" not in line.detail


def test_send_test_to_an_address_no_channel_carries_fails(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "var", email_provider="none")
    ctx = DoctorContext(settings=settings, send_test_to="it-desk@lakeside-fp.org", timeout=3)

    line = _line(check_channels(ctx), "channel.test")

    assert line.status == "fail"
    assert "FHIR_BRIDGE_EMAIL_PROVIDER" in line.fix


def test_the_development_outbox_passes_and_says_nothing_is_sent(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "var")

    results = check_channels(DoctorContext(settings=settings, timeout=3))

    assert [(r.name, r.status) for r in results] == [("channel.sms", "ok"), ("channel.email", "ok")]
    assert "not sent" in results[0].detail
    assert not (tmp_path / "var").exists()
