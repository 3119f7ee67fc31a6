"""``fhir-bridge rules check FILE``, ``rules init [FILE]`` and ``fhir-bridge preview FILE.json``.

Both are offline: checking a rules file and previewing outreach must work on a
laptop with no database, broker or EHR, so people try changes before deploying.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from rules.config import DEFAULT_RULES_PATH, RulesConfigError, load_rules_config
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
    init = actions.add_parser(
        "init",
        help="write a commented copy of the shipped rules to edit (never overwrites)",
        description="Write a commented copy of the shipped example rules to FILE, to make "
        "your clinic's own: change the organization section, then point "
        "FHIR_BRIDGE_RULES_FILE at it.",
    )
    init.add_argument("file", nargs="?", default=DEFAULT_INIT_FILE, help="default: %(default)s")
    init.set_defaults(func=init_command)

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


DEFAULT_INIT_FILE = "rules.yaml"
_YOURS = {
    '  clinic_name: "Riverside Health"': "# <- your clinic's name, as patients know it",
    '  clinic_phone: "(555) 010-0100"': "# <- the number patients call back",
    '  link: "https://portal.example.org/visits"': '# <- your patient portal, or ""',
}


def initial_rules_text(file_name: str) -> str:
    """The shipped rules with a header saying what to change, and the example lines marked."""
    header = (
        "# Your clinic's outreach rules for fhir-bridge, copied from the shipped example.\n"
        "#\n"
        "# 1. Replace the example clinic in `organization` (name, phone, portal link, time\n"
        "#    zone): patients read these in every message. Until you do, fhir-bridge logs a\n"
        "#    warning at start and `fhir-bridge doctor` fails.\n"
        f"# 2. Check it:  fhir-bridge rules check {file_name}\n"
        f"# 3. Try it:    fhir-bridge preview --rules {file_name} appointment.json\n"
        f"# 4. Use it:    FHIR_BRIDGE_RULES_FILE={file_name}\n"
        "#\n"
    )
    lines = []
    for line in DEFAULT_RULES_PATH.read_text(encoding="utf-8").splitlines():
        mark = _YOURS.get(line.rstrip())
        lines.append(f"{line.rstrip():<48}{mark}" if mark else line)
    return header + "\n".join(lines) + "\n"


def init_command(args: argparse.Namespace) -> int:
    """Write the commented copy; an existing file is never overwritten."""
    target = Path(args.file)
    try:
        with target.open("x", encoding="utf-8") as out:
            out.write(initial_rules_text(args.file))
    except FileExistsError:
        print(
            f"fhir-bridge rules init: {target} already exists; not overwriting it "
            "(give another FILE)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except OSError as error:
        print(f"fhir-bridge rules init: cannot write {target} ({error.strerror})", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"wrote {target}: edit its organization section, check it with "
        f"`fhir-bridge rules check {target}`, then set FHIR_BRIDGE_RULES_FILE={target}"
    )
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
