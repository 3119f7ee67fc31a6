"""Reconciliation: does the EHR hold every Communication we hold, as we wrote it?

Our side is the newest version of each Communication (``communication_current``); the EHR's
is found by the Communication's business ``identifier``, many per search
(``identifier=system|a,system|b,…``). Every EHR call happens outside any database
transaction: a page of ours is read in one short transaction, then the EHR is asked.

* **missing** in the EHR: written again. A message's Communication goes back to ``pending``
  and through the write-back (``If-None-Exist`` on the identifier: never a second copy if
  the EHR has it by then; left ``pending``, the relay retries it). A Communication with no
  message behind it (a patient's reply) is created again from the version we hold, with
  the same ``If-None-Exist``.
* **different**: reported with the names of the fields that differ (never their values).
  Compared: identifier, status, statusReason, sent (as instants), subject, payload (unless
  retention removed ours), medium, category; meta, id and text are not.
* **unknown** to us: an EHR Communication carrying our identifier system that we do not
  hold (``identifier=system|``), reported.

When the EHR takes no Communication writes (``FHIR_BRIDGE_EHR_WRITES_COMMUNICATION=false``)
nothing is compared: our read-only FHIR API is the system of record, and the run says so.
Each run is a ``reconciliation_run`` row (what ``doctor`` shows) and an AuditEvent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.audit import events
from fhir_bridge.audit import records_repository as repo
from fhir_bridge.audit.retention import APPLICATION_ACTIVITY, operation_event
from fhir_bridge.audit.service import record
from fhir_bridge.fhir.errors import EhrError
from fhir_bridge.fhir_api.repository import record_version
from fhir_bridge.store.db import transaction

log = logging.getLogger(__name__)

COMPARED: Final = (
    "identifier",
    "status",
    "statusReason",
    "sent",
    "subject",
    "payload",
    "medium",
    "category",
)
PAGE: Final = 50
OK, DIFFERENCES, SYSTEM_OF_RECORD, FAILED = "ok", "differences", "system-of-record", "failed"


def differences(ours: dict[str, Any], theirs: dict[str, Any], *, body_purged: bool) -> list[str]:
    """Names of the compared fields on which the EHR's copy differs from ours (pure)."""
    found = []
    for name in COMPARED:
        if name == "payload" and body_purged:
            continue
        mine, other = ours.get(name), theirs.get(name)
        if name == "sent":
            same = _instant(mine) == _instant(other)
        elif name == "identifier":
            same = all(i in (other or []) for i in mine or [])
        else:
            same = (mine or None) == (other or None)
        if not same:
            found.append(name)
    return found


def _instant(value: Any) -> datetime | str | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Finding:
    """One Communication not as it should be; ``outcome`` for a missing one: ``rewritten``
    or ``pending`` (left for the relay)."""

    kind: str
    identifier: str
    resource_id: str | None = None
    ehr_id: str | None = None
    fields: tuple[str, ...] = ()
    outcome: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


@dataclass
class ReconcileResult:
    run_id: int
    since: datetime | None
    verdict: str = OK
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("held", "matched", "missing", "rewritten", "different", "unknown"), 0
        )
    )
    findings: list[Finding] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "since": self.since.isoformat() if self.since else None,
            "status": self.verdict,
            **self.counts,
            "findings": [f.as_dict() for f in self.findings],
        }

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)
        self.counts[finding.kind] += 1
        if finding.outcome == "rewritten":
            self.counts["rewritten"] += 1


@dataclass(frozen=True)
class ReconcileDeps:
    """``rewrite_message(message_id)`` runs the write-back of one message (``jobs.write_back``)."""

    factory: sessionmaker[Session]
    ehr: Any
    clock: Callable[[], datetime]
    identifier_system: str
    ehr_writes: bool
    rewrite_message: Callable[[str], str]
    observer: events.Observer


def reconcile(
    deps: ReconcileDeps,
    since: datetime | None = None,
    *,
    trigger: str = "cli",
    requestor: str | None = None,
) -> ReconcileResult:
    """Compare, write the missing again, record the run; raises ``EhrError`` (run ``failed``)."""
    with transaction(deps.factory) as session:
        run_id = repo.start_run(session, deps.clock(), since, trigger)
    result = ReconcileResult(run_id, since)
    try:
        if deps.ehr_writes:
            _compare_held(deps, result)
            _find_unknown(deps, result)
        else:
            result.counts["held"] = sum(1 for _ in _held(deps, since))
            result.verdict = SYSTEM_OF_RECORD
    except EhrError as error:
        with transaction(deps.factory) as session:
            repo.fail_run(session, run_id, deps.clock(), _reason(error))
        raise
    if result.verdict != SYSTEM_OF_RECORD:
        c = result.counts
        unrepaired = c["missing"] - c["rewritten"]
        result.verdict = DIFFERENCES if c["different"] or c["unknown"] or unrepaired else OK
    with transaction(deps.factory) as session:
        repo.finish_run(session, run_id, deps.clock(), result.verdict, result.counts)
        record(
            session,
            operation_event(
                observer=deps.observer,
                recorded=deps.clock(),
                operation="reconcile",
                event_type=APPLICATION_ACTIVITY,
                action="E",
                requestor=requestor,
                details={"status": result.verdict, **result.counts},
                outcome=events.OUTCOME_SUCCESS
                if result.verdict in (OK, SYSTEM_OF_RECORD)
                else events.OUTCOME_MINOR_FAILURE,
            ),
        )
    log.info("reconciliation done", extra={"id": run_id, "status": result.verdict})
    return result


def _reason(error: EhrError) -> str:
    return f"{type(error).__name__}" + (f" (HTTP {error.status})" if error.status else "")


def _held(deps: ReconcileDeps, since: datetime | None) -> Iterator[list[repo.Held]]:
    after = 0
    while True:
        with transaction(deps.factory) as session:
            page = repo.held_page(session, since, after, PAGE)
        if not page:
            return
        yield page
        after = page[-1].seq


def _compare_held(deps: ReconcileDeps, result: ReconcileResult) -> None:
    for page in _held(deps, result.since):
        result.counts["held"] += len(page)
        found = _ehr_copies(deps, page)  # no transaction open
        for held in page:
            key = f"{held.identifier_system}|{held.identifier_value}"
            copies = found.get(key, [])
            if not copies:
                outcome = _write_again(deps, held)
                result.add(Finding("missing", key, held.resource_id, held.ehr_id, (), outcome))
                continue
            fields = differences(held.body, copies[0], body_purged=held.body_purged)
            if len(copies) > 1:
                fields.append("duplicated-in-ehr")
            if fields:
                ehr_id = copies[0].get("id")
                result.add(Finding("different", key, held.resource_id, ehr_id, tuple(fields)))
            else:
                result.counts["matched"] += 1


def _ehr_copies(deps: ReconcileDeps, page: list[repo.Held]) -> dict[str, list[dict[str, Any]]]:
    """The EHR's Communications for a page of ours, by ``system|value`` (one search per system)."""
    systems: dict[str, list[str]] = {}
    for held in page:
        systems.setdefault(held.identifier_system, []).append(held.identifier_value)
    wanted = {f"{s}|{v}" for s, values in systems.items() for v in values}
    found: dict[str, list[dict[str, Any]]] = {}
    for system, values in systems.items():
        query = ",".join(f"{system}|{value}" for value in values)
        params = {"identifier": query, "_count": str(2 * len(values))}
        for resource in deps.ehr.search_all("Communication", params):
            for key in _keys(resource) & wanted:
                found.setdefault(key, []).append(resource)
    return found


def _keys(resource: dict[str, Any]) -> set[str]:
    return {
        f"{i.get('system')}|{i.get('value')}"
        for i in resource.get("identifier") or []
        if isinstance(i, dict)
    }


def _write_again(deps: ReconcileDeps, held: repo.Held) -> str:
    """Write a Communication the EHR lost; ``rewritten`` or ``pending`` (the relay retries)."""
    with transaction(deps.factory) as session:
        message = held.identifier_system == deps.identifier_system and repo.is_message(
            session, held.identifier_value
        )
        requested = message and repo.request_rewrite(session, held.identifier_value)
    if message:
        if not requested:  # already pending: the write-back (or the relay) has it
            return "pending"
        try:
            outcome = deps.rewrite_message(held.identifier_value)
        except EhrError as error:
            log.warning(
                "Communication write-back deferred",
                extra={"id": held.resource_id, "error": type(error).__name__},
            )
            return "pending"
        return "rewritten" if outcome == "written" else "pending"
    body = {k: v for k, v in held.body.items() if k not in ("id", "meta")}
    body["meta"] = {k: v for k, v in (held.body.get("meta") or {}).items() if k == "tag"}
    query = f"identifier={held.identifier_system}|{held.identifier_value}"
    stored = deps.ehr.create(body, if_none_exist=query)
    with transaction(deps.factory) as session:
        record_version(session, held.body, ehr_id=stored.get("id"))
    return "rewritten"


def _find_unknown(deps: ReconcileDeps, result: ReconcileResult) -> None:
    params: dict[str, str] = {"identifier": f"{deps.identifier_system}|", "_count": "100"}
    if result.since is not None:
        params["_lastUpdated"] = "ge" + result.since.isoformat()
    for chunk in _chunks(deps.ehr.search_all("Communication", params), 100):
        values = {
            str(i.get("value")): resource
            for resource in chunk
            for i in resource.get("identifier") or []
            if isinstance(i, dict) and i.get("system") == deps.identifier_system
        }
        with transaction(deps.factory) as session:
            held = repo.held_values(session, deps.identifier_system, list(values))
        for value, resource in values.items():
            if value not in held:
                key = f"{deps.identifier_system}|{value}"
                result.add(Finding("unknown", key, None, resource.get("id")))


def _chunks(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def last_run_summary(factory: sessionmaker[Session]) -> tuple[str, str] | None:
    """``(status, one line)`` of the newest finished run, for ``doctor``; None if none ran."""
    with transaction(factory) as session:
        run = repo.last_run(session)
        if run is None:
            return None
        when = run.started_at.strftime("%Y-%m-%d %H:%M UTC")
        if run.status == FAILED:
            return run.status, f"last run {when} failed: {run.error or 'unknown error'}"
        if run.status == SYSTEM_OF_RECORD:
            return run.status, (
                f"last run {when}: the EHR takes no Communication writes; "
                f"{run.held} kept here (system of record)"
            )
        return run.status, (
            f"last run {when}: {run.held} held, {run.matched} matching, "
            f"{run.missing} missing ({run.rewritten} written again), "
            f"{run.different} different, {run.unknown} unknown to us"
        )
