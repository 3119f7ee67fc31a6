"""``fhir-bridge audit reconcile | export | purge``: what a compliance officer runs.

``reconcile`` exits 3 when anything is different, unknown to us, or missing and not yet
written again (a status tells the truth); ``purge --dry-run`` only counts.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fhir_bridge.settings import UserError

if TYPE_CHECKING:
    from fhir_bridge.audit.reconcile import ReconcileDeps, ReconcileResult
    from fhir_bridge.audit.retention import RetentionPolicy
    from fhir_bridge.runtime import Runtime

EXIT_DISCREPANCIES = 3


def register(sub: argparse._SubParsersAction, command: Callable[..., Any]) -> None:
    """Add the ``audit`` group; ``command`` is the main CLI's subcommand helper."""
    group = command(sub, "audit", "reconcile with the EHR, export for auditors, purge by policy")
    actions = group.add_subparsers(metavar="ACTION")
    cmd = command(
        actions,
        "reconcile",
        "compare our Communications with the EHR's; write the missing again (exit 3 on any "
        "difference)",
        reconcile_command,
    )
    cmd.add_argument("--since", type=_moment, metavar="DATE", help="only Communications since")
    cmd.add_argument("--json", action="store_true", help="machine-readable output")
    cmd = command(
        actions,
        "export",
        "Communications and AuditEvents as NDJSON (one file per type) or CSV, files 0600",
        export_command,
    )
    cmd.add_argument("--since", type=_moment, metavar="DATE", required=True)
    cmd.add_argument("--until", type=_moment, metavar="DATE", required=True, help="exclusive")
    cmd.add_argument("--format", choices=["ndjson", "csv"], default="ndjson")
    cmd.add_argument(
        "--out", type=Path, metavar="DIR", help="new folder (default DATA_DIR/exports/<time>)"
    )
    cmd.add_argument(
        "--include-text",
        action="store_true",
        help="also message texts, subject lines, addresses and reason details (PHI)",
    )
    cmd = command(
        actions,
        "purge",
        "blank bodies and delete records past the retention settings (audit fields kept)",
        purge_command,
    )
    cmd.add_argument("--dry-run", action="store_true", help="count only; change nothing")
    cmd.add_argument("--json", action="store_true", help="machine-readable output")


def _moment(text: str) -> datetime:
    """A date (``2026-01-31``, UTC midnight) or an ISO instant."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError("expected a date like 2026-01-31") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _runtime() -> Runtime:
    from fhir_bridge.cli import require_database
    from fhir_bridge.runtime import get_runtime
    from fhir_bridge.settings import get_settings

    require_database(get_settings())
    return get_runtime()


def reconcile_deps(rt: Runtime) -> ReconcileDeps:
    from fhir_bridge import jobs
    from fhir_bridge.audit.reconcile import ReconcileDeps
    from fhir_bridge.audit.service import observer

    return ReconcileDeps(
        factory=rt.sessions,
        ehr=rt.ehr,
        clock=rt.clock,
        identifier_system=rt.settings.communication_identifier_system,
        ehr_writes=rt.settings.ehr_writes_communication,
        rewrite_message=lambda message_id: jobs.write_back(rt, message_id),
        observer=observer(),
    )


def reconcile_command(args: argparse.Namespace) -> int:
    from fhir_bridge.audit.reconcile import reconcile
    from fhir_bridge.audit.retention import os_user

    rt = _runtime()
    if rt.settings.ehr_writes_communication and not rt.settings.ehr_base_url:
        raise UserError("no EHR to reconcile with: set FHIR_BRIDGE_EHR_BASE_URL")
    result = reconcile(reconcile_deps(rt), args.since, trigger="cli", requestor=os_user())
    print(json.dumps(result.as_dict(), indent=2) if args.json else summary_table(result))
    return 0 if result.verdict in ("ok", "system-of-record") else EXIT_DISCREPANCIES


def summary_table(result: ReconcileResult) -> str:
    c = result.counts
    since = f", since {result.since.date().isoformat()}" if result.since else ""
    lines = [f"Reconciliation with the EHR (run {result.run_id}{since}): {result.verdict}"]
    if result.verdict == "system-of-record":
        lines.append(
            f"  the EHR takes no Communication writes: {c['held']} Communications are kept "
            "here, served by /fhir (the system of record); nothing to compare"
        )
        return "\n".join(lines)
    rows = [
        ("held here", c["held"], ""),
        ("matching the EHR", c["matched"], ""),
        ("missing in the EHR", c["missing"], f"written again: {c['rewritten']}"),
        ("different", c["different"], ""),
        ("unknown to us", c["unknown"], ""),
    ]
    lines += [f"  {name:<20} {count:>7}  {note}".rstrip() for name, count, note in rows]
    for finding in result.findings:
        where = f"EHR Communication/{finding.ehr_id}" if finding.ehr_id else "not in the EHR"
        detail = ", ".join(finding.fields) if finding.fields else finding.outcome or ""
        lines.append(f"  {finding.kind:<8} {finding.identifier}  {where}  {detail}".rstrip())
    return "\n".join(lines)


def export_command(args: argparse.Namespace) -> int:
    from fhir_bridge.audit.export import ExportRequest, export, stderr_progress
    from fhir_bridge.audit.retention import os_user
    from fhir_bridge.audit.service import observer

    rt = _runtime()
    stamp = rt.clock().strftime("%Y%m%dT%H%M%SZ")
    out = args.out or rt.settings.data_dir / "exports" / stamp
    request = ExportRequest(args.since, args.until, args.format, out, args.include_text)
    result = export(
        rt.sessions,
        request,
        observer(),
        progress=stderr_progress,
        requestor=os_user(),
        clock=rt.clock,
    )
    for name, count in result.files.items():
        print(
            f"{result.folder / name}  {count} resources"
            if name.endswith("ndjson")
            else f"{result.folder / name}  {count} rows"
        )
    return 0


def purge_command(args: argparse.Namespace) -> int:
    from fhir_bridge.audit.retention import os_user, purge
    from fhir_bridge.audit.service import observer

    rt = _runtime()
    result = purge(
        rt.sessions,
        retention_policy(rt),
        rt.clock,
        observer(),
        dry_run=args.dry_run,
        requestor=os_user(),
    )
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    verb = "would blank" if result.dry_run else "blanked"
    gone = "would delete" if result.dry_run else "deleted"
    print(f"bodies before {result.body_horizon:%Y-%m-%d}: {verb} {_counts(result.bodies)}")
    print(f"records before {result.record_horizon:%Y-%m-%d}: {gone} {_counts(result.deleted)}")
    if result.audit_event_id:
        print(f"recorded as AuditEvent/{result.audit_event_id}")
    return 0


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in counts.items())


def retention_policy(rt: Runtime) -> RetentionPolicy:
    from fhir_bridge.audit.retention import RetentionPolicy

    return RetentionPolicy(rt.settings.retain_bodies_days, rt.settings.retain_records_days)


# The scheduled runs (Celery beat, ``fhir_bridge.tasks``) share the wiring above.


def reconcile_job(rt: Runtime) -> str:
    """The daily reconciliation; its ``reconciliation_run`` row is what ``doctor`` shows."""
    import logging

    from fhir_bridge.audit.reconcile import reconcile
    from fhir_bridge.fhir.errors import EhrError

    if rt.settings.ehr_writes_communication and not rt.settings.ehr_base_url:
        return "no-ehr"
    try:
        return reconcile(reconcile_deps(rt), trigger="schedule").verdict
    except EhrError as error:
        logging.getLogger(__name__).warning(
            "reconciliation failed", extra={"error": type(error).__name__, "status": error.status}
        )
        return "failed"


def purge_job(rt: Runtime) -> dict[str, Any]:
    """The daily retention purge (one AuditEvent per run)."""
    from fhir_bridge.audit.retention import purge
    from fhir_bridge.audit.service import observer

    return purge(rt.sessions, retention_policy(rt), rt.clock, observer()).as_dict()
