"""The pieces an SMS is built from: short dates, longest values, GSM-7 names and lengths."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from rules.formatting import (
    format_date,
    format_date_short,
    longest_sms_date,
    longest_time,
    sms_date,
)
from rules.sms_length import gsm7_variable, is_gsm7, sms_capacity, sms_units


@pytest.mark.parametrize(
    ("day", "language", "long", "short"),
    [
        (date(2026, 12, 1), "en", "Tuesday, December 1", "Tue Dec 1"),
        (date(2026, 9, 30), "en", "Wednesday, September 30", "Wed Sep 30"),
        (date(2026, 12, 1), "es", "martes 1 de diciembre", "mar 1 dic"),
        (date(2026, 9, 30), "es", "miércoles 30 de septiembre", "mié 30 sep"),
        (date(2026, 3, 7), "es", "sábado 7 de marzo", "sab 7 mar"),
    ],
)
def test_sms_date_is_the_short_form_of_the_long_date_planning_stores(
    day: date, language: str, long: str, short: str
) -> None:
    assert format_date(day, language) == long
    assert sms_date(long, language) == short
    assert format_date_short(day, language) == short


@pytest.mark.parametrize("language", ["en", "es"])
def test_every_day_of_a_leap_year_shortens_to_gsm7(language: str) -> None:
    days = [date(2028, 1, 1) + timedelta(days=n) for n in range(366)]

    shortened = [sms_date(format_date(day, language), language) for day in days]

    assert shortened == [format_date_short(day, language) for day in days]
    assert all(is_gsm7(text) and len(text) <= 10 for text in shortened)


@pytest.mark.parametrize(
    "text", ["Tue Dec 1", "next Tuesday", "martes 1 de diciembre", "2026-12-01", ""]
)
def test_text_that_is_not_a_long_english_date_is_left_alone(text: str) -> None:
    assert sms_date(text, "en") == text


def test_longest_values_per_language() -> None:
    assert len(longest_sms_date("en")) == len(longest_sms_date("es")) == 10
    assert longest_time("en") == "12:00 AM"
    assert longest_time("en", 2) == "12:00 AM and 12:00 AM"
    assert longest_time("es", 2) == "10:00 y 10:00"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("José Muñoz", "José Muñoz", id="gsm7-letters-kept"),
        pytest.param("Müller", "Müller", id="u-umlaut-kept"),
        pytest.param("Zoë", "Zoe", id="e-diaeresis-transliterated"),
        pytest.param("Nguyễn", "Nguyen", id="vietnamese"),
        pytest.param("Łukasz", "Lukasz", id="polish"),
        pytest.param("Αλέξης", "Alexis", id="greek"),
        pytest.param("李小龙", "LiXiaoLong", id="chinese"),
        pytest.param("O\u2019Brien", "O'Brien", id="typographic-apostrophe"),
        pytest.param("Anne\u2013Marie", "Anne-Marie", id="en-dash"),
        pytest.param("Ana 🌸", "Ana", id="emoji-removed-not-spelled-out"),
        pytest.param("\U0001f469\u200d\u2695\ufe0f", "", id="emoji-sequence-removed"),
        pytest.param("Clinic [North] {2}", "Clinic North 2", id="two-unit-characters-removed"),
        pytest.param("  Mari \n Luz ", "Mari Luz", id="whitespace-squashed"),
    ],
)
def test_variable_values_are_spelled_in_gsm7(value: str, expected: str) -> None:
    assert gsm7_variable(value) == expected
    assert sms_units(gsm7_variable(value)) == len(expected)


@pytest.mark.parametrize(
    ("encoding", "segments", "capacity"),
    [("gsm7", 1, 160), ("gsm7", 3, 459), ("ucs2", 1, 70), ("ucs2", 2, 134)],
)
def test_capacity_of_a_segment_cap(encoding: str, segments: int, capacity: int) -> None:
    assert sms_capacity(encoding, segments) == capacity


def test_length_counts_extension_characters_twice_and_emoji_as_two_units() -> None:
    assert sms_units("€5") == 3
    assert sms_units("ó😀") == 3
