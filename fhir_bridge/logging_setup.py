"""Structured, PHI-safe logging.

Log calls pass ids and codes as ``extra``; only allow-listed keys are printed.
As a second line of defence, anything that looks like a phone number or an
email address is masked in the final line, whatever put it there.

Two formats (``FHIR_BRIDGE_LOG_FORMAT``): ``text``, one plain line per event for a
console, and ``json``, one object per line for a log collector. Celery's routine
lines (a periodic task received, succeeded, sent by the scheduler) are DEBUG, so an
idle service is quiet at INFO; what the service decides is logged at INFO by the
code that decides it.
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
    "rule",
    "resource",
    "send_at",
    "offset",
    "reason",
    "channel",
)
# Loggers whose INFO lines are routine plumbing, not decisions: Celery's per-task lines and
# uvicorn's access log (health probes every few seconds; paths may carry signed tokens).
ROUTINE_LOGGERS = ("celery.app.trace", "celery.worker.strategy", "celery.beat", "uvicorn.access")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
# Access-log paths whose segments are credentials: a staff panel launch's handle, a
# one-click unsubscribe token. Query values (launch codes, ``code``, ``state``, ``iss``)
# are dropped from every path.
_SECRET_SEGMENTS = re.compile(r"(/smart/l/|/unsubscribe/email/)[^/?#\s]+")
_QUERY_VALUES = re.compile(r"=[^&#\s]*")
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
        payload.update(_safe_extras(record))
        if record.exc_info and record.exc_info[0] is not None:
            payload["exception"] = record.exc_info[0].__name__
        return json.dumps(payload, default=str)


def _safe_extras(record: logging.LogRecord) -> dict[str, object]:
    extras: dict[str, object] = {}
    for key in SAFE_KEYS:
        if key in record.__dict__:
            value = record.__dict__[key]
            extras[key] = mask(value) if isinstance(value, str) else value
    return extras


class SafeTextFormatter(logging.Formatter):
    """``TIME LEVEL logger: message key=value ...`` with allow-listed extras only.

    Extras whose value the message already shows are not repeated.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = mask(record.getMessage())
        parts = [
            self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            f"{record.levelname:<7}",
            f"{record.name}: {message}",
        ]
        for key, value in _safe_extras(record).items():
            if str(value) not in message:
                parts.append(f"{key}={value}")
        if record.exc_info and record.exc_info[0] is not None:
            parts.append(f"exception={record.exc_info[0].__name__}")
        return " ".join(parts)


def redact_path(path: str) -> str:
    """``/smart/callback?code=…&state=…`` from ``/smart/callback?code=abc&state=xyz``."""
    route, question, query = path.partition("?")
    route = _SECRET_SEGMENTS.sub(r"\1…", route)
    return route + question + _QUERY_VALUES.sub("=…", query) if question else route


class RedactAccessLog(logging.Filter):
    """uvicorn's access lines without codes, tokens, ``state`` or launch handles."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            record.args = tuple(
                redact_path(arg) if index == 2 and isinstance(arg, str) else arg
                for index, arg in enumerate(record.args)
            )
        return True


class DemoteRoutine(logging.Filter):
    """Celery's per-task INFO lines become DEBUG (shown only when the level is DEBUG)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        routine = record.levelno == logging.INFO and record.name.startswith(ROUTINE_LOGGERS)
        if routine or _is_kombu_hostname_notice(record):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return self.level <= logging.DEBUG
        return True


def _is_kombu_hostname_notice(record: logging.LogRecord) -> bool:
    """kombu warns at every start that ``filesystem://`` has no host; nothing to fix."""
    return record.name == "kombu.connection" and str(record.msg).startswith(
        "No hostname was supplied"
    )


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """Route every logger (ours, uvicorn's, Celery's) through the safe formatter."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = SafeJsonFormatter() if log_format == "json" else SafeTextFormatter()
    handler.setFormatter(formatter)
    handler.addFilter(RedactAccessLog())
    numeric = logging.getLevelName(level.upper())
    handler.addFilter(DemoteRoutine(numeric if isinstance(numeric, int) else logging.INFO))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn configures its loggers with handlers of their own (and no propagation) when it
    # is started with its default log config: take them back, so every line is redacted.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        server_log = logging.getLogger(name)
        server_log.handlers.clear()
        server_log.setLevel(logging.NOTSET)
        server_log.propagate, server_log.disabled = True, False
    for noisy in ("httpx", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
