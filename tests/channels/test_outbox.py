"""OutboxAdapter: the development channel that writes JSON lines instead of sending."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from channels.base import OutboundMessage, PermanentChannelError
from channels.outbox import OutboxAdapter, read_outbox


def sms(
    message_id: str = "comm-51c0d7", text: str = "Reminder: appt Tue 2 Dec 09:30"
) -> OutboundMessage:
    return OutboundMessage(message_id=message_id, channel="sms", to="+15005550006", text=text)


def test_send_appends_one_json_line_with_the_message(tmp_path: Path) -> None:
    outbox_path = tmp_path / "outbox" / "sms.jsonl"

    receipt = OutboxAdapter(path=outbox_path, channel="sms").send(sms())

    records = read_outbox(outbox_path)
    assert len(records) == 1
    assert records[0]["message_id"] == "comm-51c0d7"
    assert records[0]["to"] == "+15005550006"
    assert records[0]["provider_message_id"] == receipt.provider_message_id
    assert receipt.provider == "outbox"


def test_second_send_of_same_id_returns_first_receipt_and_writes_nothing(tmp_path: Path) -> None:
    adapter = OutboxAdapter(path=tmp_path / "sms.jsonl", channel="sms")

    first = adapter.send(sms("comm-1"))
    second = adapter.send(sms("comm-1", text="edited text"))

    assert second == first
    assert len(read_outbox(tmp_path / "sms.jsonl")) == 1


def test_idempotency_holds_across_adapter_instances(tmp_path: Path) -> None:
    path = tmp_path / "sms.jsonl"
    first = OutboxAdapter(path=path, channel="sms").send(sms("comm-1"))

    second = OutboxAdapter(path=path, channel="sms").send(sms("comm-1"))

    assert second == first
    assert len(read_outbox(path)) == 1


def test_interleaved_writers_each_see_the_others_messages(tmp_path: Path) -> None:
    path = tmp_path / "sms.jsonl"
    worker_a = OutboxAdapter(path=path, channel="sms")
    worker_b = OutboxAdapter(path=path, channel="sms")

    worker_a.send(sms("comm-1"))
    worker_b.send(sms("comm-2"))
    worker_a.send(sms("comm-2"))

    assert [record["message_id"] for record in read_outbox(path)] == ["comm-1", "comm-2"]


def test_distinct_ids_are_all_written(tmp_path: Path) -> None:
    adapter = OutboxAdapter(path=tmp_path / "sms.jsonl", channel="sms")

    receipts = [adapter.send(sms(f"comm-{n}")) for n in range(3)]

    assert len({receipt.provider_message_id for receipt in receipts}) == 3
    assert len(read_outbox(tmp_path / "sms.jsonl")) == 3


def test_find_sent_returns_receipt_of_an_earlier_send(tmp_path: Path) -> None:
    path = tmp_path / "sms.jsonl"
    receipt = OutboxAdapter(path=path, channel="sms").send(sms("comm-1"))

    after_restart = OutboxAdapter(path=path, channel="sms")

    assert after_restart.find_sent("comm-1") == receipt
    assert after_restart.find_sent("comm-unknown") is None


def test_torn_last_line_from_a_crash_is_skipped_and_next_write_is_readable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sms.jsonl"
    OutboxAdapter(path=path, channel="sms").send(sms("comm-1"))
    with path.open("ab") as outbox:
        outbox.write(b'{"message_id": "comm-2", "to": "+1')

    OutboxAdapter(path=path, channel="sms").send(sms("comm-3"))

    assert [record["message_id"] for record in read_outbox(path)] == ["comm-1", "comm-3"]


def test_email_outbox_keeps_subject_and_html(tmp_path: Path) -> None:
    path = tmp_path / "email.jsonl"
    message = OutboundMessage(
        message_id="comm-9",
        channel="email",
        to="pat@example.net",
        text="Hello",
        subject="Your appointment",
        html="<p>Hello</p>",
    )

    OutboxAdapter(path=path, channel="email").send(message)

    record = json.loads(path.read_text(encoding="utf-8"))
    assert (record["subject"], record["html"]) == ("Your appointment", "<p>Hello</p>")


def test_message_for_another_channel_is_rejected(tmp_path: Path) -> None:
    adapter = OutboxAdapter(path=tmp_path / "email.jsonl", channel="email")

    with pytest.raises(PermanentChannelError) as error:
        adapter.send(sms())

    assert error.value.code == "channel-mismatch"


def test_logs_carry_the_message_id_but_not_content(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="channels")

    OutboxAdapter(path=tmp_path / "sms.jsonl", channel="sms").send(sms("comm-77"))

    assert "comm-77" in caplog.text
    assert "+15005550006" not in caplog.text
    assert "Reminder" not in caplog.text
