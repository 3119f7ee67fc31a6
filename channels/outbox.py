"""Development outbox: "sends" by appending a JSON line to a local file.

The embedded/default configuration must run without Twilio or a mail relay, yet a developer
still wants to see exactly what would have left. Each message becomes one JSON line; the file
is the only place message content goes (logs carry the message id only). Sends are idempotent
by ``message_id`` across processes: the file is locked while it is scanned and appended, so a
retried send returns the first receipt and writes nothing.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from channels.base import (
    ChannelAdapter,
    OutboundMessage,
    PermanentChannelError,
    SendReceipt,
    SentRecord,
    TransientChannelError,
)

logger = logging.getLogger(__name__)

OUTBOX_STATUS = "sent"


class OutboxAdapter(ChannelAdapter):
    """Write messages for one channel ("sms" or "email") to a JSON-lines file."""

    provider = "outbox"
    resend_is_safe = True

    def __init__(self, *, path: str | Path, channel: str) -> None:
        """``path`` is the JSON-lines file; its directory is created on first send."""
        if channel not in ("sms", "email"):
            raise ValueError(f"unknown channel {channel!r}")
        self.path = Path(path)
        self.channel = channel
        self._receipts: dict[str, SendReceipt] = {}
        self._scanned_bytes = 0

    def send(self, message: OutboundMessage) -> SendReceipt:
        """Append the message unless its ``message_id`` is already in the outbox."""
        if message.channel != self.channel:
            raise PermanentChannelError("channel-mismatch", reason="rejected")
        try:
            # Message bodies are PHI: a 0700 folder and a 0600 file from the first byte.
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a+b") as outbox:
                fcntl.flock(outbox, fcntl.LOCK_EX)
                self._catch_up(outbox)
                existing = self._receipts.get(message.message_id)
                if existing is not None:
                    logger.info("outbox duplicate ignored message_id=%s", message.message_id)
                    return existing
                receipt = self._append(outbox, message)
        except OSError as io_error:
            raise TransientChannelError("outbox-io", detail=type(io_error).__name__) from None
        logger.info("outbox wrote message_id=%s", message.message_id)
        return receipt

    def find_sent(self, message_id: str, record: SentRecord | None = None) -> SendReceipt | None:
        """Return the receipt of an earlier send of ``message_id``, if the outbox has one."""
        if not self.path.exists():
            return None
        with self.path.open("rb") as outbox:
            fcntl.flock(outbox, fcntl.LOCK_SH)
            self._catch_up(outbox)
        return self._receipts.get(message_id)

    def _catch_up(self, outbox: IO[bytes]) -> None:
        """Index lines appended since our last scan (possibly by other processes)."""
        outbox.seek(0, os.SEEK_END)
        if outbox.tell() < self._scanned_bytes:
            self._receipts.clear()
            self._scanned_bytes = 0
        outbox.seek(self._scanned_bytes)
        for line in outbox:
            record = _parse_line(line)
            if record is not None:
                self._receipts.setdefault(record["message_id"], _receipt_from(record))
        self._scanned_bytes = outbox.tell()

    def _append(self, outbox: IO[bytes], message: OutboundMessage) -> SendReceipt:
        record: dict[str, Any] = asdict(message)
        record["provider_message_id"] = f"outbox-{uuid.uuid4().hex}"
        record["status"] = OUTBOX_STATUS
        record["written_at"] = datetime.now(UTC).isoformat()
        line = json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"
        size = outbox.seek(0, os.SEEK_END)
        if size > 0:
            outbox.seek(size - 1)
            if outbox.read(1) != b"\n":
                line = b"\n" + line
        outbox.write(line)
        outbox.flush()
        os.fsync(outbox.fileno())
        self._scanned_bytes = outbox.tell()
        receipt = _receipt_from(record)
        self._receipts[message.message_id] = receipt
        return receipt


def read_outbox(path: str | Path) -> list[dict[str, Any]]:
    """Return every well-formed record in an outbox file (for developers and tests)."""
    outbox = Path(path)
    if not outbox.exists():
        return []
    lines = outbox.read_text(encoding="utf-8").splitlines()
    return [record for record in map(_parse_line, lines) if record is not None]


def _parse_line(line: str | bytes) -> dict[str, Any] | None:
    """Parse one line; a torn final line from a crashed writer is skipped, not fatal."""
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("message_id"), str):
        return None
    return record


def _receipt_from(record: dict[str, Any]) -> SendReceipt:
    return SendReceipt(
        provider=OutboxAdapter.provider,
        provider_message_id=str(record.get("provider_message_id", "")),
        status=str(record.get("status", OUTBOX_STATUS)),
    )
