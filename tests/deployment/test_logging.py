"""Logs carry ids and codes only: unknown extras are dropped, contact details masked."""

from __future__ import annotations

import io
import json
import logging

import pytest

from fhir_bridge.logging_setup import SafeJsonFormatter, SafeTextFormatter, configure_logging


def _format(message: str, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("fhir_bridge.test", logging.INFO, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return json.loads(SafeJsonFormatter().format(record))


def test_allow_listed_extras_are_printed() -> None:
    line = _format("message sent", message_id="6f1c", provider="smtp")
    assert (line["message_id"], line["provider"]) == ("6f1c", "smtp")


def test_extras_outside_the_allow_list_are_dropped() -> None:
    line = _format("oops", patient_name="Maria Gonzalez", body="Your visit is tomorrow")
    assert "patient_name" not in line and "body" not in line


def test_phone_numbers_and_email_addresses_are_masked_even_in_the_message() -> None:
    line = _format("sent to +16175550142 and maria.gonzalez@example.com or (617) 555-0142")
    assert line["message"] == "sent to [phone] and [email] or [phone]"


def test_timestamps_and_ids_are_not_mistaken_for_phone_numbers() -> None:
    line = _format("event 2026-11-23 id 1004 took 12.5 ms")
    assert line["message"] == "event 2026-11-23 id 1004 took 12.5 ms"


def test_exceptions_are_reduced_to_their_type() -> None:
    try:
        raise ValueError("Maria Gonzalez, DOB 1968-04-12")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = json.loads(SafeJsonFormatter().format(record))
    assert line["exception"] == "ValueError"
    assert "Maria" not in json.dumps(line)


def _text(name: str, level: int, message: str, **extra: object) -> str:
    record = logging.LogRecord(name, level, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return SafeTextFormatter().format(record)


def test_text_lines_show_the_message_and_allow_listed_extras_only() -> None:
    line = _text(
        "fhir_bridge.x", logging.INFO, "message sent", message_id="6f1c", patient_name="Maria"
    )
    assert line.endswith("INFO    fhir_bridge.x: message sent message_id=6f1c")


def test_text_lines_mask_contact_details_too() -> None:
    line = _text("fhir_bridge.x", logging.INFO, "to +16175550142", address="+16175550142")
    assert "6175550142" not in line


def test_text_lines_do_not_repeat_an_id_the_message_already_shows() -> None:
    line = _text("fhir_bridge.x", logging.INFO, "sent message 6f1c via sms", message_id="6f1c")
    assert line.endswith("sent message 6f1c via sms")


def _emitted(level: str, logger: str, message: str) -> list[str]:
    stream = io.StringIO()
    configure_logging(level, "text")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    logging.getLogger(logger).info(message)
    return stream.getvalue().splitlines()


@pytest.mark.parametrize(
    ("logger", "message"),
    [
        ("celery.app.trace", "Task fhir_bridge.relay[3c1e] succeeded in 0.004s: 0"),
        ("celery.worker.strategy", "Task fhir_bridge.dispatch_due[3c1e] received"),
        ("celery.beat", "Scheduler: Sending due task relay (fhir_bridge.relay)"),
    ],
)
def test_celerys_routine_lines_are_debug_so_an_idle_service_is_quiet(
    logger: str, message: str
) -> None:
    try:
        assert _emitted("INFO", logger, message) == []
        assert "DEBUG" in _emitted("debug", logger, message)[0]
    finally:
        logging.getLogger().handlers.clear()


def test_our_own_info_lines_still_show_at_info() -> None:
    try:
        lines = _emitted("info", "fhir_bridge.outreach.delivery", "sent message 6f1c via sms")
    finally:
        logging.getLogger().handlers.clear()
    assert len(lines) == 1 and "INFO" in lines[0]


def test_json_is_the_optional_format() -> None:
    stream = io.StringIO()
    try:
        configure_logging("INFO", "json")
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        logging.getLogger("fhir_bridge.x").info("ready", extra={"count": 3})
    finally:
        logging.getLogger().handlers.clear()
    assert json.loads(stream.getvalue())["count"] == 3
