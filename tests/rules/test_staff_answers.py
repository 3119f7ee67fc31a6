"""Staff answers to a patient's reply: approved templates, consent on the reply channel,
quiet hours in the patient's zone, the patient's language, checked when the rules load."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from rules.answers import (
    AnswerRequest,
    is_staff_answer,
    plan_answer,
    prepare_answer_delivery,
    preview_answers,
)
from rules.config import DEFAULT_TEMPLATE_DIR, RulesConfigError
from rules.consent import LedgerEntry
from rules.model import PatientSnapshot, PlannedMessage, PreparedDelivery, WithheldMessage
from rules.sms_length import sms_segments
from tests.rules.factories import config_with, default_config, english_patient, patient, utc

PATIENT_REF = "Patient/eXbMln3hu0PfFrpv2HgVHyg3"
PRACTITIONER = "Practitioner/eM5CWtq15N0WJeuCet5bJlQ3"
REPLY = "Communication/in-8812"
MORNING_IN_BOSTON = utc("2026-12-01T15:00")  # 10:00 EST
NIGHT_IN_BOSTON = utc("2026-12-02T03:30")  # 22:30 EST


def _request(answer: str = "call-us") -> AnswerRequest:
    return AnswerRequest(
        item_id=41,
        answer_id=answer,
        reply_channel="sms",
        in_response_to=REPLY,
        author=PRACTITIONER,
    )


def _stop(channel: str = "sms", purpose: str = "*") -> LedgerEntry:
    """A STOP texted back (or a staff opt-out) for every number on the channel."""
    return LedgerEntry(
        id="77",
        patient_ref=PATIENT_REF,
        channel=channel,
        address=None,
        purpose=purpose,
        action="opt-out",
        recorded_at=utc("2026-11-28T12:00"),
        source="sms-keyword",
    )


def _plan(
    resource: dict[str, Any] | None,
    now: datetime = MORNING_IN_BOSTON,
    ledger: tuple[LedgerEntry, ...] = (),
    answer: str = "call-us",
) -> PlannedMessage | WithheldMessage:
    snapshot = PatientSnapshot(PATIENT_REF, resource, ())
    return plan_answer(_request(answer), snapshot, [], ledger, default_config(), now)


@dataclass(frozen=True)
class Case:
    resource: dict[str, Any]
    answer: str
    language: str
    says: str


CASES = [
    pytest.param(
        Case(english_patient(), "call-us", "en", "Please call us so we can help you."),
        id="english-call-us",
    ),
    pytest.param(
        Case(patient(), "call-us", "es", "por favor llame a nuestra oficina."),
        id="spanish-call-us",
    ),
    pytest.param(
        Case(patient(), "appointment-confirmed", "es", "Su cita queda confirmada."),
        id="spanish-appointment-confirmed",
    ),
    pytest.param(
        Case(english_patient(), "reschedule-link", "en", "https://portal.example.org/visits"),
        id="english-reschedule-link-prints-the-portal",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_answer_goes_now_in_the_patients_language(case: Case) -> None:
    planned = _plan(case.resource, answer=case.answer)

    assert isinstance(planned, PlannedMessage)
    assert (planned.language, planned.send_at) == (case.language, MORNING_IN_BOSTON)
    _, previews = preview_answers(case.resource, "sms", default_config(), MORNING_IN_BOSTON)
    text = next(p.text for p in previews if p.id == case.answer)
    assert text is not None and case.says in text
    assert sms_segments(text) == ("gsm7", 1)


def test_answer_carries_only_the_clinics_name_phone_and_link() -> None:
    planned = _plan(patient())

    assert isinstance(planned, PlannedMessage)
    assert set(planned.variables) == {"clinic_name", "clinic_phone", "link"}
    assert "Mari" not in str(planned.variables)


def test_answer_at_night_in_the_patients_zone_is_held_to_the_morning() -> None:
    planned = _plan(patient(), now=NIGHT_IN_BOSTON)

    assert isinstance(planned, PlannedMessage)
    assert planned.send_at == utc("2026-12-02T13:00")  # 08:00 EST
    assert planned.trace["quiet_hours"] == "moved-after-quiet-hours"


def test_answer_to_a_patient_who_texted_stop_is_withheld_as_opted_out() -> None:
    withheld = _plan(patient(), ledger=(_stop(),))

    assert isinstance(withheld, WithheldMessage)
    assert withheld.reason == "opted-out"
    assert withheld.trace["consent"]["channel"] == "sms"


def test_email_opt_out_does_not_stop_an_answer_by_text() -> None:
    planned = _plan(patient(), ledger=(_stop(channel="email"),))

    assert isinstance(planned, PlannedMessage)


def test_answer_never_falls_back_to_email_when_there_is_no_mobile() -> None:
    resource = patient()
    resource["telecom"] = [t for t in resource["telecom"] if t["system"] == "email"]

    withheld = _plan(resource)

    assert isinstance(withheld, WithheldMessage)
    assert withheld.reason == "no-contact"


def test_answer_to_a_deceased_patient_is_withheld() -> None:
    withheld = _plan(patient(deceasedDateTime="2026-11-30T08:15:00-05:00"))

    assert isinstance(withheld, WithheldMessage)
    assert withheld.reason == "deceased"


def test_answer_records_who_chose_it_and_the_reply_it_answers() -> None:
    planned = _plan(english_patient())

    assert isinstance(planned, PlannedMessage)
    assert is_staff_answer(planned.key)
    assert (planned.trace["by"], planned.trace["in_response_to"]) == (PRACTITIONER, REPLY)
    assert planned.purpose == "care-coordination"


def test_an_answer_the_rules_file_does_not_approve_is_refused() -> None:
    with pytest.raises(ValueError, match="not approved"):
        _plan(patient(), answer="diagnosis-results")


def test_a_stop_after_the_answer_was_planned_withholds_it_at_send_time() -> None:
    planned = _plan(patient())
    assert isinstance(planned, PlannedMessage)
    snapshot = PatientSnapshot(PATIENT_REF, patient(), ())

    decision = prepare_answer_delivery(
        planned, snapshot, [], [_stop()], default_config(), MORNING_IN_BOSTON
    )

    assert isinstance(decision, WithheldMessage)
    assert decision.reason == "opted-out"


def test_an_answer_is_delivered_by_text_to_the_patients_mobile() -> None:
    planned = _plan(patient())
    assert isinstance(planned, PlannedMessage)
    snapshot = PatientSnapshot(PATIENT_REF, patient(), ())

    decision = prepare_answer_delivery(
        planned, snapshot, [], [], default_config(), MORNING_IN_BOSTON
    )

    assert isinstance(decision, PreparedDelivery)
    assert (decision.channel, decision.address) == ("sms", "+16175550142")
    assert decision.rendered.text.endswith("Responda BAJA para no recibir SMS.")


def _templates(tmp_path: Path) -> Path:
    for path in DEFAULT_TEMPLATE_DIR.rglob("*.j2"):
        target = tmp_path / "templates" / path.relative_to(DEFAULT_TEMPLATE_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return tmp_path / "templates"


def _load_problems(templates: Path) -> list[str]:
    with pytest.raises(RulesConfigError) as caught:
        config_with({"templates": {"directory": str(templates)}})
    return caught.value.problems


def test_an_answer_naming_the_patient_is_rejected_when_the_rules_load(tmp_path: Path) -> None:
    templates = _templates(tmp_path)
    (templates / "es" / "staff-answer-call-us.sms.j2").write_text("Hola {{ first_name }}, llame.")

    assert _load_problems(templates) == [
        "template es/staff-answer-call-us.sms.j2: a staff answer may only use "
        "clinic_name, clinic_phone, link, not first_name"
    ]


def test_an_answer_without_its_spanish_text_is_rejected_when_the_rules_load(
    tmp_path: Path,
) -> None:
    templates = _templates(tmp_path)
    (templates / "es" / "staff-answer-we-will-call-you.sms.j2").unlink()

    assert _load_problems(templates) == [
        "staff answer we-will-call-you: template es/staff-answer-we-will-call-you.sms.j2 missing"
    ]


def test_an_answer_outside_gsm7_is_rejected_when_the_rules_load(tmp_path: Path) -> None:
    templates = _templates(tmp_path)
    (templates / "en" / "staff-answer-call-us.sms.j2").write_text("Call \u2615")

    (problem,) = _load_problems(templates)
    assert problem.startswith("template en/staff-answer-call-us.sms.j2: ")
    assert "must fit one GSM-7 SMS" in problem


def test_answers_must_name_a_consent_purpose() -> None:
    with pytest.raises(RulesConfigError) as caught:
        config_with({"staff_answers": {"purpose": "marketing-blast"}})

    assert caught.value.problems == [
        "staff_answers.purpose: 'marketing-blast' is not a consent purpose"
    ]
