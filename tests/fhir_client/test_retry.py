"""When the EHR client repeats a request, and when it must not."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from fhir_bridge.fhir import EhrError, EhrUnavailable, RetryPolicy
from fhir_bridge.fhir.client import parse_retry_after
from tests.fhir_client.ehr_doubles import (
    APPOINTMENT_ID,
    ScriptedEhr,
    booked_appointment,
    fhir_response,
    make_client,
    outcome,
    reminder_communication,
    stored,
)


def test_read_is_retried_after_503_then_returns_resource() -> None:
    ehr = ScriptedEhr(fhir_response(503), fhir_response(200, booked_appointment()))
    sleeps: list[float] = []

    appointment = make_client(ehr, sleeps).read("Appointment", APPOINTMENT_ID)

    assert appointment["id"] == APPOINTMENT_ID
    assert len(ehr.requests) == 2
    assert len(sleeps) == 1


def test_retry_after_seconds_is_honoured() -> None:
    ehr = ScriptedEhr(
        fhir_response(429, headers={"Retry-After": "7"}), fhir_response(200, booked_appointment())
    )
    sleeps: list[float] = []

    make_client(ehr, sleeps).read("Appointment", APPOINTMENT_ID)

    assert sleeps == [7.0]


def test_retry_after_beyond_max_delay_is_capped() -> None:
    far_future = format_datetime(datetime.now(UTC) + timedelta(hours=2), usegmt=True)
    ehr = ScriptedEhr(
        fhir_response(503, headers={"Retry-After": far_future}),
        fhir_response(200, booked_appointment()),
    )
    sleeps: list[float] = []

    make_client(ehr, sleeps, RetryPolicy(max_delay=12.0)).read("Appointment", APPOINTMENT_ID)

    assert sleeps == [12.0]


NOW = datetime(2026, 11, 30, 14, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("120", 120.0, id="delta-seconds"),
        pytest.param(" 3 ", 3.0, id="delta-seconds-with-whitespace"),
        pytest.param("Mon, 30 Nov 2026 14:00:30 GMT", 30.0, id="http-date-ahead"),
        pytest.param("Mon, 30 Nov 2026 13:59:00 GMT", 0.0, id="http-date-in-past"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("-5", None, id="negative"),
        pytest.param(None, None, id="absent"),
    ],
)
def test_retry_after_header_is_parsed(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


@pytest.mark.parametrize("attempt", range(1, 9))
def test_backoff_is_full_jitter_under_exponential_ceiling(attempt: int) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0)
    ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))

    delays = [policy.backoff(attempt, random.Random(seed)) for seed in range(50)]

    assert all(0.0 <= delay <= ceiling for delay in delays)
    assert len(set(delays)) > 1


def test_bad_request_is_not_retried() -> None:
    ehr = ScriptedEhr(fhir_response(400, outcome("invalid", "Invalid date parameter")))

    with pytest.raises(EhrError) as raised:
        make_client(ehr).search("Appointment", {"date": "tomorrow"})

    assert raised.value.status == 400
    assert len(ehr.requests) == 1


def test_create_without_if_none_exist_is_not_retried_on_503() -> None:
    ehr = ScriptedEhr(fhir_response(503))

    with pytest.raises(EhrUnavailable):
        make_client(ehr).create(reminder_communication())

    assert len(ehr.requests) == 1


def test_create_without_if_none_exist_is_not_retried_on_read_timeout() -> None:
    ehr = ScriptedEhr(httpx.ReadTimeout("timed out"))

    with pytest.raises(EhrUnavailable):
        make_client(ehr).create(reminder_communication())

    assert len(ehr.requests) == 1


def test_create_is_retried_when_connection_was_refused_before_sending() -> None:
    created = stored(reminder_communication(), "COM-48213")
    ehr = ScriptedEhr(httpx.ConnectError("refused"), fhir_response(201, created))

    result = make_client(ehr).create(reminder_communication())

    assert result["id"] == "COM-48213"
    assert len(ehr.requests) == 2


def test_conditional_create_is_retried_on_503() -> None:
    created = stored(reminder_communication(), "COM-48213")
    ehr = ScriptedEhr(fhir_response(503), fhir_response(201, created))

    result = make_client(ehr).create(
        reminder_communication(),
        if_none_exist="identifier=urn:fhir-bridge:outreach|outreach-7f3c2a91",
    )

    assert result["id"] == "COM-48213"
    assert len(ehr.requests) == 2


@pytest.mark.parametrize("status", [500, 502, 504])
def test_read_is_retried_on_transient_server_errors(status: int) -> None:
    ehr = ScriptedEhr(fhir_response(status), fhir_response(200, booked_appointment()))

    make_client(ehr).read("Appointment", APPOINTMENT_ID)

    assert len(ehr.requests) == 2


def test_update_is_retried_on_500_because_put_is_idempotent() -> None:
    updated = booked_appointment(version="5")
    ehr = ScriptedEhr(fhir_response(500), fhir_response(200, updated))

    result = make_client(ehr).update(booked_appointment())

    assert result["meta"]["versionId"] == "5"
    assert len(ehr.requests) == 2


def test_exhausted_retries_raise_unavailable_with_last_status() -> None:
    ehr = ScriptedEhr(*[fhir_response(503) for _ in range(3)])
    sleeps: list[float] = []

    with pytest.raises(EhrUnavailable) as raised:
        make_client(ehr, sleeps, RetryPolicy(max_attempts=3)).read("Appointment", APPOINTMENT_ID)

    assert raised.value.status == 503
    assert len(ehr.requests) == 3
    assert len(sleeps) == 2


def test_exhausted_connection_failures_raise_unavailable_without_status() -> None:
    ehr = ScriptedEhr(*[httpx.ConnectError("refused") for _ in range(2)])

    with pytest.raises(EhrUnavailable) as raised:
        make_client(ehr, retry=RetryPolicy(max_attempts=2)).read("Appointment", APPOINTMENT_ID)

    assert raised.value.status is None
    assert "ConnectError" in str(raised.value)
