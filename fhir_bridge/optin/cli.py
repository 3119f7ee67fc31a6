"""``fhir-bridge campaigns invite``: invite an audience (or a list of patients) to health
tips by SMS. Prints counts only, never a name or a number."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fhir_bridge.settings import UserError


def register(sub: argparse._SubParsersAction, command: Any) -> None:
    """Add ``invite`` to the ``campaigns`` group (created here if it is not there yet)."""
    group = sub.choices.get("campaigns") or command(
        sub, "campaigns", "health-tip and preventive-care campaigns"
    )
    actions = next(
        (a for a in group._actions if isinstance(a, argparse._SubParsersAction)), None
    ) or group.add_subparsers(metavar="ACTION")
    cmd = command(
        actions, "invite", "invite patients to health tips by SMS (they reply YES)", _invite
    )
    who = cmd.add_mutually_exclusive_group(required=True)
    who.add_argument("--audience", help="an audience name from the rules file")
    who.add_argument(
        "--patients",
        type=Path,
        metavar="FILE",
        help="a file of Patient references, one a line (Patient/<id>)",
    )


def _invite(args: argparse.Namespace) -> int:
    from fhir_bridge.cli import _runtime
    from fhir_bridge.optin.service import invite_patients

    rt = _runtime()
    refs = _audience(rt, args.audience) if args.audience else _read_patients(args.patients)
    summary = invite_patients(rt, refs)
    print(json.dumps({"audience": len(refs), **summary.as_json()}, indent=2))
    return 0


def _read_patients(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        raise UserError("--patients: the file cannot be read") from None
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _audience(rt: Any, name: str) -> list[str]:
    """The members of a rules-file audience (``fhir_bridge.campaigns``), by reference."""
    from fhir_bridge.campaigns.audience import fetch
    from fhir_bridge.campaigns.service import CampaignError, audience_of

    try:
        definition = audience_of(rt, name)
    except CampaignError as error:
        raise UserError(str(error)) from None
    now = rt.clock()
    data = fetch(rt.ehr, definition, now)
    return [ref for ref, membership in data.members(definition, now) if membership.member]
