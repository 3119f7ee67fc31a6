"""Export for auditors: FHIR Bulk Data style NDJSON (one file per resource type) or CSV.

Rows stream from the database (``yield_per``: a server-side cursor on PostgreSQL), so a
six-year history takes as little memory as a day's. Files are created 0600 in a 0700
folder and never overwritten. Unless ``include_text`` is asked for, nothing free-text
leaves: Communications lose ``payload``, ``topic`` and ``statusReason.text`` (NDJSON), and
the CSV has no text, address or reason-detail columns. Each NDJSON line is checked with
the strict R4 models. The export itself is recorded as an AuditEvent (BALP-style Export).
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final, Literal

from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.audit import events
from fhir_bridge.audit import records_repository as repo
from fhir_bridge.audit.retention import EXPORT, operation_event
from fhir_bridge.audit.service import record
from fhir_bridge.fhir_api.resources import (
    audit_event_resource,
    communication_resource,
    validate_r4,
)
from fhir_bridge.private_files import PRIVATE_FILE_MODE, private_dir
from fhir_bridge.settings import UserError
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import CommunicationVersion, PlannedMessage

Format = Literal["ndjson", "csv"]
FREE_TEXT: Final = ("payload", "topic")
CSV_COLUMNS: Final = (
    "communication_id",
    "version",
    "identifier",
    "status",
    "status_reason",
    "category",
    "purpose",
    "channel",
    "sent",
    "recorded",
    "patient",
    "rule",
    "template",
    "language",
    "message_status",
    "reason",
    "ehr_id",
    "body_sha256",
)
CSV_TEXT_COLUMNS: Final = ("subject_line", "payload_text", "address", "reason_detail")


@dataclass
class ExportResult:
    folder: Path
    files: dict[str, int] = field(default_factory=dict)
    audit_event_id: str | None = None


@dataclass(frozen=True)
class ExportRequest:
    since: datetime
    until: datetime
    format: Format
    out: Path
    include_text: bool = False


Progress = Callable[[str, int], Callable[[], None]]
"""``progress(label, total)`` returns the function to call once per row written."""


def export(
    factory: sessionmaker[Session],
    request: ExportRequest,
    observer: events.Observer,
    *,
    progress: Progress | None = None,
    requestor: str | None = None,
    clock: Callable[[], datetime],
) -> ExportResult:
    if request.until <= request.since:
        raise UserError("--until must be after --since")
    folder = private_dir(request.out)
    result = ExportResult(folder)
    with transaction(factory) as session:
        totals = {
            "Communication": repo.count_communications_between(
                session, request.since, request.until
            ),
            "AuditEvent": repo.count_audit_events_between(session, request.since, request.until),
        }
    with transaction(factory) as session:  # reads only; no network call inside
        if request.format == "csv":
            name = "Communication.csv"
            with _private_writer(folder / name) as out:
                tick = _ticker(progress, name, totals["Communication"])
                result.files[name] = _write_csv(
                    out,
                    repo.communications_between(session, request.since, request.until),
                    request.include_text,
                    tick,
                )
        else:
            for kind, rows in (
                ("Communication", _communications(session, request)),
                ("AuditEvent", _audit_events(session, request)),
            ):
                name = f"{kind}.ndjson"
                with _private_writer(folder / name) as out:
                    tick = _ticker(progress, name, totals[kind])
                    result.files[name] = _write_ndjson(out, rows, tick)
    with transaction(factory) as session:
        result.audit_event_id = record(
            session,
            operation_event(
                observer=observer,
                recorded=clock(),
                operation="export",
                event_type=EXPORT,
                action="R",
                requestor=requestor,
                details={
                    "format": request.format,
                    "since": request.since.isoformat(),
                    "until": request.until.isoformat(),
                    "include-text": str(request.include_text).lower(),
                    **result.files,
                },
            ),
        )
    return result


def _communications(session: Session, request: ExportRequest) -> Iterator[dict[str, Any]]:
    for version, _message in repo.communications_between(session, request.since, request.until):
        resource = communication_resource(version)
        if not request.include_text:
            resource = without_free_text(resource)
        yield resource


def _audit_events(session: Session, request: ExportRequest) -> Iterator[dict[str, Any]]:
    for row in repo.audit_events_between(session, request.since, request.until):
        yield audit_event_resource(row)


def without_free_text(resource: dict[str, Any]) -> dict[str, Any]:
    """A Communication without what a person wrote or was sent (payload, topic, reason text)."""
    kept = {k: v for k, v in resource.items() if k not in FREE_TEXT}
    reason = kept.get("statusReason")
    if isinstance(reason, dict) and "text" in reason:
        kept["statusReason"] = {k: v for k, v in reason.items() if k != "text"}
    return kept


def _write_ndjson(out: IO[str], rows: Iterator[dict[str, Any]], tick: Callable[[], None]) -> int:
    count = 0
    for resource in rows:
        out.write(json.dumps(validate_r4(resource), separators=(",", ":")) + "\n")
        count += 1
        tick()
    return count


def _write_csv(
    out: IO[str],
    rows: Iterator[tuple[CommunicationVersion, PlannedMessage | None]],
    include_text: bool,
    tick: Callable[[], None],
) -> int:
    columns = CSV_COLUMNS + (CSV_TEXT_COLUMNS if include_text else ())
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    count = 0
    for version, message in rows:
        writer.writerow(csv_row(version, message, include_text))
        count += 1
        tick()
    return count


def csv_row(
    version: CommunicationVersion, message: PlannedMessage | None, include_text: bool
) -> dict[str, str]:
    body = version.body
    identifier = (body.get("identifier") or [{}])[0]
    codings = [c for concept in body.get("category") or [] for c in concept.get("coding") or []]
    category = next((c.get("code") for c in codings if "communication-category" in str(c)), "")
    purpose = next((c.get("code") for c in codings if "outreach-purpose" in str(c)), "")
    reason = (body.get("statusReason") or {}).get("coding") or [{}]
    row = {
        "communication_id": version.resource_id,
        "version": str(version.version),
        "identifier": f"{identifier.get('system', '')}|{identifier.get('value', '')}",
        "status": str(body.get("status", "")),
        "status_reason": str(reason[0].get("code") or ""),
        "category": str(category or ""),
        "purpose": str(purpose or ""),
        "channel": (message.channel if message else None) or "",
        "sent": str(body.get("sent") or ""),
        "recorded": version.recorded_at.isoformat(),
        "patient": str((body.get("subject") or {}).get("reference") or ""),
        "rule": message.rule if message else "",
        "template": message.template if message else "",
        "language": message.language if message else "",
        "message_status": message.status if message else "",
        "reason": (message.reason if message else None) or "",
        "ehr_id": version.ehr_id or "",
        "body_sha256": (message.body_sha256 if message else version.body_sha256) or "",
    }
    if include_text:
        payload = body.get("payload") or [{}]
        row.update(
            subject_line=(message.subject_line if message else None) or "",
            payload_text=str(payload[0].get("contentString") or ""),
            address=(message.address if message else None) or "",
            reason_detail=(message.reason_detail if message else None) or "",
        )
    return row


class _private_writer:
    """A new 0600 text file (never overwriting one), closed on exit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def __enter__(self) -> IO[str]:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        except FileExistsError:
            raise UserError(f"{self.path} exists already: choose another --out folder") from None
        self._file = os.fdopen(fd, "w", encoding="utf-8", newline="")
        return self._file

    def __exit__(self, *exc_info: object) -> None:
        assert self._file is not None
        self._file.close()


def _ticker(progress: Progress | None, label: str, total: int) -> Callable[[], None]:
    return progress(label, total) if progress is not None else (lambda: None)


def stderr_progress(label: str, total: int) -> Callable[[], None]:
    """A plain progress line on stderr, only on a terminal (a pipe or a log stays clean)."""
    if not sys.stderr.isatty():
        return lambda: None
    done = 0
    step = max(total // 100, 1)

    def tick() -> None:
        nonlocal done
        done += 1
        if done % step == 0 or done == total:
            width = 30
            filled = width * done // max(total, 1)
            sys.stderr.write(f"\r{label:<20} [{'#' * filled:<{width}}] {done}/{total}")
            if done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    return tick
