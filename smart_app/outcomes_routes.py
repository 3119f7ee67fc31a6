""" "How outreach is doing": the clinic-wide outcome measures with server-rendered SVG charts.

Open to any launched staff session (EHR launch from a chart, or standalone): the page shows
counts, rates and times for the whole clinic and names no patient. Its numbers are the ones
``fhir-bridge report`` prints (``fhir_bridge.outcomes``).
"""

from __future__ import annotations

from datetime import date, timedelta
from importlib import resources
from typing import Any, Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from fhir_bridge.outcomes.measures import (
    SMALL_COUNT,
    GroupOutcome,
    OutcomeReport,
    Rate,
    compute,
    iso_week,
)
from fhir_bridge.outcomes.service import load_facts
from smart_app import glossary
from smart_app.config import SESSION_PREFIX
from smart_app.errors import SessionRequired
from smart_app.security import PanelRoute, current_clinic_user, current_staff, launch_base
from smart_app.sessions import ClinicSession, StaffSession
from smart_app.state import smart_state
from smart_app.svg_charts import Series, grouped_bars, line_chart, stacked_bars

router = APIRouter(prefix="/smart", route_class=PanelRoute, include_in_schema=False)

WEEK_CHOICES: Final = (4, 8, 13, 26)
DEFAULT_WEEKS: Final = 8
GROUPINGS: Final = {
    "rule": "Rule",
    "channel": "Channel",
    "location": "Location",
    "language": "Language",
}
COLORS: Final = {
    "delivered": "#2e7d4f",
    "failed": "#b5402a",
    "withheld": "#d49a2a",
    "other": "#9aa7b4",
    "confirm": "#24518a",
    "opt-out": "#b5402a",
    "reminded": "#24518a",
    "not-reminded": "#c98a2b",
    "all": "#24518a",
    "crisis": "#b5402a",
}


def _signed_in(request: Request) -> StaffSession | ClinicSession:
    """This tab's session, whichever launch opened it (the numbers are clinic-wide)."""
    try:
        return current_staff(request)
    except SessionRequired:
        return current_clinic_user(request)


@router.get(SESSION_PREFIX + "/outcomes")
def outcomes_page(request: Request, weeks: str | None = None, by: str | None = None) -> Response:
    """Delivery, replies, staff response and no-shows over the last weeks, with charts."""
    user = _signed_in(request)
    state = smart_state(request.app)
    n_weeks = int(weeks) if weeks in {str(n) for n in WEEK_CHOICES} else DEFAULT_WEEKS
    grouping = by if by in GROUPINGS else "rule"
    today = state.deps.clock().date()
    since = today - timedelta(days=today.weekday(), weeks=n_weeks - 1)
    facts = load_facts(state.deps.sessions, since)
    weekly = compute(facts, by="week", since=since)
    grouped = compute(facts, by=grouping, since=since)
    places = compute(facts, by="location", since=since)
    week_keys = _weeks(since, today)
    base = launch_base(request)
    page = state.templates.get_template("outcomes.html").render(
        base=base,
        back=f"{base}/panel" if isinstance(user, StaffSession) else f"{base}/clinic",
        user=user.fhir_user,
        since=since,
        today=today,
        weeks=n_weeks,
        week_choices=WEEK_CHOICES,
        by=grouping,
        groupings=GROUPINGS,
        total=weekly.total,
        no_show=weekly.no_show_total,
        grouped=grouped,
        reasons=[
            (glossary.reason(code), code, n)
            for code, n in sorted(
                weekly.total.withheld_by_reason.items(), key=lambda kv: (-kv[1], kv[0])
            )
        ],
        charts=_charts(weekly, places, week_keys),
        small_count=SMALL_COUNT,
        share=_share,
    )
    return HTMLResponse(page)


@router.get("/outcomes.css")
def outcomes_css() -> Response:
    """The outcomes page's own styles (served by us like the panel's)."""
    content = resources.files("smart_app").joinpath("static", "outcomes.css").read_bytes()
    return Response(content, media_type="text/css")


def _weeks(since: date, today: date) -> list[str]:
    keys, day = [], since
    while day <= today:
        keys.append(iso_week(day))
        day += timedelta(weeks=1)
    return keys


def _share(part: int, whole: int) -> str:
    """``part`` of ``whole`` as a percentage, or as a count under ``SMALL_COUNT``."""
    return Rate(part, whole).text()


def _charts(weekly: OutcomeReport, places: OutcomeReport, week_keys: list[str]) -> dict[str, Any]:
    by_week: dict[str, GroupOutcome] = {group.key: group for group in weekly.groups}
    rows = [by_week.get(key) for key in week_keys]
    labels = [key.split("-")[1] for key in week_keys]

    def counts(pick: str) -> list[float | None]:
        return [float(getattr(row, pick)) if row else 0.0 for row in rows]

    other = [float(row.cancelled + row.in_progress + row.unknown) if row else 0.0 for row in rows]
    volume = stacked_bars(
        labels,
        [
            Series("Delivered", COLORS["delivered"], counts("delivered")),
            Series("Failed", COLORS["failed"], counts("failed")),
            Series("Withheld", COLORS["withheld"], counts("withheld")),
            Series("Cancelled / pending", COLORS["other"], other),
        ],
        title="Messages per week",
        chart_id="chart-volume",
    )
    replies = line_chart(
        labels,
        [
            Series(
                "Confirmed (C)",
                COLORS["confirm"],
                [row.confirmations.percent if row else None for row in rows],
            ),
            Series(
                "Opted out",
                COLORS["opt-out"],
                [row.opt_outs.percent if row else None for row in rows],
            ),
        ],
        title="Confirmation and opt-out rates per week",
        chart_id="chart-replies",
    )
    response = grouped_bars(
        labels,
        [
            Series("All replies", COLORS["all"], [_hours(row, crisis=False) for row in rows]),
            Series("Crisis", COLORS["crisis"], [_hours(row, crisis=True) for row in rows]),
        ],
        title="Median hours to a staff response, per week",
        chart_id="chart-response",
        percent=False,
    )
    no_show_rows = [*places.no_shows, places.no_show_total]
    no_shows = grouped_bars(
        [_short_place(row.label) for row in no_show_rows],
        [
            Series("Reminded", COLORS["reminded"], [r.reminded.percent for r in no_show_rows]),
            Series(
                "Not reminded",
                COLORS["not-reminded"],
                [r.not_reminded.percent for r in no_show_rows],
            ),
        ],
        title="No-show rate: reminded against not reminded, by location",
        chart_id="chart-no-shows",
    )
    return {"volume": volume, "replies": replies, "response": response, "no_shows": no_shows}


def _hours(row: GroupOutcome | None, *, crisis: bool) -> float | None:
    if row is None:
        return None
    median = (row.crisis_response if crisis else row.staff_response).median_minutes
    return None if median is None else round(median / 60, 1)


def _short_place(label: str) -> str:
    """A location's name without its reference (the table below has both)."""
    name = label.split(" (Location/")[0]
    return name if len(name) <= 18 else name[:17] + "…"
