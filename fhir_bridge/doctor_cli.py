"""``fhir-bridge doctor``: print one line per check (✓ ✗ ! -) with the fix, or ``--json``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from fhir_bridge.doctor import DEFAULT_TIMEOUT_SECONDS, CheckResult, exit_status, run_checks

DESCRIPTION = """\
Check this installation from end to end and say what to fix: settings, database
(migrated?), broker, the EHR (reachable, CapabilityStatement, token, topics, our
Subscriptions), the public webhook URL, each message channel (dry run: nothing is
sent unless --send-test-to is given) and the rules file. Exit status 0 when no
check failed (warnings allowed), 1 otherwise."""

MARKS = {"ok": "✓", "fail": "✗", "warn": "!", "skip": "-"}
ASCII_MARKS = {"ok": "OK", "fail": "FAIL", "warn": "WARN", "skip": "SKIP"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``doctor`` to the main CLI."""
    parser = subparsers.add_parser(
        "doctor",
        help="check settings, database, broker, EHR, webhook, channels and rules; say the fix",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--send-test-to",
        metavar="ADDRESS",
        help="send one real test message to this phone number (SMS) or email address",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="seconds to wait for each network check (default %(default)s)",
    )
    parser.set_defaults(func=doctor_command)


def doctor_command(args: argparse.Namespace) -> int:
    from fhir_bridge.settings import load_settings

    results = run_checks(
        load_settings,
        send_test_to=args.send_test_to,
        timeout=args.timeout,
        raise_errors=bool(getattr(args, "debug", False)),
    )
    if args.json:
        print(json.dumps(as_json(results), indent=2))
    else:
        print_report(results, sys.stdout)
    return exit_status(results)


def as_json(results: Sequence[CheckResult]) -> dict[str, object]:
    return {
        "ok": exit_status(results) == 0,
        "checks": [result.as_dict() for result in results],
    }


def print_report(results: Sequence[CheckResult], out: TextIO) -> None:
    marks = MARKS if _can_print(out, "".join(MARKS.values())) else ASCII_MARKS
    width = max(len(result.name) for result in results)
    mark_width = max(len(mark) for mark in marks.values())
    indent = " " * (mark_width + 1 + width + 2)
    for result in results:
        detail = result.detail if result.status != "skip" else f"skipped: {result.detail}"
        print(f"{marks[result.status]:<{mark_width}} {result.name:<{width}}  {detail}", file=out)
        if result.fix and result.status in ("fail", "warn"):
            print(f"{indent}fix: {result.fix}", file=out)
    counts = {status: sum(1 for r in results if r.status == status) for status in MARKS}
    print(
        f"\n{counts['ok']} ok, {counts['fail']} failed, {counts['warn']} warnings, "
        f"{counts['skip']} skipped",
        file=out,
    )


def _can_print(out: TextIO, text: str) -> bool:
    encoding = getattr(out, "encoding", None) or "ascii"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True
