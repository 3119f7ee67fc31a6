"""Campaign and broadcast messages: which may go, when, and as what text (pure: no I/O).

A campaign message is one SMS to one audience member (:mod:`rules.audiences`), keyed
``campaign|<campaign>|<run>|<patient>`` (:func:`campaign_key`): re-planning a patient's
event-driven outreach never touches it (:func:`rules.answers.owned_by_other_planner`).

* **Consent** on SMS for the campaign's purpose. ``health-tips`` is promotional: only an
  explicit opt-in naming it allows it; without one the message is withheld
  ``opt-in-required`` (recorded, written back as a not-done Communication, never sent).
* **Minimum necessary**: templates may print only the clinic's name, phone and link (a
  broadcast also the date and a listed place name); a rendered text that names any term
  that put the patient in the audience (``diabetes`` for a diabetes audience) is withheld
  ``reveals-audience``.
* **Quiet hours**: every message waits for the patient's sending window, except an
  emergency broadcast. **Caps**: shared with every other message kind, except ``alert``
  priority, which bypasses the per-day and per-week caps (never consent or quiet hours).
* **Tips rotate**: run ``n`` of a campaign uses the ``n``-th template of its library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from rules.answers import answer_variables
from rules.caps import REASON_CAP_REACHED
from rules.consent import LedgerEntry
from rules.consent.decision import REASON_DEFAULT_DENY
from rules.consent.delivery import WITHHELD_NO_CONTACT, consent_on_channel, withheld_reason
from rules.context import PlanningContext
from rules.model import PatientSnapshot, PlannedMessage, PreparedDelivery, WithheldMessage
from rules.outreach import cap_reason
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
from rules.timing import local_iso

if TYPE_CHECKING:
    from rules.config import RulesConfig

CAMPAIGN_RULE: Final = "campaign"
CAMPAIGN_KEY_PREFIX: Final = "campaign|"
CHANNEL: Final = "sms"
REASON_OPT_IN_REQUIRED: Final = "opt-in-required"
REASON_REVEALS_AUDIENCE: Final = "reveals-audience"
REASON_BROADCAST_CANCELLED: Final = "broadcast-cancelled"
TIP_VARIABLES: Final = frozenset({"clinic_name", "clinic_phone", "link"})
BROADCAST_VARIABLES: Final = TIP_VARIABLES | {"date", "location_name"}
TIP_PREFIX: Final = "tip-"
BROADCAST_PREFIX: Final = "broadcast-"


def campaign_key(campaign_id: str, run: int, patient_ref: str) -> str:
    return f"{CAMPAIGN_KEY_PREFIX}{campaign_id}|{run}|{patient_ref}"


def is_campaign_key(key: str) -> bool:
    return key.startswith(CAMPAIGN_KEY_PREFIX)


def owned_by_other_planner(key: str) -> bool:
    """Keys re-planning of event-driven outreach never cancels or reschedules: a staff
    answer (:mod:`rules.answers`), a campaign message (this module) or a health-tips
    invitation (:mod:`rules.optin`)."""
    from rules.answers import is_staff_answer
    from rules.optin import is_invitation

    return is_staff_answer(key) or is_campaign_key(key) or is_invitation(key)


def tip_template(tips: Sequence[str], run: int) -> str:
    """Run ``run`` (1-based) of a tip campaign uses the library's tips in turn."""
    return TIP_PREFIX + tips[(run - 1) % len(tips)]


@dataclass(frozen=True)
class CampaignSpec:
    """What planning needs of a campaign (the stored row, read once per run)."""

    campaign_id: str
    run: int
    kind: str
    purpose: str
    priority: str
    emergency: bool
    template: str
    variables: Mapping[str, str]
    dates: Mapping[str, str] = field(default_factory=dict)
    """A broadcast's date, written out in each language (``date`` of its template)."""


def campaign_variables(config: RulesConfig) -> dict[str, str]:
    """The clinic's name, callback number and portal link: what a staff answer prints."""
    return answer_variables(config)


def _consent_on_sms(
    snapshot: PatientSnapshot,
    consents: Sequence[Mapping[str, Any]],
    ledger: Sequence[LedgerEntry],
    purpose: str,
    config: RulesConfig,
    now: datetime,
) -> tuple[str | None, str | None, tuple[str, ...], dict[str, Any]]:
    """(withheld reason, address, consents used, trace) for SMS under ``purpose``."""
    policy = config.consent
    protection = check_protections(snapshot.patient, purpose, now, policy)
    if protection is not None:
        return protection, None, (), {"protection": protection}
    found = consent_on_channel(snapshot.patient, consents, ledger, purpose, CHANNEL, now, policy)
    if found is None:
        return WITHHELD_NO_CONTACT, None, (), {"outcome": "no-contact"}
    contact, decision = found
    trace = {"channel": CHANNEL, "purpose": purpose, "outcome": decision.reason}
    if decision.allowed:
        return None, contact.address, tuple(decision.used), trace
    rule = policy.rule_for(purpose)
    if rule is not None and rule.promotional and decision.reason == REASON_DEFAULT_DENY:
        return REASON_OPT_IN_REQUIRED, None, (), trace
    return withheld_reason(decision), None, (), trace


def _render_checked(
    message: PlannedMessage, terms: Sequence[str], config: RulesConfig
) -> tuple[str | None, str, Any]:
    """(withheld reason, detail, rendered): rendering, then the minimum-necessary check."""
    from rules.audiences import reveals

    try:
        rendered = render(message.template, message.language, CHANNEL, message.variables, config)
    except MessageTooLongError as error:
        return "message-too-long", str(error), None
    except TemplateRenderError as error:
        return "render-failed", str(error), None
    if reveals(rendered.text, terms) is not None:
        return REASON_REVEALS_AUDIENCE, "the text names why the patient is in the audience", None
    return None, "", rendered


def _date_in(dates: Mapping[str, str], language: str) -> dict[str, str]:
    if not dates:
        return {}
    return {"date": dates.get(language) or next(iter(dates.values()))}


def plan_campaign_message(
    spec: CampaignSpec,
    snapshot: PatientSnapshot,
    consents: Sequence[Mapping[str, Any]],
    ledger: Sequence[LedgerEntry],
    terms: Sequence[str],
    config: RulesConfig,
    now: datetime,
) -> PlannedMessage | WithheldMessage:
    """One audience member's message (sent now or when their window opens), or why not."""
    now = now.astimezone(UTC)
    context = PlanningContext.build(snapshot, config, now)
    prompt = context.send_now(emergency=spec.emergency)
    trace: dict[str, Any] = {
        "rule": CAMPAIGN_RULE,
        "campaign": spec.campaign_id,
        "run": spec.run,
        "kind": spec.kind,
        "priority": spec.priority,
        "language": context.language,
        "language_source": context.language_source,
        "zone": prompt.zone.name,
        "quiet_hours": prompt.quiet_hours,
        "send_at_local": local_iso(prompt.send_at, prompt.zone.zone),
        "audience_terms": list(terms),
    }
    message = PlannedMessage(
        key=campaign_key(spec.campaign_id, spec.run, snapshot.patient_ref),
        rule=CAMPAIGN_RULE,
        purpose=spec.purpose,
        patient_ref=snapshot.patient_ref,
        about=(),
        send_at=prompt.send_at,
        template=spec.template,
        language=context.language,
        variables={**spec.variables, **_date_in(spec.dates, context.language)},
        trace=trace,
    )
    reason, _address, _used, consent_trace = _consent_on_sms(
        snapshot, consents, ledger, spec.purpose, config, now
    )
    trace["consent"] = consent_trace
    if reason is not None:
        return message.withhold(reason, "not allowed on sms", trace)
    problem, detail, _rendered = _render_checked(message, terms, config)
    if problem is not None:
        return message.withhold(problem, detail, trace)
    return message


def prepare_campaign_delivery(
    message: PlannedMessage,
    snapshot: PatientSnapshot,
    consents: Sequence[Mapping[str, Any]],
    ledger: Sequence[LedgerEntry],
    config: RulesConfig,
    now: datetime,
) -> PreparedDelivery | WithheldMessage:
    """At send time: protections, caps (not for alerts), consent on SMS, text, terms."""
    now = now.astimezone(UTC)
    trace: dict[str, Any] = {"checked_at": now.isoformat()}
    delivery_trace = {**message.trace, "delivery": trace}
    if message.trace.get("priority") != "alert":
        cap_detail, applied = cap_reason(message, snapshot, config, now)
        trace["caps"] = applied
        if cap_detail is not None:
            return message.withhold(REASON_CAP_REACHED, cap_detail, delivery_trace)
    reason, address, used, consent_trace = _consent_on_sms(
        snapshot, consents, ledger, message.purpose, config, now
    )
    trace["consent"] = consent_trace
    if reason is not None or address is None:
        return message.withhold(reason or "no-consent", "not allowed on sms", delivery_trace)
    terms = [str(t) for t in message.trace.get("audience_terms") or []]
    problem, detail, rendered = _render_checked(message, terms, config)
    if problem is not None:
        return message.withhold(problem, detail, delivery_trace)
    trace["rendered"] = {
        "template": rendered.template,
        "language": rendered.language,
        "segments": rendered.segments,
    }
    return PreparedDelivery(
        channel=CHANNEL, address=address, rendered=rendered, consent_used=used, trace=trace
    )


def check_campaign_templates(config: RulesConfig) -> list[str]:
    """Every tip and broadcast template exists in every supported language, prints only its
    allowed variables, names no sensitive care and fits one GSM-7 segment at the longest
    clinic name and phone."""
    problems: list[str] = []
    directory = config.template_dir
    if not directory.is_dir():
        return problems
    environment = _environment(str(directory))
    section = config.campaigns
    wanted = [(TIP_PREFIX + t, TIP_VARIABLES) for t in section.tips]
    wanted += [(BROADCAST_PREFIX + b, BROADCAST_VARIABLES) for b in section.broadcasts]
    for language in config.languages.supported:
        for template, allowed in wanted:
            name = f"{language}/{template}{SMS_SUFFIX}"
            path = directory / name
            if not path.is_file():
                problems.append(f"campaign template {name}: missing")
                continue
            problem = limited_template_problem(
                environment, config, name, allowed, "campaign message"
            )
            if problem is not None:
                problems.append(problem)
                continue
            longest = longest_sms_variables(config, language, template)
            values = {key: longest[key] for key in allowed}
            try:
                text = render(template, language, CHANNEL, values, config).text
            except TemplateRenderError as error:
                problems.append(f"template {name}: {error}")
                continue
            if sms_segments(text) != ("gsm7", 1):
                problems.append(f"template {name}: does not fit one GSM-7 SMS (160)")
    return problems
