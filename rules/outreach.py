"""The last decision before a planned message leaves: may it go, where, and as what text.

Planning may have happened days earlier; by send time the patient may have
died, opted out or reached the frequency cap, so every check that depends on
"now" is repeated here before the message is rendered for the chosen channel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from rules.caps import REASON_CAP_REACHED, Counted, cap_check
from rules.config import RulesConfig
from rules.consent import LedgerEntry, choose_delivery
from rules.model import PatientSnapshot, PlannedMessage, PreparedDelivery, WithheldMessage
from rules.protections import check_protections
from rules.templates import MessageTooLongError, TemplateRenderError, render
from rules.timing import zone_or_none

REASON_TOO_LONG = "message-too-long"
REASON_RENDER_FAILED = "render-failed"


def _withhold(
    message: PlannedMessage, reason: str, detail: str, trace: Mapping[str, Any]
) -> WithheldMessage:
    return message.withhold(reason, detail, {**message.trace, "delivery": dict(trace)})


def cap_reason(
    message: PlannedMessage, snapshot: PatientSnapshot, config: RulesConfig, now: datetime
) -> tuple[str | None, dict[str, Any]]:
    """The planner's counting rule (:func:`rules.caps.cap_check`) on what has really left."""
    zone = zone_or_none(message.trace.get("zone")) or ZoneInfo(config.organization.timezone)
    others = [Counted(r.key, r.send_at) for r in snapshot.history if r.key != message.key]
    return cap_check(others, now, zone, config.caps)


def prepare_delivery(
    message: PlannedMessage,
    snapshot: PatientSnapshot,
    consents: Sequence[Mapping[str, Any]],
    ledger: Sequence[LedgerEntry],
    config: RulesConfig,
    now: datetime,
) -> PreparedDelivery | WithheldMessage:
    """Protections, caps, consent and contact choice, then rendering for the channel."""
    now = now.astimezone(UTC)
    trace: dict[str, Any] = {"checked_at": now.isoformat()}
    protection = check_protections(snapshot.patient, message.purpose, now, config.consent)
    trace["protection"] = protection
    if protection is not None:
        return _withhold(message, protection, "patient protection applies", trace)
    cap_detail, applied = cap_reason(message, snapshot, config, now)
    trace["caps"] = applied
    if cap_detail is not None:
        return _withhold(message, REASON_CAP_REACHED, cap_detail, trace)
    choice = choose_delivery(
        patient=snapshot.patient,
        consents=consents,
        ledger=ledger,
        purpose=message.purpose,
        now=now,
        policy=config.consent,
        preferred_channels=config.channels.preferred,
    )
    trace["consent"] = dict(choice.trace)
    if not choice.allowed or choice.channel is None or choice.address is None:
        return _withhold(message, choice.reason or "no-consent", "no consented channel", trace)
    try:
        rendered = render(
            message.template, message.language, choice.channel, message.variables, config
        )
    except MessageTooLongError as error:
        return _withhold(message, REASON_TOO_LONG, str(error), trace)
    except TemplateRenderError as error:
        return _withhold(message, REASON_RENDER_FAILED, str(error), trace)
    trace["rendered"] = {
        "channel": rendered.channel,
        "template": rendered.template,
        "language": rendered.language,
        "segments": rendered.segments,
    }
    return PreparedDelivery(
        channel=choice.channel,
        address=choice.address,
        rendered=rendered,
        consent_used=tuple(choice.used),
        trace=trace,
    )
