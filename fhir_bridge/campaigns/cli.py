"""``fhir-bridge campaigns …`` and ``fhir-bridge broadcast create``: thin shells over
:mod:`fhir_bridge.campaigns.service`. Output is counts and ids only, never a name."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fhir_bridge.settings import UserError


def register(sub: argparse._SubParsersAction, command: Any) -> None:
    """Add ``campaigns`` and ``broadcast`` to the main CLI (``command`` makes a subcommand)."""
    group = command(sub, "campaigns", "health-tip and preventive-care campaigns")
    actions = group.add_subparsers(metavar="ACTION")
    cmd = command(actions, "audience", "count an audience from the rules file", _audience)
    cmd.add_argument("name")
    cmd.add_argument("--dry-run", action="store_true", required=True, help="counts only")
    cmd = command(actions, "draft", "draft a campaign (approved later by someone else)", _draft)
    cmd.add_argument("name")
    cmd.add_argument("--audience", required=True, help="an audience name from the rules file")
    cmd.add_argument("--kind", default="health-tips", choices=("health-tips", "preventive-care"))
    cmd.add_argument("--purpose", help="consent purpose (default: health-tips)")
    cmd.add_argument("--tip", action="append", default=[], help="tip names (default: all)")
    cmd.add_argument("--every-days", type=int, help="cadence in days")
    cmd.add_argument("--until", type=_instant, help="end (ISO 8601 with offset)")
    _as(cmd)
    for name, text, func in (
        ("preview", "audience count and a sample in each language", _preview),
        ("approve", "approve a draft (not its author)", _approve),
        ("run", "plan the next run and queue what is due", _run),
        ("pause", "hold messages not yet sent", _pause),
        ("resume", "send held messages", _resume),
        ("cancel", "withhold every message not yet sent", _cancel),
        ("status", "queued / sent / delivered / failed / replies", _status),
    ):
        cmd = command(actions, name, text, func)
        cmd.add_argument("id")
        if name in ("approve", "cancel"):
            _as(cmd)
    group = command(sub, "broadcast", "urgent notices to everyone affected")
    actions = group.add_subparsers(metavar="ACTION")
    cmd = command(actions, "create", "draft a broadcast to appointments at a place", _broadcast)
    cmd.add_argument("--location", required=True, help="Location/<id>")
    cmd.add_argument("--from", dest="start", required=True, type=_instant)
    cmd.add_argument("--to", dest="end", required=True, type=_instant)
    cmd.add_argument("--template", required=True, help="a broadcast template (e.g. closure)")
    cmd.add_argument("--cancels-appointments", action="store_true")
    cmd.add_argument("--emergency", action="store_true", help="ignore quiet hours")
    _as(cmd)


def _as(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--as", dest="by", required=True, help="Practitioner/<id> acting")


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            "expected ISO 8601, e.g. 2026-12-02T00:00-05:00"
        ) from error
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("give a UTC offset, e.g. 2026-12-02T00:00-05:00")
    return moment


def _call(func: Callable[..., Any], *args: Any) -> Any:
    from fhir_bridge.campaigns.service import CampaignError
    from fhir_bridge.cli import _runtime

    try:
        return func(_runtime(), *args)
    except CampaignError as error:
        raise UserError(str(error)) from None


def _print(value: Any) -> int:
    print(json.dumps(value, indent=2, default=str))
    return 0


def _audience(args: argparse.Namespace) -> int:
    from fhir_bridge.campaigns import service

    return _print(_call(service.dry_run, args.name))


def _draft(args: argparse.Namespace) -> int:
    from fhir_bridge.campaigns import service

    def make(rt: Any) -> str:
        request = service.Draft(
            name=args.name,
            kind=args.kind,
            audience=service.audience_of(rt, args.audience),
            by=args.by,
            templates=tuple(args.tip),
            purpose=args.purpose,
            cadence_days=args.every_days,
            ends_at=args.until,
        )
        return service.draft(rt, request)

    return _print({"id": _call(make)})


def _broadcast(args: argparse.Namespace) -> int:
    from fhir_bridge.campaigns import service

    def make(rt: Any) -> str:
        return service.draft(
            rt,
            service.Draft(
                name=f"broadcast {args.template}",
                kind="broadcast",
                audience=service.broadcast_audience(args.location, args.start, args.end),
                by=args.by,
                templates=(args.template,),
                priority="alert",
                emergency=args.emergency,
                cancels_appointments=args.cancels_appointments,
            ),
        )

    return _print({"id": _call(make)})


def _preview(args: argparse.Namespace) -> int:
    from fhir_bridge.campaigns import service

    found = _call(service.preview, args.id)
    return _print(
        {"audience": found.audience, "breakdown": found.breakdown, "samples": found.samples}
    )


def _approve(args: argparse.Namespace) -> int:
    from fhir_bridge.campaigns import service

    _call(service.approve, args.id, args.by)
    return _print({"id": args.id, "status": "approved"})


def _run(args: argparse.Namespace) -> int:
    from fhir_bridge.campaigns import service

    result = _call(service.run, args.id)
    return _print(
        {
            "run": result.run,
            "audience": result.audience,
            "planned": result.planned,
            "withheld": dict(result.withheld),
            "queued": result.enqueued,
            "reminders_withheld": result.reminders_withheld,
        }
    )


def _pause(args: argparse.Namespace) -> int:
    from fhir_bridge.campaigns import service

    return _print({"held": _call(service.pause, args.id)})


def _resume(args: argparse.Namespace) -> int:
    from fhir_bridge.campaigns import service

    return _print({"released": _call(service.resume, args.id)})


def _cancel(args: argparse.Namespace) -> int:
    from fhir_bridge.campaigns import service

    return _print({"withheld": _call(service.cancel, args.id, args.by)})


def _status(args: argparse.Namespace) -> int:
    from fhir_bridge.campaigns import service

    found = _call(service.status, args.id)
    if sys.stdout.isatty():
        total = found["queued"] + found["sending"] + found["sent"] + found["failed"]
        done = found["sent"] + found["failed"]
        width = 30
        filled = width * done // total if total else width
        print(f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} sent or failed")
    return _print(found)
