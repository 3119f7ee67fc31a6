"""The wording of every automated answer to an inbound SMS, in English and Spanish.

Each answer names who is writing (the clinic) and fits one SMS segment (160 GSM-7
characters) for clinic names up to :data:`MAX_CLINIC_NAME` characters: Spanish is written
with its accents here and rendered through :func:`rules.sms_length.smart_encode`, which
swaps "á í ó ú" (outside GSM-7) for plain vowels so one accent cannot force UCS-2.

Crisis resources follow the 988 Suicide & Crisis Lifeline: call or text 988; in Spanish,
call 988 and press 2, or text AYUDA to 988; 911 for immediate danger.

Opt-out, opt-in and HELP follow the CTIA wording (who is writing, how to opt out or back in,
"Msg & data rates may apply"). The keywords a patient is told to send (START, STOP, C, R)
stay the same in both languages: they are what the classifier and the carrier act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from rules.sms_length import smart_encode

REPLY_OPT_OUT: Final = "opt-out"
REPLY_OPT_IN: Final = "opt-in"
REPLY_HELP: Final = "help"
REPLY_CONFIRMED: Final = "confirmed"
REPLY_NOT_CONFIRMED: Final = "not-confirmed"
REPLY_RESCHEDULE: Final = "reschedule"
REPLY_CRISIS: Final = "crisis"
REPLY_RECEIVED: Final = "received"
REPLY_CLARIFY_CANCEL: Final = "clarify-cancel"
REPLY_UNKNOWN_SENDER: Final = "unknown-sender"
REPLY_HEALTH_TIPS_JOINED: Final = "health-tips-joined"
"""The CTIA opt-in confirmation after a YES to the health-tips invitation: programme, sender,
frequency, "Msg & data rates may apply", HELP and STOP (the invitation's own wording is the
invitation below)."""
INVITE_HEALTH_TIPS: Final = "health-tips-invite"
"""Not an answer but the outbound invitation to health tips (``rules.optin``): it asks for
the double opt-in with the CTIA call-to-action (sender, programme, frequency, "Msg & data
rates may apply", HELP, STOP). Kept here, not in a clinic-editable template, so the
required wording cannot be edited away; the YES it asks for is the same in both languages
(SÍ is accepted too)."""

MAX_CLINIC_NAME: Final = 30
"""The longest clinic name every reply is checked to fit one segment with (tests)."""

REPLY_TEXTS: Final[Mapping[str, Mapping[str, str]]] = {
    "en": {
        REPLY_OPT_OUT: (
            "You are unsubscribed from {clinic} messages. No more messages will be sent. "
            "Reply START to resubscribe."
        ),
        REPLY_OPT_IN: (
            "You are subscribed to {clinic} messages again. Reply HELP for help, "
            "STOP to opt out. Msg & data rates may apply."
        ),
        REPLY_HELP: (
            "{clinic}: appointment and care reminders. For help call {phone}. "
            "Reply STOP to opt out. Msg & data rates may apply."
        ),
        REPLY_CONFIRMED: "Thank you, your appointment is confirmed. {clinic}",
        REPLY_NOT_CONFIRMED: (
            "We could not confirm that appointment by text. Please call {clinic} at {phone}."
        ),
        REPLY_RESCHEDULE: (
            "Thank you. {clinic} will call you to find a new time. Questions: {phone}."
        ),
        REPLY_CRISIS: (
            "If you are in danger or thinking about harming yourself, call or text 988 "
            "(Suicide & Crisis Lifeline) or call 911. {clinic}"
        ),
        REPLY_RECEIVED: (
            "Thank you, {clinic} received your message. This number is not watched for "
            "urgent needs: call {phone}, or 911 in an emergency."
        ),
        REPLY_CLARIFY_CANCEL: (
            "{clinic}: to cancel a visit, please call {phone}. Or reply C to confirm, "
            "R to reschedule, STOP to stop texts."
        ),
        REPLY_UNKNOWN_SENDER: "This number can't read replies; call your clinic at {phone}.",
        REPLY_HEALTH_TIPS_JOINED: (
            "You're signed up for health tips from {clinic}, about 2 a month. "
            "Msg&data rates may apply. Reply HELP for help, STOP to opt out."
        ),
        INVITE_HEALTH_TIPS: (
            "{clinic}: reply YES to get health tips by text, about 2 a month. "
            "Msg&data rates may apply. Reply HELP for help, STOP to opt out."
        ),
    },
    "es": {
        REPLY_OPT_OUT: (
            "Se dio de baja de los mensajes de {clinic}. No recibirá más mensajes. "
            "Responda START para volver a recibirlos."
        ),
        REPLY_OPT_IN: (
            "Recibirá de nuevo mensajes de {clinic}. Responda AYUDA para ayuda, "
            "STOP para darse de baja. Pueden aplicar tarifas."
        ),
        REPLY_HELP: (
            "{clinic}: recordatorios de citas y cuidado. Ayuda: {phone}. "
            "Responda STOP para darse de baja. Pueden aplicar tarifas."
        ),
        REPLY_CONFIRMED: "Gracias, su cita está confirmada. {clinic}",
        REPLY_NOT_CONFIRMED: (
            "No pudimos confirmar esa cita por mensaje. Por favor llame a {clinic} al {phone}."
        ),
        REPLY_RESCHEDULE: (
            "Gracias. {clinic} le llamará para buscar otra hora. Preguntas: {phone}."
        ),
        REPLY_CRISIS: (
            "Si está en peligro o piensa en hacerse daño, llame al 988 y marque 2, o envíe "
            "AYUDA al 988. Emergencias: 911. {clinic}"
        ),
        REPLY_RECEIVED: (
            "Gracias, {clinic} recibió su mensaje. Este número no se revisa para urgencias: "
            "llame al {phone}, o al 911."
        ),
        REPLY_CLARIFY_CANCEL: (
            "{clinic}: para cancelar la cita llame al {phone}. O responda C para confirmar, "
            "R para cambiarla, STOP para no recibir mensajes."
        ),
        REPLY_UNKNOWN_SENDER: (
            "Este número no puede leer respuestas; llame a su clínica al {phone}."
        ),
        REPLY_HEALTH_TIPS_JOINED: (
            "Se inscribió en consejos de salud de {clinic}, unos 2 al mes. Pueden aplicar "
            "tarifas. Responda AYUDA para ayuda, STOP para darse de baja."
        ),
        INVITE_HEALTH_TIPS: (
            "{clinic}: responda SÍ para recibir consejos de salud por SMS, unos 2 al mes. "
            "Pueden aplicar tarifas. Responda STOP para darse de baja."
        ),
    },
}
"""Wording per language and reply kind; ``{clinic}`` and ``{phone}`` are filled in."""

REPLY_LANGUAGES: Final = frozenset(REPLY_TEXTS)
DEFAULT_REPLY_LANGUAGE: Final = "en"


def render_reply(
    kind: str,
    language: str,
    *,
    clinic: str,
    phone: str,
    crisis_override: str | None = None,
) -> str:
    """The text of one reply; an unknown language falls back to English.

    ``crisis_override`` replaces the English crisis text only (a clinic's own wording,
    ``FHIR_BRIDGE_CRISIS_REPLY_TEXT``); other languages keep the built-in resources.
    """
    texts = REPLY_TEXTS.get(language) or REPLY_TEXTS[DEFAULT_REPLY_LANGUAGE]
    if kind == REPLY_CRISIS and crisis_override and language == DEFAULT_REPLY_LANGUAGE:
        return crisis_override
    return smart_encode(texts[kind].format(clinic=clinic, phone=phone))
