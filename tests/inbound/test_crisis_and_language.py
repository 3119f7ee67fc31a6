"""Inbound SMS through the whole processing path: crisis first (also when the same text is an
opt-out), ambiguous cancels get one question back, and every answer is in the patient's
language (Spanish for a patient whose reminders are in Spanish)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from fhir_bridge.inbound import repository
from fhir_bridge.inbound.jobs import process_inbound_message
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import InboundMessage, LedgerEntry, SmsReply, StaffInboxItem
from rules.sms_length import sms_segments
from tests.inbound.conftest import (
    APPOINTMENT_ID,
    PATIENT_PHONE,
    PATIENT_REF,
    TwoWay,
    appointment,
    seed_reminder,
)

SPANISH_REMINDER = (
    "Hola Lucia, recordatorio: cita el jue 3 dic a las 9:30 AM. Responda C para confirmar, "
    "R para cambiar la cita. Riverside Health (555) 010-0100. Responda STOP para darse de baja."
)
EN_CRISIS = (
    "If you are in danger or thinking about harming yourself, call or text 988 "
    "(Suicide & Crisis Lifeline) or call 911. Riverside Health"
)
ES_CRISIS = (
    "Si esta en peligro o piensa en hacerse daño, llame al 988 y marque 2, o envie AYUDA al "
    "988. Emergencias: 911. Riverside Health"
)
EN_OPT_OUT = (
    "You are unsubscribed from Riverside Health messages. No more messages will be sent. "
    "Reply START to resubscribe."
)
ES_OPT_OUT = (
    "Se dio de baja de los mensajes de Riverside Health. No recibira mas mensajes. "
    "Responda START para volver a recibirlos."
)


def _receive(two_way: TwoWay, body: str, sid: str, sender: str = PATIENT_PHONE) -> str:
    response = two_way.inbound(body, sid=sid, sender=sender)
    assert response.status_code == 200
    inbound_id = two_way.enqueued[-1][1][0]
    return process_inbound_message(two_way.runtime, inbound_id)


def _sid(n: int) -> str:
    return f"SM{n:032x}"


def _created_order(two_way: TwoWay) -> list[str]:
    """EHR resources in the order they were created (the in-memory EHR counts ids up)."""
    created = [r for r in two_way.ehr.resources.values() if r["id"].isdigit()]
    return [r["resourceType"] for r in sorted(created, key=lambda r: int(r["id"]))]


def _replies(two_way: TwoWay) -> list[tuple[str, str]]:
    with transaction(two_way.runtime.sessions) as session:
        rows = session.scalars(select(SmsReply).order_by(SmsReply.created_at, SmsReply.key))
        return [(row.kind, row.status) for row in rows]


@pytest.fixture
def reminded(two_way: TwoWay) -> TwoWay:
    """An English-speaking patient got an SMS reminder awaiting confirmation."""
    seed_reminder(two_way.runtime)
    two_way.ehr.put(appointment())
    return two_way


@pytest.fixture
def reminded_es(two_way: TwoWay) -> TwoWay:
    """A patient whose reminders are in Spanish got one awaiting confirmation."""
    seed_reminder(two_way.runtime, language="es", text=SPANISH_REMINDER)
    two_way.ehr.put(appointment())
    return two_way


# --- Crisis first ------------------------------------------------------------------------


def test_crisis_with_stop_sends_resources_before_the_opt_out_confirmation(
    reminded: TwoWay,
) -> None:
    outcome = _receive(reminded, "STOP I'm going to kill myself", _sid(1))

    assert outcome == "crisis"
    assert reminded.sms.texts_to(PATIENT_PHONE) == [EN_CRISIS, EN_OPT_OUT]


def test_crisis_with_stop_creates_the_urgent_task_before_the_consent(reminded: TwoWay) -> None:
    _receive(reminded, "STOP I'm going to kill myself", _sid(2))

    assert _created_order(reminded) == ["Communication", "Task", "Consent"]
    (task,) = reminded.ehr.of_type("Task")
    assert task["priority"] == "stat"
    assert task["code"]["text"] == "urgent-patient-message"
    assert "do not text" in task["description"]


def test_crisis_with_stop_still_honours_the_opt_out(reminded: TwoWay) -> None:
    _receive(reminded, "stop. I want to kill myself", _sid(3))

    with transaction(reminded.runtime.sessions) as session:
        actions = [e.action for e in session.scalars(select(LedgerEntry))]
    assert actions == ["opt-out"]
    (consent,) = reminded.ehr.of_type("Consent")
    assert consent["provision"]["type"] == "deny"
    assert _replies(reminded) == [("crisis", "sent"), ("opt-out", "sent")]


def test_crisis_with_stop_opens_one_urgent_inbox_item(reminded: TwoWay) -> None:
    _receive(reminded, "STOP I'm going to kill myself", _sid(4))

    with transaction(reminded.runtime.sessions) as session:
        items = repository.open_inbox_items(session, PATIENT_REF, 10)
        assert [(i.kind, i.priority) for i in items] == [("crisis", "stat")]


def test_crisis_with_stop_processed_again_repeats_nothing(reminded: TwoWay) -> None:
    _receive(reminded, "STOP I'm going to kill myself", _sid(5))
    inbound_id = reminded.enqueued[-1][1][0]
    with transaction(reminded.runtime.sessions) as session:
        row = session.get(InboundMessage, inbound_id)
        assert row is not None
        row.status, row.steps_done = "pending", []

    process_inbound_message(reminded.runtime, inbound_id)

    assert reminded.sms.texts_to(PATIENT_PHONE) == [EN_CRISIS, EN_OPT_OUT]
    assert sorted(_created_order(reminded)) == ["Communication", "Consent", "Task"]


def test_spanish_crisis_gets_spanish_resources_and_an_urgent_task(reminded: TwoWay) -> None:
    assert _receive(reminded, "ya no quiero vivir, me quiero matar", _sid(6)) == "crisis"

    assert reminded.sms.texts_to(PATIENT_PHONE) == [ES_CRISIS]
    (task,) = reminded.ehr.of_type("Task")
    assert task["priority"] == "stat"


def test_crisis_from_an_unknown_number_still_gets_resources_and_a_human(
    two_way: TwoWay,
) -> None:
    stranger = "+16175559876"

    outcome = _receive(two_way, "i want to end my life", _sid(7), sender=stranger)

    assert outcome == "unknown-sender-crisis"
    assert two_way.sms.texts_to(stranger) == [EN_CRISIS]
    with transaction(two_way.runtime.sessions) as session:
        items = list(session.scalars(select(StaffInboxItem)))
    assert [(i.kind, i.priority, i.patient_ref) for i in items] == [("crisis", "stat", None)]
    (task,) = two_way.ehr.of_type("Task")
    assert task["priority"] == "stat"
    assert "for" not in task
    assert task["input"][0]["valueString"] == stranger
    assert items[0].task_ref == f"Task/{task['id']}"


def test_look_alike_is_acknowledged_not_escalated(reminded: TwoWay) -> None:
    assert _receive(reminded, "this wait is killing me", _sid(8)) == "other"

    assert reminded.ehr.of_type("Task") == []
    assert reminded.sms.texts_to(PATIENT_PHONE)[0].startswith("Thank you, Riverside Health")


# --- Ambiguous cancels -------------------------------------------------------------------


def test_cancel_my_appointment_asks_once_and_changes_nothing(reminded: TwoWay) -> None:
    assert _receive(reminded, "cancel my appointment", _sid(9)) == "ambiguous-cancel"

    assert reminded.sms.texts_to(PATIENT_PHONE) == [
        "Riverside Health: to cancel a visit, please call (555) 010-0100. Or reply C to "
        "confirm, R to reschedule, STOP to stop texts."
    ]
    assert reminded.ehr.updates == []
    assert reminded.ehr.of_type("Consent") == []
    with transaction(reminded.runtime.sessions) as session:
        assert list(session.scalars(select(LedgerEntry))) == []
    stored = reminded.ehr.resources[f"Appointment/{APPOINTMENT_ID}"]
    assert stored["status"] == "booked"


def test_cancel_my_appointment_reaches_staff_as_a_message(reminded: TwoWay) -> None:
    _receive(reminded, "I need to cancel", _sid(10))

    (communication,) = reminded.ehr.of_type("Communication")
    assert communication["category"][0]["coding"][0]["code"] == "ambiguous-cancel"
    with transaction(reminded.runtime.sessions) as session:
        items = repository.open_inbox_items(session, PATIENT_REF, 10)
        assert [(i.kind, i.priority) for i in items] == [("message", "routine")]


def test_cancelar_mi_cita_asks_in_spanish(reminded_es: TwoWay) -> None:
    _receive(reminded_es, "cancelar mi cita", _sid(11))

    assert reminded_es.sms.texts_to(PATIENT_PHONE) == [
        "Riverside Health: para cancelar la cita llame al (555) 010-0100. O responda C para "
        "confirmar, R para cambiarla, STOP para no recibir mensajes."
    ]


def test_bare_cancel_is_an_opt_out(reminded: TwoWay) -> None:
    assert _receive(reminded, "CANCEL", _sid(12)) == "opt-out"

    assert reminded.sms.texts_to(PATIENT_PHONE) == [EN_OPT_OUT]


# --- Replies in the patient's language ---------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("ALTO", ES_OPT_OUT, id="alto"),
        pytest.param("STOP", ES_OPT_OUT, id="stop"),
        pytest.param("no me manden mensajes", ES_OPT_OUT, id="plain-spanish-revocation"),
        pytest.param(
            "AYUDA",
            "Riverside Health: recordatorios de citas y cuidado. Ayuda: (555) 010-0100. "
            "Responda STOP para darse de baja. Pueden aplicar tarifas.",
            id="ayuda",
        ),
        pytest.param(
            "HELP",
            "Riverside Health: recordatorios de citas y cuidado. Ayuda: (555) 010-0100. "
            "Responda STOP para darse de baja. Pueden aplicar tarifas.",
            id="help-keyword-answered-in-spanish",
        ),
        pytest.param(
            "¿Puedo llevar a mi hija?",
            "Gracias, Riverside Health recibio su mensaje. Este numero no se revisa para "
            "urgencias: llame al (555) 010-0100, o al 911.",
            id="free-text-acknowledgement",
        ),
        pytest.param(
            "R",
            "Gracias. Riverside Health le llamara para buscar otra hora. "
            "Preguntas: (555) 010-0100.",
            id="reschedule",
        ),
        pytest.param("Sí", "Gracias, su cita esta confirmada. Riverside Health", id="si"),
    ],
)
def test_spanish_patient_is_answered_in_spanish(
    reminded_es: TwoWay, body: str, expected: str
) -> None:
    _receive(reminded_es, body, _sid(20))

    assert reminded_es.sms.texts_to(PATIENT_PHONE) == [expected]


def test_spanish_patient_start_confirmation_is_in_spanish(reminded_es: TwoWay) -> None:
    _receive(reminded_es, "BAJA", _sid(21))

    _receive(reminded_es, "START", _sid(22))

    assert reminded_es.sms.texts_to(PATIENT_PHONE)[-1] == (
        "Recibira de nuevo mensajes de Riverside Health. Responda AYUDA para ayuda, "
        "STOP para darse de baja. Pueden aplicar tarifas."
    )


def test_english_patient_writing_spanish_crisis_words_gets_spanish_resources(
    reminded: TwoWay,
) -> None:
    _receive(reminded, "quiero morirme", _sid(23))

    assert reminded.sms.texts_to(PATIENT_PHONE) == [ES_CRISIS]


def test_english_patient_opt_out_stays_in_the_patient_language(reminded: TwoWay) -> None:
    _receive(reminded, "ALTO", _sid(24))

    assert reminded.sms.texts_to(PATIENT_PHONE) == [EN_OPT_OUT]


def test_unknown_number_writing_spanish_gets_the_spanish_generic_reply(two_way: TwoWay) -> None:
    _receive(two_way, "Hola, quien es?", _sid(25), sender="+16175559876")

    assert two_way.sms.texts_to("+16175559876") == [
        "Este numero no puede leer respuestas; llame a su clinica al (555) 010-0100."
    ]


def test_every_spanish_reply_sent_is_one_gsm7_segment(reminded_es: TwoWay) -> None:
    for n, body in enumerate(["AYUDA", "cancelar mi cita", "quiero morirme", "hola", "ALTO"]):
        _receive(reminded_es, body, _sid(30 + n))

    texts: list[Any] = reminded_es.sms.texts_to(PATIENT_PHONE)
    assert len(texts) == 5
    assert {sms_segments(text) for text in texts} == {("gsm7", 1)}
