"""Specification of inbound SMS keyword handling (CTIA/FCC opt-out, help, replies, crisis):
which keyword matched, YES resolution, configured crisis terms and the reply language.
The broad table of realistic messages lives in tests/inbound/reply_table.yaml."""

from __future__ import annotations

import pytest

from rules.keywords import (
    InboundIntent,
    classify_inbound,
    read_inbound,
    reply_language,
    resolve_reply,
)

CASES = [
    # Opt-out keywords, in any case, spacing or punctuation.
    pytest.param("STOP", "opt-out", "STOP", id="stop"),
    pytest.param("stop", "opt-out", "STOP", id="stop-lower-case"),
    pytest.param("  Stop. ", "opt-out", "STOP", id="stop-padded-with-period"),
    pytest.param("STOP!!!", "opt-out", "STOP", id="stop-exclaimed"),
    pytest.param("s t o p", "opt-out", "STOP", id="stop-spaced-out"),
    pytest.param("Stop all", "opt-out", "STOPALL", id="stop-all-two-words"),
    pytest.param("STOPALL", "opt-out", "STOPALL", id="stopall"),
    pytest.param("Unsubscribe", "opt-out", "UNSUBSCRIBE", id="unsubscribe"),
    pytest.param("cancel", "opt-out", "CANCEL", id="cancel"),
    pytest.param("END", "opt-out", "END", id="end"),
    pytest.param("Quit", "opt-out", "QUIT", id="quit"),
    pytest.param("opt-out", "opt-out", "OPTOUT", id="opt-out-hyphenated"),
    pytest.param("Opt Out", "opt-out", "OPTOUT", id="opt-out-two-words"),
    pytest.param("REVOKE", "opt-out", "REVOKE", id="revoke"),
    pytest.param("\uff33\uff34\uff2f\uff30", "opt-out", "STOP", id="fullwidth-stop"),
    pytest.param("Please stop texting me", "opt-out", None, id="plain-language-revocation"),
    pytest.param("please stop", "opt-out", "STOP", id="stop-closing-a-short-reply"),
    pytest.param("stop. I want to kill myself", "crisis", None, id="crisis-outranks-opt-out"),
    # Spanish equivalents, as the whole reply.
    pytest.param("ALTO", "opt-out", "ALTO", id="alto"),
    pytest.param("¡Basta!", "opt-out", "BASTA", id="basta-exclaimed"),
    pytest.param("No más mensajes", "opt-out", "NOMASMENSAJES", id="no-mas-mensajes-accented"),
    pytest.param("CANCELAR", "opt-out", "CANCELAR", id="cancelar-alone"),
    pytest.param("cancelar mi cita", "ambiguous-cancel", None, id="cancelar-mi-cita-is-a-request"),
    pytest.param(
        "Can I stop taking my metformin before the colonoscopy next week?",
        "other",
        None,
        id="stop-inside-long-question-is-not-opt-out",
    ),
    pytest.param(
        "I need to cancel my appointment",
        "ambiguous-cancel",
        None,
        id="cancel-in-sentence-is-a-request",
    ),
    pytest.param("see you at the end", "other", None, id="end-in-sentence-is-not-opt-out"),
    pytest.param(
        "unsubscribe me please", "opt-out", "UNSUBSCRIBE", id="unsubscribe-in-short-reply"
    ),
    # Opt back in.
    pytest.param("START", "opt-in", "START", id="start"),
    pytest.param("unstop", "opt-in", "UNSTOP", id="unstop"),
    pytest.param("Yes", "opt-in", "YES", id="yes-is-opt-in-in-keyword-table"),
    pytest.param("YES!", "opt-in", "YES", id="yes-with-punctuation"),
    pytest.param("Sí", "opt-in", "SI", id="si-is-the-spanish-yes"),
    # Help.
    pytest.param("HELP", "help", "HELP", id="help"),
    pytest.param("Ayuda", "help", "AYUDA", id="ayuda"),
    pytest.param("info", "help", "INFO", id="info"),
    pytest.param("Help?", "help", "HELP", id="help-question-mark"),
    # Appointment replies.
    pytest.param("C", "confirm", "C", id="c-confirms"),
    pytest.param("c.", "confirm", "C", id="c-lower-with-period"),
    pytest.param("Confirm", "confirm", "CONFIRM", id="confirm-word"),
    pytest.param("Confirmar", "confirm", "CONFIRMAR", id="confirmar"),
    pytest.param("R", "reschedule", "R", id="r-reschedules"),
    pytest.param("reschedule", "reschedule", "RESCHEDULE", id="reschedule-word"),
    # Crisis: before everything except opt-out.
    pytest.param("I want to kill myself", "crisis", None, id="crisis-self-harm"),
    pytest.param("having chest pain since this morning", "crisis", None, id="crisis-chest-pain"),
    pytest.param("I cant breathe", "crisis", None, id="crisis-cant-breathe-no-apostrophe"),
    pytest.param("I can\u2019t breathe", "crisis", None, id="crisis-curly-apostrophe"),
    pytest.param("thinking about suicide", "crisis", None, id="crisis-suicide"),
    pytest.param("Help, chest pain", "crisis", None, id="crisis-outranks-help"),
    pytest.param("C but I took an overdose", "crisis", None, id="crisis-outranks-confirm"),
    # Everything else.
    pytest.param("Running 10 min late, sorry", "other", None, id="free-text"),
    pytest.param("", "other", None, id="empty-reply"),
    pytest.param("Yes please, see you Tuesday", "other", None, id="yes-in-sentence-is-not-keyword"),
    pytest.param("strokes of luck", "other", None, id="crisis-term-must-be-whole-words"),
]


@pytest.mark.parametrize(("text", "kind", "keyword"), CASES)
def test_inbound_classification(text: str, kind: str, keyword: str | None) -> None:
    assert classify_inbound(text) == InboundIntent(kind, keyword)


def test_crisis_terms_are_configurable() -> None:
    intent = classify_inbound("feeling hopeless today", crisis_terms=("hopeless",))
    assert intent.kind == "crisis"


def test_configured_crisis_terms_extend_the_built_in_patterns_never_replace_them() -> None:
    assert classify_inbound("I want to kill myself", crisis_terms=("hopeless",)).kind == "crisis"


def test_configured_crisis_terms_match_whole_words_only() -> None:
    assert classify_inbound("hopelessly late, sorry", crisis_terms=("hopeless",)).kind == "other"


def test_crisis_and_opt_out_in_one_text_are_both_read_crisis_first() -> None:
    reading = read_inbound("STOP I'm going to kill myself")

    assert reading.intents == (InboundIntent("crisis"), InboundIntent("opt-out", "STOP"))


YES = InboundIntent("opt-in", "YES")

RESOLUTIONS = [
    pytest.param(YES, True, False, True, "opt-in", id="yes-confirms-pending-double-opt-in"),
    pytest.param(YES, False, True, True, "opt-in", id="yes-after-stop-resubscribes"),
    pytest.param(YES, False, False, True, "confirm", id="yes-to-reminder-confirms-appointment"),
    pytest.param(YES, False, False, False, "other", id="yes-with-nothing-pending-is-for-staff"),
    pytest.param(
        InboundIntent("opt-in", "START"), False, False, True, "opt-in", id="start-never-confirms"
    ),
    pytest.param(
        InboundIntent("opt-in", "SI"), False, False, True, "confirm", id="si-to-reminder-confirms"
    ),
    pytest.param(
        InboundIntent("opt-in", "SI"), False, True, True, "opt-in", id="si-after-stop-resubscribes"
    ),
]


@pytest.mark.parametrize(("intent", "pending", "opted_out", "awaiting", "kind"), RESOLUTIONS)
def test_yes_resolution(
    intent: InboundIntent, pending: bool, opted_out: bool, awaiting: bool, kind: str
) -> None:
    resolved = resolve_reply(
        intent, opt_in_pending=pending, opted_out=opted_out, awaiting_confirmation=awaiting
    )
    assert resolved.kind == kind


LANGUAGES = [
    pytest.param(("es-MX", "en", "en"), "es", id="preferred-language-first-region-dropped"),
    pytest.param((None, "es", "en"), "es", id="else-the-last-message-we-sent"),
    pytest.param((None, None, "es"), "es", id="else-the-reply-own-words"),
    pytest.param((None, None, None), "en", id="else-the-default"),
    pytest.param(("fr", None, "es"), "es", id="unsupported-preference-is-skipped"),
    pytest.param(("fr", None, None), "en", id="unsupported-only-gives-the-default"),
]


@pytest.mark.parametrize(("candidates", "language"), LANGUAGES)
def test_reply_language_precedence(candidates: tuple[str | None, ...], language: str) -> None:
    assert reply_language(*candidates, supported=("en", "es"), default="en") == language
