"""``fhir-bridge report``: how outreach is doing, as a table (or JSON) on stdout.

Clinic-wide numbers only: no row names a patient. Rates over fewer than 10 cases print as
counts ("3 of 7").
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from datetime import date
from typing import Any

from fhir_bridge.outcomes.measures import (
    BY_CHOICES,
    NO_CASES,
    SMALL_COUNT,
    GroupOutcome,
    NoShowOutcome,
    OutcomeReport,
    Rate,
)
from fhir_bridge.settings import UserError

COLUMNS = (
    "messages",
    "delivered",
    "failed",
    "withheld",
    "opt-out",
    "confirmed",
    "resched.",
    "crisis",
    "staff response",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``report`` to the main CLI."""
    text = "outcome measures: delivery, opt-outs, confirmations, replies, no-shows"
    parser = subparsers.add_parser("report", help=text, description=text)
    parser.add_argument(
        "--since",
        metavar="DATE",
        type=_date,
        help="first day (YYYY-MM-DD, UTC); default: the Monday 8 ISO weeks back",
    )
    parser.add_argument(
        "--until", metavar="DATE", type=_date, help="day after the last (YYYY-MM-DD, UTC)"
    )
    parser.add_argument(
        "--by", choices=BY_CHOICES, default="week", help="one row per (default: week)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--campaign",
        metavar="ID",
        help="one campaign's numbers over all its runs (sent, delivered, opt-outs, replies, "
        "booked care); --since/--until/--by do not apply",
    )
    parser.add_argument(
        "--opt-out-days",
        metavar="N",
        type=int,
        default=7,
        help="with --campaign: a STOP this many days after a campaign message counts (7)",
    )
    parser.set_defaults(func=report_command)


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a date as YYYY-MM-DD") from None


def report_command(args: argparse.Namespace) -> int:
    from fhir_bridge.cli import require_database
    from fhir_bridge.outcomes.service import default_since, load_report
    from fhir_bridge.runtime import get_runtime
    from fhir_bridge.settings import get_settings

    require_database(get_settings())
    rt = get_runtime()
    if args.campaign:
        return _campaign_report(rt.sessions, args)
    since = args.since or default_since(rt.clock().date())
    if args.until is not None and args.until <= since:
        raise UserError("--until must be after --since")
    report = load_report(rt.sessions, by=args.by, since=since, until=args.until)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(render_text(report))
    return 0


def _campaign_report(sessions: Any, args: argparse.Namespace) -> int:
    from fhir_bridge.outcomes import campaigns

    if args.opt_out_days < 1:
        raise UserError("--opt-out-days must be at least 1")
    try:
        outcome = campaigns.load(sessions, args.campaign, opt_out_days=args.opt_out_days)
    except campaigns.UnknownCampaign:
        raise UserError("no campaign with that id (see fhir-bridge campaigns status)") from None
    print(json.dumps(outcome.as_json(), indent=2) if args.json else campaigns.render_text(outcome))
    return 0


def render_text(report: OutcomeReport) -> str:
    """The report as aligned plain-text tables."""
    period = f"{report.since.isoformat()} to {report.until.isoformat() if report.until else 'now'}"
    lines = [f"How outreach is doing, {period} (UTC), by {report.by}", ""]
    rows = [_cells(group) for group in report.groups]
    lines += _table([report.by, *COLUMNS], [*rows, _cells(report.total)], separate_last=True)
    reasons = Counter(report.total.withheld_by_reason)
    if reasons:
        lines += ["", "Withheld, by reason"]
        lines += _table(["reason", "messages"], [[r, str(n)] for r, n in reasons.most_common()])
    lines += ["", "No-shows (appointments fulfilled or no-show in the period)"]
    no_show_rows = [_no_show_cells(row) for row in report.no_shows]
    lines += _table(
        [report.by if report.no_shows else "", "reminded", "not reminded"],
        [*no_show_rows, _no_show_cells(report.no_show_total)],
        separate_last=bool(no_show_rows),
    )
    lines += [
        "",
        f"Rates over fewer than {SMALL_COUNT} cases show as counts. Opt-out rate: STOP "
        "replies and email unsubscribes / delivered; confirmed: C replies / delivered "
        "appointment reminders; staff response: median time to mark a reply handled.",
    ]
    return "\n".join(lines)


def _cells(group: GroupOutcome) -> list[str]:
    return [
        group.label,
        str(group.messages),
        str(group.delivered),
        str(group.failed),
        str(group.withheld),
        group.opt_outs.text(),
        group.confirmations.text(),
        str(group.reschedule_requests),
        str(group.crisis_replies),
        group.staff_response.text(),
    ]


def _no_show_cells(row: NoShowOutcome) -> list[str]:
    return [row.label, _no_show_text(row.reminded), _no_show_text(row.not_reminded)]


def _no_show_text(rate: Rate) -> str:
    if rate.denominator == 0:
        return NO_CASES
    if rate.percent is None:
        return f"{rate.numerator} of {rate.denominator}"
    return f"{rate.percent:.1f}% of {rate.denominator}"


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, separate_last: bool = False
) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    body = [line(r) for r in rows]
    if separate_last and len(body) > 1:
        body.insert(len(body) - 1, rule)
    return [line(header), rule, *body]
