"""``fhir-bridge rules check FILE`` and ``fhir-bridge preview FILE.json``.

Both are offline: checking a rules file and previewing outreach must work on a
laptop with no database, broker or EHR, so people try changes before deploying.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from rules.config import RulesConfigError, load_rules_config
from rules.preview import PreviewInputError, describe, preview

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``rules`` and ``preview`` subcommands to the main CLI."""
    rules = subparsers.add_parser("rules", help="work with the outreach rules file")
    actions = rules.add_subparsers(metavar="ACTION")
    check = actions.add_parser(
        "check", help="validate a rules file (YAML, templates, SMS length at the longest values)"
    )
    check.add_argument("file", help="rules YAML file")
    check.set_defaults(func=check_command)

    show = subparsers.add_parser(
        "preview", help="show what would be sent for a resource or Bundle, without sending"
    )
    show.add_argument("file", help="FHIR R4 resource or Bundle (JSON)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.add_argument("--now", help="plan as of this ISO 8601 instant (default: now)")
    show.add_argument("--rules", help="rules file (default: the shipped rules)")
    show.set_defaults(func=preview_command)


def check_command(args: argparse.Namespace) -> int:
    """Validate a rules file; print each problem with its line and exit 1 if any."""
    try:
        load_rules_config(args.file)
    except RulesConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    print(f"{args.file}: OK")
    return EXIT_OK


def _parse_now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("--now needs a UTC offset, e.g. 2026-12-01T09:00:00Z")
    return parsed.astimezone(UTC)


def preview_command(args: argparse.Namespace) -> int:
    """Plan and render (never send) outreach for the resources in a JSON file."""
    try:
        now = _parse_now(args.now)
    except ValueError as error:
        print(f"fhir-bridge preview: invalid --now: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = load_rules_config(args.rules)
    except RulesConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    try:
        document = json.loads(Path(args.file).read_text(encoding="utf-8"))
        results = preview(document, config, now)
    except (OSError, json.JSONDecodeError, PreviewInputError) as error:
        print(f"fhir-bridge preview: cannot read {args.file}: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps({"now": now.isoformat(), "messages": results}, indent=2, default=str))
    else:
        sys.stdout.write(describe(results))
    return EXIT_OK
