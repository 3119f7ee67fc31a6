"""Appointment reminders (issue #3.1): cadence, catch-up, stop states and same-day merging.

Keys are derived only from the appointment (or patient and local day, for a
combined message) and the offset, so re-planning after any change yields the
same keys and the pipeline can reschedule or cancel by them.

Same-day appointments (``combine_same_day``, issue #8.9)
    All of a patient's appointments on one local day get **one** message listing
    every time, each in its own place's time zone. It names a place only when it
    is the same for every appointment of the day (one Location, or places the
    message would name identically); appointments at different places, or some
    without a place, are named by the organisation only, with the organisation's
    clinic name and number. Why not a reminder per place: with the default cap of
    one message a day the second site's reminders would all lose to the first's
    (:mod:`rules.caps`) and the patient would never be reminded of that visit.
    Why not each time with its own place: two place names do not fit one
    160-character SMS next to the date, times, clinic and opt-out line (issue
    #8.5), and naming one site next to several times sends the patient to the
    wrong door. The patient learns every time; the clinic number is in the text.

Every planned reminder carries ``about_at`` (the earliest start it is about), so
when a frequency cap forces a choice the nearest appointment's reminder wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from functools import lru_cache
from itertools import groupby
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from rules.config import AppointmentMatch, CodeMatch
from rules.context import PlanningContext, RuleOutcome
from rules.fhir_json import codes_of, parse_instant, ref_of, reference_of, same_reference
from rules.formatting import format_date, format_time, join_words
from rules.memo import ContentMemo
from rules.model import PURPOSE_APPOINTMENT_REMINDER, PlannedMessage, WithheldMessage
from rules.templates import generic_variant
from rules.timing import (
    Offset,
    QuietHours,
    before,
    into_window,
    iso_text,
    local_day,
    local_iso,
    parse_offset,
)

RULE = "appointment-reminder"
STOP_STATUSES = frozenset(
    {"cancelled", "noshow", "entered-in-error", "fulfilled", "arrived", "checked-in"}
)
LATE_GRACE = timedelta(minutes=30)


class _Booked(NamedTuple):
    """An appointment that should be reminded about, with its computed facts."""

    resource: Mapping[str, Any]
    ref: str
    start: datetime
    location_ref: str | None
    zone: ZoneInfo
    zone_source: str
    zone_notes: tuple[str, ...]
    local_day: date


def _withheld(
    ref: str, patient_ref: str, reason: str, detail: str, **trace: Any
) -> WithheldMessage:
    return WithheldMessage(
        key=f"{PURPOSE_APPOINTMENT_REMINDER}|{ref}",
        rule=RULE,
        purpose=PURPOSE_APPOINTMENT_REMINDER,
        patient_ref=patient_ref,
        about=(ref,),
        reason=reason,
        detail=detail,
        trace={"rule": RULE, "inputs": {"appointment": ref, **trace}},
    )


def _not_sent(
    ctx: PlanningContext,
    key: str,
    about: tuple[str, ...],
    reason: str,
    detail: str,
    trace: Mapping[str, Any],
) -> WithheldMessage:
    """A reminder slot of this appointment that will not be sent, and why."""
    return WithheldMessage(
        key=key,
        rule=RULE,
        purpose=PURPOSE_APPOINTMENT_REMINDER,
        patient_ref=ctx.patient_ref,
        about=about,
        reason=reason,
        detail=detail,
        trace=trace,
    )


def _patient_participation(appointment: Mapping[str, Any], patient_ref: str) -> str | None:
    for participant in appointment.get("participant") or ():
        if same_reference(reference_of(participant.get("actor")), patient_ref):
            return str(participant.get("status") or "needs-action")
    return None


def _location_of(appointment: Mapping[str, Any]) -> str | None:
    for participant in appointment.get("participant") or ():
        reference = reference_of(participant.get("actor"))
        if reference and "Location/" in reference:
            return reference[reference.index("Location/") :]
    return None


def _eligible(ctx: PlanningContext, appointment: Mapping[str, Any]) -> _Booked | WithheldMessage:
    ref, status = ref_of(appointment), str(appointment.get("status", ""))
    patient = ctx.patient_ref
    if status in STOP_STATUSES:
        return _withheld(ref, patient, f"appointment-{status}", "stop state", status=status)
    if status not in ctx.config.appointment_reminders.plan_statuses:
        return _withheld(ref, patient, "status-not-planned", "status not planned", status=status)
    start = parse_instant(appointment.get("start"))
    if start is None:
        return _withheld(ref, patient, "start-unknown", "no usable start", status=status)
    participation = _patient_participation(appointment, patient)
    if participation is None:
        return _withheld(ref, patient, "patient-not-participant", "no patient participant")
    if participation == "declined":
        return _withheld(ref, patient, "patient-declined", "patient declined")
    location_ref = _location_of(appointment)
    recipient = ctx.recipient_decision(location_ref, appointment.get("start"))
    zone = recipient.zone
    return _Booked(
        appointment,
        ref,
        start,
        location_ref,
        zone,
        recipient.source,
        recipient.notes,
        local_day(start, zone),
    )


def _code_matches(concepts: Any, wanted: list[CodeMatch]) -> bool:
    if isinstance(concepts, list) and len(concepts) == 1:
        found = codes_of(concepts[0])
    else:
        found = set().union(*(codes_of(c) for c in concepts)) if concepts else set()
    bare: set[str] | None = None
    for want in wanted:
        if (want.system, want.code) in found:
            return True
        if want.system is None:
            bare = {c for _, c in found} if bare is None else bare
            if want.code in bare:
                return True
    return False


def _matches(booked: _Booked, match: AppointmentMatch) -> bool:
    resource = booked.resource
    appointment_type = resource.get("appointmentType")
    type_matches = not match.appointment_type or _code_matches(
        [appointment_type] if appointment_type else [], match.appointment_type
    )
    service_matches = not match.service_type or _code_matches(
        resource.get("serviceType") or [], match.service_type
    )
    location_matches = not match.location or any(
        same_reference(booked.location_ref, loc) for loc in match.location
    )
    return type_matches and service_matches and location_matches


@lru_cache(maxsize=256)
def _parsed(offsets: tuple[str, ...]) -> tuple[Offset, ...]:
    """A cadence's offsets, parsed once per distinct cadence of the rules file."""
    return tuple(parse_offset(o) for o in offsets)


def _cadence(
    ctx: PlanningContext, booked: _Booked
) -> tuple[tuple[Offset, ...], tuple[str, ...], bool, str]:
    """The offsets (parsed, and as written), catch-up, and which setting chose them."""
    rules = ctx.config.appointment_reminders
    for index, override in enumerate(rules.overrides):
        if _matches(booked, override.match):
            catch_up = rules.catch_up if override.catch_up is None else override.catch_up
            texts = tuple(override.offsets)
            return _parsed(texts), texts, catch_up, f"overrides[{index}]"
    location = ctx.override(booked.location_ref)
    if location and location.appointment_offsets is not None:
        texts = tuple(location.appointment_offsets)
        return _parsed(texts), texts, rules.catch_up, f"locations[{booked.location_ref}]"
    texts = tuple(rules.offsets)
    return _parsed(texts), texts, rules.catch_up, "default"


def plan_appointments(ctx: PlanningContext) -> RuleOutcome:
    """Reminders for every booked appointment of the patient, merged per local day."""
    outcome = RuleOutcome()
    if not ctx.config.appointment_reminders.enabled:
        return outcome
    booked: list[_Booked] = []
    for appointment in ctx.resources_of("Appointment"):
        result = _eligible(ctx, appointment)
        if isinstance(result, WithheldMessage):
            outcome.withheld.append(result)
        elif result.start > ctx.now:
            booked.append(result)
    booked.sort(key=lambda b: (b.local_day, b.start, b.ref))
    if len(booked) == 1:
        groups = [booked]
    elif ctx.config.appointment_reminders.combine_same_day:
        groups = [list(group) for _day, group in groupby(booked, key=lambda b: b.local_day)]
    else:
        groups = [[b] for b in booked]
    for group in groups:
        _plan_group(ctx, group, outcome)
    return outcome


@lru_cache(maxsize=4096)
def _shown(start: datetime, zone: ZoneInfo, language: str) -> tuple[str, str]:
    """The local date and time of a start as a message prints them (a busy day has a few
    hundred distinct starts, so each is formatted once)."""
    local = start.astimezone(zone)
    return format_date(local.date(), language), format_time(local.time(), language)


def _local_start_shown(ctx: PlanningContext, booked: _Booked) -> tuple[str, str]:
    """The start on the wall clock of the place of care: its date and time as printed."""
    zone, _ = ctx.venue_zone(booked.location_ref, booked.resource.get("start"))
    return _shown(booked.start, zone, ctx.language)


def _group_variables(ctx: PlanningContext, group: list[_Booked], sensitive: bool) -> dict[str, str]:
    """Date, every time, and a place only when the whole day is at one place."""
    language = ctx.language
    if len(group) == 1:  # the usual day: one appointment, its place named if it may be
        only = group[0]
        date_text, time_text = _local_start_shown(ctx, only)
        return {
            **ctx.base_variables(only.location_ref),
            "date": date_text,
            "time": time_text,
            "location_name": ctx.location_name(only.location_ref, sensitive),
        }
    shown = [_local_start_shown(ctx, b) for b in group]
    times = [time_text for _date, time_text in shown]
    names = {ctx.location_name(b.location_ref, sensitive) for b in group}
    refs = dict.fromkeys(b.location_ref for b in group)
    clinics = [ctx.base_variables(ref) for ref in refs]
    clinic = clinics[0] if all(c == clinics[0] for c in clinics) else ctx.base_variables(None)
    return {
        **clinic,
        "date": shown[0][0],
        "time": join_words(times, language),
        "location_name": names.pop() if len(names) == 1 else "",
    }


_Slot = tuple[datetime, str | None, str, str]
_SLOTS: ContentMemo[tuple[_Slot, ...]] = ContentMemo()


def _reminder_slots(
    start: datetime,
    offsets: tuple[Offset, ...],
    cadence: tuple[str, ...],
    zone: ZoneInfo,
    window: QuietHours,
) -> tuple[_Slot, ...]:
    """For each offset (``cadence``, as written) before ``start``: when the reminder goes
    out in ``zone`` (quiet hours applied, never at or after the start), what was done,
    and the local due and send times for the trace. The same for every appointment at
    that instant in that zone, so a busy day works each out once (keyed by plain
    values, which hash cheaply)."""
    key = (start, zone, window.start, window.end, cadence)
    found = _SLOTS.get(key)
    if found is None:
        slots = []
        for offset in offsets:
            due = before(start, offset, zone)
            send_at, adjustment = into_window(due, zone, window, deadline=start)
            slots.append((send_at, adjustment, local_iso(due, zone), local_iso(send_at, zone)))
        found = _SLOTS.put(key, tuple(slots))
    return found


def _plan_group(ctx: PlanningContext, group: list[_Booked], outcome: RuleOutcome) -> None:
    """Add the reminders of one group (a day's appointments, or one) to ``outcome``."""
    rules = ctx.config.appointment_reminders
    anchor = group[0]
    combined = len(group) > 1
    # One pass over the group for what the message is about, reads and traces.
    refs: list[str] = []
    appointments: list[Mapping[str, Any]] = []
    venues: list[Mapping[str, Any]] = []
    traced: list[dict[str, Any]] = []
    locations: dict[str | None, None] = {}
    for b in group:
        refs.append(b.ref)
        appointments.append(b.resource)
        venue = ctx.location(b.location_ref)
        if venue is not None:
            venues.append(venue)
        traced.append(
            {"ref": b.ref, "status": b.resource.get("status"), "start": iso_text(b.start)}
        )
        locations.setdefault(b.location_ref)
    about = tuple(refs)
    prefix = (
        f"{PURPOSE_APPOINTMENT_REMINDER}|{ctx.patient_ref}|{anchor.local_day.isoformat()}"
        if combined
        else f"{PURPOSE_APPOINTMENT_REMINDER}|{anchor.ref}"
    )
    offsets, cadence, catch_up, cadence_source = _cadence(ctx, anchor)
    sensitive, sensitivity_reasons = ctx.sensitivity(appointments + venues)
    template = rules.combined_template if combined else rules.template
    template = generic_variant(template) if sensitive else template
    variables = _group_variables(ctx, group, sensitive)
    window = ctx.window(anchor.location_ref)
    base_trace = {
        "rule": RULE,
        "inputs": {
            "appointments": traced,
            "location": anchor.location_ref,
            "locations": list(locations),
            "language": ctx.language,
            "language_source": ctx.language_source,
        },
        "zone": anchor.zone.key,
        "zone_source": anchor.zone_source,
        "zone_notes": list(anchor.zone_notes),
        "venue_zone": ctx.place_zone(anchor.location_ref, anchor.resource.get("start")).zone.key,
        "language_note": ctx.language_note,
        "cadence": list(cadence),
        "cadence_source": cadence_source,
        "combined": combined,
        "sensitive": sensitive,
        "sensitivity_reasons": list(sensitivity_reasons),
    }
    if ctx.sent_keys:
        already_sent = {o.text for o in offsets if _sent(ctx, prefix, about, o.text)}
        catch_up_sent = _sent(ctx, prefix, about, "catch-up")
    else:
        already_sent, catch_up_sent = set(), False
    upcoming: list[PlannedMessage] = []
    missed: list[str] = []
    too_late = ctx.now - LATE_GRACE
    patient_ref = ctx.patient_ref
    slots = _reminder_slots(anchor.start, offsets, cadence, anchor.zone, window)
    for offset, (send_at, adjustment, due_local, send_at_local) in zip(offsets, slots, strict=True):
        if offset.text in already_sent:
            continue
        if send_at < too_late or send_at >= anchor.start:
            missed.append(offset.text)
            continue
        trace = {
            **base_trace,
            "offset": offset.text,
            "due_local": due_local,
            "send_at_local": send_at_local,
            "quiet_hours": adjustment,
        }
        upcoming.append(
            PlannedMessage(
                key=f"{prefix}|{offset.text}",
                rule=RULE,
                purpose=PURPOSE_APPOINTMENT_REMINDER,
                patient_ref=patient_ref,
                about=about,
                send_at=send_at,
                template=template,
                language=ctx.language,
                variables=variables,
                trace=trace,
                sensitive=sensitive,
                about_at=anchor.start,
            )
        )
    outcome.planned.extend(upcoming)
    for text in missed:
        outcome.withheld.append(
            _not_sent(
                ctx,
                f"{prefix}|{text}",
                about,
                "offset-passed",
                "the send time had already passed when planned",
                base_trace | {"offset": text},
            )
        )
    if not missed or not catch_up or already_sent or catch_up_sent:
        return
    catch = _catch_up(ctx, anchor, upcoming, window)
    trace = base_trace | {"offset": "catch-up", "missed_offsets": missed} | catch[1]
    if isinstance(catch[0], str):
        outcome.withheld.append(
            _not_sent(
                ctx,
                f"{prefix}|catch-up",
                about,
                catch[0],
                "no catch-up reminder needed or possible",
                trace,
            )
        )
        return
    outcome.planned.append(
        PlannedMessage(
            key=f"{prefix}|catch-up",
            rule=RULE,
            purpose=PURPOSE_APPOINTMENT_REMINDER,
            patient_ref=ctx.patient_ref,
            about=about,
            send_at=catch[0],
            template=template,
            language=ctx.language,
            variables=variables,
            trace=trace,
            sensitive=sensitive,
            about_at=anchor.start,
        )
    )


def _sent(ctx: PlanningContext, prefix: str, about: tuple[str, ...], suffix: str) -> bool:
    """Sent under this key, or under a single appointment's key before it was combined."""
    if f"{prefix}|{suffix}" in ctx.sent_keys:
        return True
    return any(f"{PURPOSE_APPOINTMENT_REMINDER}|{ref}|{suffix}" in ctx.sent_keys for ref in about)


def _catch_up(
    ctx: PlanningContext,
    anchor: _Booked,
    upcoming: list[PlannedMessage],
    window: Any,
) -> tuple[datetime | str, dict[str, Any]]:
    rules = ctx.config.appointment_reminders
    lead = anchor.start - ctx.now
    min_lead = parse_offset(rules.catch_up_min_lead)
    if lead < timedelta(days=min_lead.days, seconds=min_lead.seconds):
        return "catch-up-too-close-to-start", {"lead_seconds": int(lead.total_seconds())}
    send_at, adjustment = into_window(ctx.now, anchor.zone, window, deadline=anchor.start)
    details: dict[str, Any] = {
        "send_at_local": local_iso(send_at, anchor.zone),
        "quiet_hours": adjustment,
    }
    if send_at < ctx.now:
        return "catch-up-outside-quiet-hours", details
    gap = parse_offset(rules.catch_up_min_gap)
    next_due = min((m.send_at for m in upcoming), default=None)
    if next_due is not None and next_due - send_at < timedelta(days=gap.days, seconds=gap.seconds):
        return "catch-up-not-needed", details | {"next_reminder": next_due.isoformat()}
    return send_at, details
