"""The ``staff_answers:`` section of the rules file: the answers staff may send to a reply.

Each entry is an id and the label staff read in the panel. The patient-facing text is a
template per supported language, ``{lang}/staff-answer-<id>.sms.j2``, rendered like every
other message (sandboxed Jinja, the SMS footer with clinic name, phone and opt-out line)
and checked when the rules load (:func:`rules.answers.check_answer_templates`).

Kept free of other ``rules`` imports: :mod:`rules.config` and
:mod:`rules.consent.policy` import it.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

PURPOSE_CARE_COORDINATION: Final = "care-coordination"
"""A staff answer to what the patient wrote: treatment-related, on the patient's own
initiative (allowed by default like reminders; a STOP or a staff opt-out stops it)."""

AnswerId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]
"""Lower-case letters, digits and dashes: it names template files."""

SHIPPED_ANSWERS: Final[dict[str, str]] = {
    "call-us": "Please call us",
    "we-will-call-you": "We will call you",
    "appointment-confirmed": "Your appointment is confirmed",
    "reschedule-link": "Reschedule online (portal link)",
}


class StaffAnswersConfig(BaseModel):
    """Approved answers to a patient's reply, and the consent purpose they are sent under."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    purpose: str = PURPOSE_CARE_COORDINATION
    answers: dict[AnswerId, Annotated[str, Field(min_length=1, max_length=80)]] = Field(
        default_factory=lambda: dict(SHIPPED_ANSWERS)
    )
