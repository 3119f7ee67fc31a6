"""Structured, PHI-safe logging.

Log calls pass ids and codes as ``extra``; only allow-listed keys are printed.
As a second line of defence, anything that looks like a phone number or an
email address is masked in the final line, whatever put it there.
"""

from __future__ import annotations

import json
import logging
import re
import sys

SAFE_KEYS = (
    "path",
    "delivery_status",
    "intent",
    "reply_id",
    "resource_id",
    "resource_type",
    "try",
    "why",
    "subscription",
    "kind",
    "duplicate",
    "inbox_id",
    "message_id",
    "communication_id",
    "status",
    "type",
    "id",
    "remote_id",
    "remote_status",
    "provider",
    "code",
    "task",
    "error",
    "from",
    "to",
    "attempt",
    "elapsed_ms",
    "method",
    "interaction",
    "outcome",
    "count",
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_PHONE = re.compile(r"\+\d{8,15}\b|\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b")


def mask(text: str) -> str:
    """Mask email addresses and phone-number-like digit runs."""
    return _PHONE.sub("[phone]", _EMAIL.sub("[email]", text))


class SafeJsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, allow-listed extras."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask(record.getMessage()),
        }
        for key in SAFE_KEYS:
            if key in record.__dict__:
                value = record.__dict__[key]
                payload[key] = mask(value) if isinstance(value, str) else value
        if record.exc_info and record.exc_info[0] is not None:
            payload["exception"] = record.exc_info[0].__name__
        return json.dumps(payload, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Route every logger (ours, uvicorn's, Celery's) through the safe formatter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeJsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
