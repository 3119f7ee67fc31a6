"""Campaigns and broadcasts in the staff panel (standalone launch, clinic-wide).

A list with each campaign's progress, a draft form, and one page per campaign: its preview
(audience count, breakdown and the text in each language with a made-up name), approval by
a second member of staff, start, pause, resume and cancel. Everything goes through
:mod:`fhir_bridge.campaigns.service` (and ``fhir_bridge.outcomes.campaigns`` for the
numbers); the signed-in user's ``fhirUser`` is who drafts, approves and cancels. Pages
show counts and staff references only, never a patient.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from fhir_bridge.campaigns import service
from fhir_bridge.fhir.errors import EhrError
from fhir_bridge.outcomes import campaigns as campaign_outcomes
from fhir_bridge.runtime import Runtime
from smart_app.config import SESSION_PREFIX
from smart_app.errors import NotFound
from smart_app.security import PanelRoute, check_csrf, current_clinic_user, launch_base
from smart_app.sessions import ClinicSession
from smart_app.state import SmartAppState, smart_state

log = logging.getLogger(__name__)
router = APIRouter(prefix="/smart", route_class=PanelRoute, include_in_schema=False)

KIND_WORDS: Final = {
    "health-tips": "Health tips",
    "preventive-care": "Preventive care",
    "broadcast": "Urgent broadcast",
}
STATUS_WORDS: Final = {
    "draft": "Draft: needs approval",
    "approved": "Approved: not started",
    "running": "Sending",
    "paused": "Paused",
    "done": "Finished",
    "cancelled": "Cancelled",
}
ACTIONS: Final = ("approve", "run", "pause", "resume", "cancel")
NOTICES: Final = {
    "drafted": "Campaign drafted. A second member of staff must approve it before it sends.",
    "approve": "Campaign approved. Start it when you are ready.",
    "run": "Sending started. Messages go out at the shared rate, in each patient's hours.",
    "pause": "Campaign paused: messages not yet handed to the provider are held.",
    "resume": "Campaign resumed: held messages are sending again.",
    "cancel": "Campaign cancelled: every message not yet sent is withheld.",
}
ERRORS: Final = {
    "same-approver": (
        "You drafted this campaign, so you cannot approve it. "
        "A second member of staff must review and approve it."
    ),
    "run-taken": "This run has already started (by someone else or the scheduler).",
    "not-now": "That cannot be done now: the campaign's status has changed. See below.",
    "ehr-unavailable": "The EHR could not be reached to read the audience. Try again shortly.",
}
OPEN_STATUSES: Final = frozenset({"draft", "approved", "running", "paused"})
NAME_MAX: Final = 120


class DraftRefused(ValueError):
    """The draft form is incomplete or wrong; the message names fields, never values."""


def _runtime(state: SmartAppState) -> Runtime:
    runtime = state.deps.runtime
    if runtime is None:
        raise NotFound("campaigns-unavailable")
    return runtime


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    if moment is None:
        return ""
    return moment.astimezone(zone).strftime("%a %b %d %Y, %I:%M %p").replace(" 0", " ")


def _form_options(rt: Runtime) -> dict[str, Any]:
    config = rt.rules
    return {
        "audiences": {name: a.description or name for name, a in config.audiences.items()},
        "tips": list(config.campaigns.tips),
        "broadcasts": list(config.campaigns.broadcasts),
        "locations": {
            ref: (override.display_name or ref) for ref, override in config.locations.items()
        },
        "kinds": KIND_WORDS,
    }


def _list_page(
    request: Request,
    user: ClinicSession,
    *,
    notice: str | None = None,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    state = smart_state(request.app)
    rt = _runtime(state)
    zone = ZoneInfo(state.clinic_timezone)
    rows = service.overview(rt)
    for row in rows:
        row["created_local"] = _local(row["created_at"], zone)
        row["next_run_local"] = _local(row["next_run_at"], zone)
    page = state.templates.get_template("campaigns.html").render(
        base=launch_base(request),
        user=user.fhir_user,
        csrf_token=user.csrf_token,
        rows=rows,
        kind_words=KIND_WORDS,
        status_words=STATUS_WORDS,
        notice=notice,
        error=error,
        form=form or {},
        options=_form_options(rt),
        progress=_progress,
    )
    return HTMLResponse(page, status_code=status_code)


@router.get(SESSION_PREFIX + "/campaigns")
def campaigns_page(request: Request) -> Response:
    """Every campaign with its progress, newest first, and the draft form."""
    return _list_page(request, current_clinic_user(request))


@router.post(SESSION_PREFIX + "/campaigns")
def draft_campaign(
    request: Request,
    csrf_token: str = Form(default=""),
    name: str = Form(default=""),
    kind: str = Form(default=""),
    audience: str = Form(default=""),
    template: str = Form(default=""),
    location: str = Form(default=""),
    start: str = Form(default=""),
    end: str = Form(default=""),
    every_days: str = Form(default=""),
    until: str = Form(default=""),
    emergency: str = Form(default=""),
    cancels_appointments: str = Form(default=""),
) -> Response:
    """Draft a campaign or broadcast as the signed-in user (approved later by another)."""
    user = current_clinic_user(request)
    check_csrf(user, csrf_token)
    state = smart_state(request.app)
    rt = _runtime(state)
    form = {
        "name": name,
        "kind": kind,
        "audience": audience,
        "template": template,
        "location": location,
        "start": start,
        "end": end,
        "every_days": every_days,
        "until": until,
        "emergency": emergency,
        "cancels_appointments": cancels_appointments,
    }
    try:
        draft = _draft_from_form(rt, form, user.fhir_user, ZoneInfo(state.clinic_timezone))
        campaign_id = service.draft(rt, draft)
    except (DraftRefused, service.CampaignError) as error:
        return _list_page(request, user, error=str(error), form=form, status_code=400)
    return RedirectResponse(
        f"{launch_base(request)}/campaigns/{campaign_id}?notice=drafted", status_code=303
    )


def _draft_from_form(rt: Runtime, form: dict[str, str], by: str, zone: ZoneInfo) -> service.Draft:
    name = form["name"].strip()
    if not name or len(name) > NAME_MAX:
        raise DraftRefused(f"name is required (at most {NAME_MAX} characters)")
    kind = form["kind"]
    if kind not in KIND_WORDS:
        raise DraftRefused("kind must be health tips, preventive care or urgent broadcast")
    if kind == "broadcast":
        location = form["location"].strip()
        if not location.startswith("Location/") or len(location) > 200:
            raise DraftRefused("place must be a Location reference (Location/<id>)")
        start, end = _moment(form["start"], zone, "from"), _moment(form["end"], zone, "to")
        if end <= start:
            raise DraftRefused("'to' must be after 'from'")
        return service.Draft(
            name=name,
            kind=kind,
            audience=service.broadcast_audience(location, start, end),
            by=by,
            templates=(form["template"],),
            priority="alert",
            emergency=bool(form["emergency"]),
            cancels_appointments=bool(form["cancels_appointments"]),
        )
    if form["emergency"]:
        raise DraftRefused("only an urgent broadcast may be an emergency")
    cadence = None
    if form["every_days"].strip():
        if not form["every_days"].strip().isdigit() or not 1 <= int(form["every_days"]) <= 365:
            raise DraftRefused("repeat every must be a whole number of days from 1 to 365")
        cadence = int(form["every_days"])
    ends_at = None
    if form["until"].strip():
        try:
            last_day = date.fromisoformat(form["until"].strip())
        except ValueError:
            raise DraftRefused("end date must be a date (YYYY-MM-DD)") from None
        ends_at = datetime.combine(last_day + timedelta(days=1), time(), tzinfo=zone)
    return service.Draft(
        name=name,
        kind=kind,
        audience=service.audience_of(rt, form["audience"]),
        by=by,
        purpose="health-tips" if kind == "health-tips" else "care-coordination",
        cadence_days=cadence,
        ends_at=ends_at,
    )


def _moment(text: str, zone: ZoneInfo, field_name: str) -> datetime:
    """A ``datetime-local`` value, read in the clinic's time zone."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise DraftRefused(f"'{field_name}' must be a date and time") from None
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


@router.get(SESSION_PREFIX + "/campaigns/{campaign_id}")
def campaign_page(
    request: Request, campaign_id: str, notice: str | None = None, error: str | None = None
) -> Response:
    """One campaign: progress, details, preview before it sends, outcomes once it has."""
    user = current_clinic_user(request)
    state = smart_state(request.app)
    rt = _runtime(state)
    zone = ZoneInfo(state.clinic_timezone)
    try:
        found = service.status(rt, campaign_id)
    except service.CampaignError:
        raise NotFound("no-such-campaign") from None
    preview, preview_error = None, None
    if found["status"] in ("draft", "approved"):
        try:
            preview = service.preview(rt, campaign_id)
        except EhrError as ehr_error:
            log.warning("campaign_preview_unavailable", extra={"error": type(ehr_error).__name__})
            preview_error = ERRORS["ehr-unavailable"]
    outcome = None
    if found["runs"]:
        outcome = campaign_outcomes.load(rt.sessions, campaign_id)
    page = state.templates.get_template("campaign.html").render(
        base=launch_base(request),
        user=user.fhir_user,
        csrf_token=user.csrf_token,
        c=found,
        kind_words=KIND_WORDS,
        status_words=STATUS_WORDS,
        notice=NOTICES.get(notice or ""),
        error=ERRORS.get(error or ""),
        preview=preview,
        preview_error=preview_error,
        outcome=outcome,
        open_statuses=OPEN_STATUSES,
        local=lambda moment: _local(moment, zone),
        progress=_progress,
        booking_days=campaign_outcomes.BOOKING_DAYS,
    )
    return HTMLResponse(page)


@router.post(SESSION_PREFIX + "/campaigns/{campaign_id}/{action}")
def campaign_action(
    request: Request, campaign_id: str, action: str, csrf_token: str = Form(default="")
) -> Response:
    """Approve (not the author), start, pause, resume or cancel; then back to its page."""
    user = current_clinic_user(request)
    check_csrf(user, csrf_token)
    if action not in ACTIONS:
        raise NotFound("no-such-action")
    rt = _runtime(smart_state(request.app))
    page = f"{launch_base(request)}/campaigns/{campaign_id}"
    try:
        if action == "approve":
            service.approve(rt, campaign_id, user.fhir_user)
        elif action == "run":
            service.run(rt, campaign_id)
        elif action == "pause":
            service.pause(rt, campaign_id)
        elif action == "resume":
            service.resume(rt, campaign_id)
        else:
            service.cancel(rt, campaign_id, user.fhir_user)
    except service.SameApprover:
        return RedirectResponse(f"{page}?error=same-approver", status_code=303)
    except service.RunTaken:
        return RedirectResponse(f"{page}?error=run-taken", status_code=303)
    except service.CampaignError:
        return RedirectResponse(f"{page}?error=not-now", status_code=303)
    except EhrError as error:
        log.warning("campaign_action_ehr_unavailable", extra={"error": type(error).__name__})
        return RedirectResponse(f"{page}?error=ehr-unavailable", status_code=303)
    log.info("campaign_action", extra={"id": campaign_id, "outcome": action})
    return RedirectResponse(f"{page}?notice={action}", status_code=303)


# The campaign pages' few styles of their own (on top of panel, shell and outcomes CSS).
CAMPAIGNS_CSS: Final = """
.section-head { display: flex; align-items: baseline; gap: 12px; }
table#campaigns a { color: #24518a; text-decoration: none; }
table#campaigns a:hover { text-decoration: underline; }
.section-head h2 { flex: 1; }
svg.progress { display: block; margin-top: 3px; }
.key::before { content: ""; display: inline-block; width: 9px; height: 9px; border-radius: 2px;
  margin: 0 4px 0 8px; vertical-align: -1px; background: #e6eaef; }
.key-delivered::before { background: #2e7d4f; } .key-sent::before { background: #7fb896; }
.key-failed::before { background: #b5402a; } .key-queued::before { background: #8fa9cc; }
.key-withheld::before { background: #d49a2a; }
.badge-draft { background: #fbefd5; color: #8a5a00; }
.badge-approved { background: #e2ebf8; color: #24518a; }
.badge-running { background: #dcf1e4; color: #1d7a46; }
.badge-paused { background: #eceae6; color: #5a534a; }
.badge-done { background: #e8ecf0; color: #3d4a58; }
dialog.draft-dialog { width: min(560px, 94vw); }
dialog legend { font-weight: 600; font-size: 12px; color: #5b6775; }
dialog input[type=date], dialog input[type=datetime-local] { display: block; font: inherit;
  padding: 3px 9px; border: 1px solid #9aa7b4; border-radius: 3px; margin-top: 2px; }
.campaign-actions { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.facts dt { color: #5b6775; } dl.facts dd { margin: 0; }
.samples { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 10px; }
.sms { background: #e9f0f8; border-radius: 12px 12px 12px 2px; padding: 8px 12px;
  font-size: 13px; white-space: pre-wrap; margin: 4px 0 0; }
.breakdown { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr));
  gap: 10px; }
.breakdown table td.num { text-align: right; font-variant-numeric: tabular-nums; }
.big-count { font-size: 28px; font-weight: 650; margin: 0 0 6px; }
.two-col { margin-bottom: 12px; }
.breakdown h3, .samples + h3, #preview h3 { margin-top: 8px; font-size: 13px; }
"""


@router.get("/campaigns.css")
def campaigns_css() -> Response:
    """The campaign pages' own styles (served by us: the panel's CSP allows only 'self')."""
    return Response(CAMPAIGNS_CSS, media_type="text/css")


def _progress(row: dict[str, Any]) -> list[tuple[str, int, float]]:
    """(part, count, share of the bar) for delivered / sent / failed / queued / withheld."""
    delivered = int(row["delivered"])
    parts = [
        ("delivered", delivered),
        ("sent", max(0, int(row["sent"]) - delivered)),
        ("failed", int(row["failed"])),
        ("queued", int(row["queued"]) + int(row["sending"])),
        ("withheld", sum(int(n) for n in row["withheld"].values())),
    ]
    total = sum(n for _, n in parts)
    return [(name, n, (n / total if total else 0.0)) for name, n in parts]
