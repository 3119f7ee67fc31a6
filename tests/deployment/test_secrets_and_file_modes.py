"""Secrets are strong or refused, and files holding PHI or secrets are private (0600 in 0700)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from channels.base import OutboundMessage
from channels.outbox import OutboxAdapter
from fhir_bridge.settings import SettingsError, load_settings

STRONG_SECRET = "Zr4pQ8wLx2NvK7cT9bYh3MfJ6sDg1Ae5-uW0oRi_Hkm"  # 43 base64 characters: 258 bits


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_BRIDGE_")}
    return subprocess.run(
        [sys.executable, "-m", "fhir_bridge", *args],
        cwd=tmp_path,
        env={**clean, "FHIR_BRIDGE_DATA_DIR": str(tmp_path / "var"), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "weak",
    [
        "a",
        "e2e-notification-secret-7f3a9c",
        "0123456789abcdef0123456789abcdef0123456789abcdef",  # 48 hex digits: 192 bits
        "n" * 64,
    ],
)
def test_a_weak_notification_secret_is_refused_naming_the_variable(weak: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(notification_secret=weak)
    message = str(error.value)
    assert "FHIR_BRIDGE_NOTIFICATION_SECRET" in message
    assert "secrets.token_urlsafe(48)" in message
    assert len(weak) < 8 or weak not in message


def test_256_bits_in_base64_or_hex_are_accepted() -> None:
    assert len(STRONG_SECRET) == 43
    assert load_settings(notification_secret=STRONG_SECRET).notification_secret is not None
    hex_secret = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    assert load_settings(notification_secret=hex_secret).notification_secret is not None


def test_a_worker_with_a_weak_secret_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    result = _cli(tmp_path, "worker", FHIR_BRIDGE_NOTIFICATION_SECRET="a")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "FHIR_BRIDGE_NOTIFICATION_SECRET" in lines[0]


def test_serve_without_a_notification_secret_refuses_to_start(tmp_path: Path) -> None:
    result = _cli(tmp_path, "serve")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "FHIR_BRIDGE_NOTIFICATION_SECRET" in lines[0]
    assert "secrets.token_urlsafe(48)" in lines[0]


def test_an_unreadable_secret_file_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "var" / "notification-secret").mkdir(parents=True)  # a folder: EISDIR
    result = _cli(tmp_path, "subscriptions", "list")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "notification-secret" in lines[0]


def test_migrate_leaves_the_data_folder_secret_and_database_private(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir(mode=0o755)
    os.chmod(tmp_path / "var", 0o755)  # noqa: S103 (an older release left it so)
    result = _cli(tmp_path, "migrate")
    assert result.returncode == 0, result.stderr
    data = tmp_path / "var"
    assert _mode(data) == 0o700
    assert _mode(data / "notification-secret") == 0o600
    assert len((data / "notification-secret").read_text().strip()) >= 43
    assert _mode(data / "fhir-bridge.db") == 0o600
    assert not list(data.glob(".notification-secret.*")), "no temporary file left behind"


def test_a_delivery_to_the_outbox_is_private(tmp_path: Path) -> None:
    outbox = OutboxAdapter(path=tmp_path / "var" / "outbox" / "sms.jsonl", channel="sms")
    outbox.send(
        OutboundMessage(
            message_id="7c0e2b1a-4d3f-4e5a-9b6c-1d2e3f4a5b6c",
            channel="sms",
            to="+15550104477",
            text="Riverside Clinic: reminder of your visit tomorrow 9:30 AM. Reply STOP to opt out",
        )
    )
    assert _mode(tmp_path / "var" / "outbox") == 0o700
    assert _mode(tmp_path / "var" / "outbox" / "sms.jsonl") == 0o600
    assert json.loads((tmp_path / "var" / "outbox" / "sms.jsonl").read_text())
