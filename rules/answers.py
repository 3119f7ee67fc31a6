"""Staff answers to a patient's reply with an approved template (pure: no I/O).

A member of staff answers what the patient wrote, from the panel, by picking one of the
answers the rules file approves (``staff_answers:``, :mod:`rules.answer_config`). This
module decides whether and when that answer may go, and as what text:

* **Consent** is checked for the channel the patient replied on (an answer never moves
  to another channel), under the ``staff_answers.purpose`` purpose (shipped:
  ``care-coordination``), after the same patient protections as every message.
* **Minimum necessary**: the text is a fixed, approved template whose only variables
  are the clinic's name, callback number and portal link, never a name, place, date,
  diagnosis or medication (checked when the rules load, :func:`check_answer_templates`).
* **Quiet hours**: an answer may go at once, unless it is night where the patient reads
  it; then it is held to the morning (the same window as every message).
* **Language**: the patient's own, as for every message.

The answer is stored as a planned message with a key of its own
(:func:`answer_key`, prefix :data:`ANSWER_KEY_PREFIX`): re-planning only reconciles
keys its rules produce and leaves these alone (:func:`is_staff_answer`). Frequency caps
do not apply: the patient wrote first, and an answer is not outreach.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from rules.config import RulesConfig
from rules.consent import LedgerEntry
from rules.consent.delivery import WITHHELD_NO_CONTACT, consent_on_channel, withheld_reason
from rules.context import PlanningContext
from rules.model import PatientSnapshot, PlannedMessage, PreparedDelivery, WithheldMessage
from rules.outreach import REASON_RENDER_FAILED, REASON_TOO_LONG
from rules.protections import check_protections
from rules.sms_length import sms_segments
from rules.templates import (
    SMS_SUFFIX,
    MessageTooLongError,
    TemplateRenderError,
    _environment,
    limited_template_problem,
    longest_sms_variables,
    render,
)

ANSWER_RULE: Final = "staff-answer"
ANSWER_KEY_PREFIX: Final = "staff-answer|"
TEMPLATE_PREFIX: Final = "staff-answer-"
ANSWER_VARIABLES: Final = frozenset({"clinic_name", "clinic_phone", "link"})
"""All an answer may print: the clinic's name, its callback number and the portal link."""
ANSWER_CHANNELS: Final = ("sms",)
"""Channels a patient replies on (inbound SMS); answers are checked for each."""


class UnknownAnswer(ValueError):
    """The answer id is not one the rules file approves."""


def answer_key(item_id: int, answer_id: str) -> str:
    """The stable key of one answer to one inbox item (a double submit finds it)."""
    return f"{ANSWER_KEY_PREFIX}{item_id}|{answer_id}"


def is_staff_answer(key: str) -> bool:
    """True for a staff answer's key: re-planning never cancels or reschedules it."""
    return key.startswith(ANSWER_KEY_PREFIX)


def answer_template(answer_id: str) -> str:
    """The template name of an approved answer (``staff-answer-call-us``)."""
    return TEMPLATE_PREFIX + answer_id


@dataclass(frozen=True)
class AnswerRequest:
    """What staff asked for: which answer, to which reply, on which channel, by whom."""

    item_id: int
    answer_id: str
    reply_channel: str
    in_response_to: str | None
    author: str | None


@dataclass(frozen=True)
class AnswerPreview:
    """One approved answer as the patient would read it (the panel's "Reply" dialog)."""

    id: str
    label: str
    text: str | None
    problem: str | None = None


@dataclass(frozen=True)
class _ChannelDecision:
    allowed: bool
    reason: str | None
    address: str | None
    used: tuple[str, ...]
    trace: Mapping[str, Any]


def _decide_channel(
    patient: Mapping[str, Any] | None,
    consents: Sequence[Mapping[str, Any]],
    ledger: Sequence[LedgerEntry],
    purpose: str,
    channel: str,
    config: RulesConfig,
    now: datetime,
) -> _ChannelDecision:
    """Protections, then a contact and consent on the reply channel only."""
    policy = config.consent
    protection = check_protections(patient, purpose, now, policy)
    if protection is not None:
        return _ChannelDecision(False, protection, None, (), {"protection": protection})
    found = consent_on_channel(patient, consents, ledger, purpose, channel, now, policy)
    if found is None:
        return _ChannelDecision(
            False, WITHHELD_NO_CONTACT, None, (), {"channel": channel, "outcome": "no-contact"}
        )
    contact, decision = found
    trace = {
        "channel": channel,
        "purpose": purpose,
        "contact": contact.source,
        "outcome": decision.reason,
        "used": list(decision.used),
        "decision": dict(decision.trace),
    }
    if not decision.allowed:
        return _ChannelDecision(False, withheld_reason(decision), None, decision.used, trace)
    return _ChannelDecision(True, None, contact.address, decision.used, trace)


def answer_variables(config: RulesConfig) -> dict[str, str]:
    """The organisation's name, callback number and portal link (nothing about the patient)."""
    organization = config.organization
    return {
        "clinic_name": organization.clinic_name,
        "clinic_phone": organization.clinic_phone,
        "link": organization.link,
    }


def _require_known(answer_id: str, config: RulesConfig) -> str:
    label = config.staff_answers.answers.get(answer_id)
    if label is None:
        raise UnknownAnswer("answer not approved in the rules file")
    return label


def plan_answer(
    request: AnswerRequest,
    snapshot: PatientSnapshot,
    consents: Sequence[Mapping[str, Any]],
    ledger: Sequence[LedgerEntry],
    config: RulesConfig,
    now: datetime,
) -> PlannedMessage | WithheldMessage:
    """The answer as a message to send (now, or in the morning), or why it may not go.

    Raises :class:`UnknownAnswer` for an id the rules file does not approve.
    """
    label = _require_known(request.answer_id, config)
    now = now.astimezone(UTC)
    purpose = config.staff_answers.purpose
    context = PlanningContext.build(snapshot, config, now)
    prompt = context.send_now()
    template = answer_template(request.answer_id)
    variables = answer_variables(config)
    trace: dict[str, Any] = {
        "rule": ANSWER_RULE,
        "answer": request.answer_id,
        "answer_label": label,
        "inbox_item": request.item_id,
        "in_response_to": request.in_response_to,
        "by": request.author,
        "reply_channel": request.reply_channel,
        **context.send_now_trace(prompt),
    }
    message = PlannedMessage(
        key=answer_key(request.item_id, request.answer_id),
        rule=ANSWER_RULE,
        purpose=purpose,
        patient_ref=snapshot.patient_ref,
        about=(),
        send_at=prompt.send_at,
        template=template,
        language=context.language,
        variables=variables,
        trace=trace,
    )
    channel = _decide_channel(
        snapshot.patient, consents, ledger, purpose, request.reply_channel, config, now
    )
    trace["consent"] = dict(channel.trace)
    if not channel.allowed:
        reason = channel.reason or "no-consent"
        return message.withhold(reason, f"not allowed on {request.reply_channel}", trace)
    try:
        render(template, context.language, request.reply_channel, variables, config)
    except MessageTooLongError as error:
        return message.withhold(REASON_TOO_LONG, str(error), trace)
    except TemplateRenderError as error:
        return message.withhold(REASON_RENDER_FAILED, str(error), trace)
    return message


def preview_answers(
    patient: Mapping[str, Any] | None, channel: str, config: RulesConfig, now: datetime
) -> tuple[str, list[AnswerPreview]]:
    """Every approved answer rendered as the patient would read it, and in which language."""
    snapshot = PatientSnapshot(patient_ref="", patient=patient, resources=())
    language = PlanningContext.build(snapshot, config, now).language
    variables = answer_variables(config)
    previews = []
    for answer_id, label in config.staff_answers.answers.items():
        try:
            rendered = render(answer_template(answer_id), language, channel, variables, config)
        except TemplateRenderError as error:
            previews.append(AnswerPreview(answer_id, label, None, str(error)))
            continue
        previews.append(AnswerPreview(answer_id, label, rendered.text))
    return language, previews


def prepare_answer_delivery(
    message: PlannedMessage,
    snapshot: PatientSnapshot,
    consents: Sequence[Mapping[str, Any]],
    ledger: Sequence[LedgerEntry],
    config: RulesConfig,
    now: datetime,
) -> PreparedDelivery | WithheldMessage:
    """At send time: protections and consent again, on the reply channel only; then render."""
    now = now.astimezone(UTC)
    channel_name = str(message.trace.get("reply_channel") or ANSWER_CHANNELS[0])
    trace: dict[str, Any] = {"checked_at": now.isoformat()}
    channel = _decide_channel(
        snapshot.patient, consents, ledger, message.purpose, channel_name, config, now
    )
    trace["consent"] = dict(channel.trace)
    delivery_trace = {**message.trace, "delivery": trace}
    if not channel.allowed or channel.address is None:
        reason = channel.reason or "no-consent"
        return message.withhold(reason, f"not allowed on {channel_name}", delivery_trace)
    try:
        rendered = render(
            message.template, message.language, channel_name, message.variables, config
        )
    except MessageTooLongError as error:
        return message.withhold(REASON_TOO_LONG, str(error), delivery_trace)
    except TemplateRenderError as error:
        return message.withhold(REASON_RENDER_FAILED, str(error), delivery_trace)
    trace["rendered"] = {
        "channel": rendered.channel,
        "template": rendered.template,
        "language": rendered.language,
        "segments": rendered.segments,
    }
    return PreparedDelivery(
        channel=channel_name,
        address=channel.address,
        rendered=rendered,
        consent_used=channel.used,
        trace=trace,
    )


def check_answer_templates(config: RulesConfig) -> list[str]:
    """Every problem with the approved answers, each naming the answer or template file.

    The purpose must be a configured consent purpose. Every answer needs an SMS template
    in every supported language that uses only :data:`ANSWER_VARIABLES`, reads as no
    sensitive care, and at the longest clinic name, phone and link renders (with the
    footer: clinic name, callback number, opt-out line) to one GSM-7 segment.
    """
    section = config.staff_answers
    problems: list[str] = []
    if section.purpose not in config.consent.purposes:
        problems.append(f"staff_answers.purpose: {section.purpose!r} is not a consent purpose")
    directory = config.template_dir
    if not section.answers or not directory.is_dir():
        return problems
    environment = _environment(str(directory))
    for language in config.languages.supported:
        for answer_id in section.answers:
            name = f"{language}/{answer_template(answer_id)}{SMS_SUFFIX}"
            path = directory / name
            if not path.is_file():
                problems.append(f"staff answer {answer_id}: template {name} missing")
                continue
            problem = limited_template_problem(
                environment, config, name, ANSWER_VARIABLES, "staff answer"
            )
            if problem is not None:
                problems.append(problem)
                continue
            problems += _check_one_segment(config, language, answer_id, name)
    return problems


def _check_one_segment(config: RulesConfig, language: str, answer_id: str, name: str) -> list[str]:
    template = answer_template(answer_id)
    longest = longest_sms_variables(config, language, template)
    values = {key: longest[key] for key in ANSWER_VARIABLES}
    try:
        text = render(template, language, "sms", values, config).text
    except TemplateRenderError as error:
        return [f"template {name}: {error}"]
    encoding, segments = sms_segments(text)
    if (encoding, segments) != ("gsm7", 1):
        return [
            f"template {name}: {len(text)} characters ({encoding}) at the longest clinic "
            "name, phone and link; a staff answer must fit one GSM-7 SMS (160)"
        ]
    if values["clinic_name"] not in text:
        return [f"template {name}: the clinic name is missing"]
    return []


def answer_trace(trace: Mapping[str, Any] | None) -> tuple[str | None, str | None, str | None]:
    """A stored answer's (reply Communication, Practitioner, answer id), for the write-back."""
    if not isinstance(trace, Mapping) or trace.get("rule") != ANSWER_RULE:
        return None, None, None
    values = (trace.get("in_response_to"), trace.get("by"), trace.get("answer"))
    reply, by, answer = (value if isinstance(value, str) and value else None for value in values)
    return reply, by, answer
