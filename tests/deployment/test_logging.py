"""Logs carry ids and codes only: unknown extras are dropped, contact details masked."""

from __future__ import annotations

import json
import logging

from fhir_bridge.logging_setup import SafeJsonFormatter


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
