"""The automated answers to inbound SMS: both languages say the same things, name who is
writing, fit one GSM-7 segment, and the crisis answer carries the 988/911 resources."""

from __future__ import annotations

import pytest

from rules.reply_texts import (
    MAX_CLINIC_NAME,
    REPLY_CRISIS,
    REPLY_TEXTS,
    REPLY_UNKNOWN_SENDER,
    render_reply,
)
from rules.sms_length import sms_segments

LONGEST_CLINIC = "Lakeview Community Health Ctr"[:MAX_CLINIC_NAME].ljust(MAX_CLINIC_NAME, "x")
PHONE = "+1 (555) 010-0100"
KINDS = sorted(REPLY_TEXTS["en"])
CASES = [
    pytest.param(language, kind, id=f"{language}-{kind}")
    for language in sorted(REPLY_TEXTS)
    for kind in KINDS
]


def test_every_reply_exists_in_english_and_spanish() -> None:
    assert set(REPLY_TEXTS) == {"en", "es"}
    assert set(REPLY_TEXTS["es"]) == set(REPLY_TEXTS["en"])


@pytest.mark.parametrize(("language", "kind"), CASES)
def test_reply_fits_one_gsm7_segment_with_the_longest_clinic_name(language: str, kind: str) -> None:
    text = render_reply(kind, language, clinic=LONGEST_CLINIC, phone=PHONE)

    assert sms_segments(text) == ("gsm7", 1), (len(text), text)


@pytest.mark.parametrize(("language", "kind"), CASES)
def test_reply_says_who_is_writing(language: str, kind: str) -> None:
    text = render_reply(kind, language, clinic="Riverside Health", phone=PHONE)

    if kind == REPLY_UNKNOWN_SENDER:
        assert PHONE in text  # a stranger learns a number to call, not whose patient they texted
    else:
        assert "Riverside Health" in text


def test_english_crisis_reply_gives_988_and_911() -> None:
    text = render_reply(REPLY_CRISIS, "en", clinic="Riverside Health", phone=PHONE)

    assert "call or text 988" in text and "911" in text


def test_spanish_crisis_reply_gives_the_spanish_988_line_and_911() -> None:
    text = render_reply(REPLY_CRISIS, "es", clinic="Riverside Health", phone=PHONE)

    assert "llame al 988 y marque 2" in text
    assert "envie AYUDA al 988" in text
    assert "911" in text


def test_spanish_accents_outside_gsm7_are_swapped_but_enye_is_kept() -> None:
    text = render_reply(REPLY_CRISIS, "es", clinic="Clínica Río", phone=PHONE)

    assert "Clinica Rio" in text and "daño" in text


def test_clinic_crisis_wording_replaces_english_only() -> None:
    own = "Call 988 or 911 now. Riverside Health cares."

    english = render_reply(REPLY_CRISIS, "en", clinic="R", phone=PHONE, crisis_override=own)
    spanish = render_reply(REPLY_CRISIS, "es", clinic="R", phone=PHONE, crisis_override=own)

    assert english == own
    assert "988 y marque 2" in spanish


def test_unsupported_language_falls_back_to_english() -> None:
    assert render_reply("opt-out", "fr", clinic="R", phone=PHONE).startswith("You are unsub")
