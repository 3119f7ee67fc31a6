"""The live half of "one snapshot, two callers": referenced resources from our store or the EHR.

``rules.snapshot.build_snapshot`` is what ``preview`` also calls; here its
``lookup`` is backed by ``resource_state``: a Location, Practitioner, Medication…
read once from the EHR is kept with its version and re-read after
``reference_ttl`` (a renamed clinic or a corrected time zone reaches messages
within that time; a notification about the resource itself refreshes it at once).

Network reads happen in :func:`prefetch_references`, called *before* the
planning or delivery transaction opens, so no EHR call waits while a database
lock is held. Inside the transaction the lookup reads the store; only a
reference that prefetch could not see coming (an id-only event whose focus is
read inside the transaction) is fetched there, once, and then cached.
When the EHR is unreachable a stale cached copy is used, and a reference the
EHR does not have is left out (the rules then use their documented fallbacks).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.fhir.client import is_readable_reference
from fhir_bridge.fhir.errors import EhrError, EhrNotFound
from fhir_bridge.fhir.resources import Version
from fhir_bridge.outreach import repository
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import PlannedMessage, ResourceState
from fhir_bridge.sync import repository as state_repository
from rules.model import PatientSnapshot, SentRecord
from rules.snapshot import Lookup, LookupMany, build_snapshot, referenced_closure_by_level

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReferenceSource:
    """Where referenced resources come from: the EHR client, how long a copy stays fresh."""

    ehr: Any
    ttl: timedelta


MISSING_MARK = "_fhir_bridge_missing"


def _fresh_body(
    session: Session, reference: str, now: datetime, ttl: timedelta
) -> tuple[Mapping[str, Any] | None, bool]:
    """The stored body (or ``None``) and whether it is still fresh.

    A reference the EHR answered 404 for is remembered as missing (a marker row) for the
    same TTL, so a dangling reference costs one EHR read per TTL, not one per planning.
    """
    resource_type, _, resource_id = reference.partition("/")
    row = state_repository.get_state(session, resource_type, resource_id)
    if row is None:
        return None, False
    return _body_and_freshness(row, now, ttl)


def _body_and_freshness(
    row: ResourceState, now: datetime, ttl: timedelta
) -> tuple[Mapping[str, Any] | None, bool]:
    body = None if row.body.get(MISSING_MARK) else row.body
    return body, row.stored_at >= now - ttl


def _missing(reference: str) -> dict[str, Any]:
    resource_type, _, resource_id = reference.partition("/")
    return {"resourceType": resource_type, "id": resource_id, MISSING_MARK: True}


def _fetch(ehr: Any, reference: str) -> dict[str, Any] | EhrError | None:
    if not is_readable_reference(reference):
        return None  # a name where the id belongs: no server has it (the rules go without)
    resource_type, _, resource_id = reference.partition("/")
    try:
        resource = ehr.read(resource_type, resource_id)
    except EhrNotFound:
        return None
    except EhrError as error:
        log.warning("referenced resource unavailable", extra={"type": resource_type})
        return error
    return dict(resource) if isinstance(resource, Mapping) else None


def _store(session: Session, resource: Mapping[str, Any], now: datetime) -> None:
    resource_type, resource_id = resource.get("resourceType"), resource.get("id")
    if not isinstance(resource_type, str) or not isinstance(resource_id, str):
        return
    existing = state_repository.get_state(session, resource_type, resource_id)
    version = Version.of(resource)
    state_repository.save_state(
        session,
        existing,
        resource=dict(resource),
        version_id=version.version_id,
        last_updated=version.last_updated,
        patient_ref=None,
        now=now,
    )


def _cached_lookup(
    source: ReferenceSource,
    now: datetime,
    in_session: Callable[[Callable[[Session], Any]], Any],
) -> Lookup:
    """Store first; on a miss or a stale copy read the EHR (outside ``in_session``) and
    keep the answer, a 404 included. An unreachable EHR leaves the stale copy in use."""

    def lookup(reference: str) -> Mapping[str, Any] | None:
        body, fresh = in_session(lambda s: _fresh_body(s, reference, now, source.ttl))
        if fresh:
            return body
        fetched = _fetch(source.ehr, reference)
        if isinstance(fetched, EhrError):
            return body
        in_session(
            lambda s: _store(s, fetched if fetched is not None else _missing(reference), now)
        )
        return fetched

    return lookup


def session_lookup(session: Session, source: ReferenceSource | None, now: datetime) -> LookupMany:
    """Inside the planning transaction: a level of references from the store in one
    statement, reading the EHR only for what prefetch could not foresee (absent or stale:
    one by one, then cached). Without a source the store's copy is used however old."""
    if source is None:
        return lambda references: _stored_bodies(session, references, now, None)
    one_by_one = _cached_lookup(source, now, lambda work: work(session))
    ttl = source.ttl

    def lookup_level(references: Sequence[str]) -> dict[str, Mapping[str, Any] | None]:
        answers = _stored_bodies(session, references, now, ttl)
        for reference in references:
            if reference not in answers:
                answers[reference] = one_by_one(reference)
        return answers

    return lookup_level


def _stored_bodies(
    session: Session, references: Sequence[str], now: datetime, ttl: timedelta | None
) -> dict[str, Mapping[str, Any] | None]:
    """What the store holds of ``references`` in one statement: copies still fresh within
    ``ttl`` (any age when ``None``); absent and stale ones are left out."""
    answers: dict[str, Mapping[str, Any] | None] = {}
    for reference, row in state_repository.get_states(session, references).items():
        body, fresh = _body_and_freshness(row, now, ttl or timedelta(0))
        if fresh or ttl is None:
            answers[reference] = body
    return answers


def prefetch_references(
    factory: sessionmaker[Session],
    source: ReferenceSource | None,
    resources: Sequence[Mapping[str, Any]],
    now: datetime,
) -> None:
    """Bring every resource the rules will follow from ``resources`` into the store.

    Level by level: one short transaction reads what the store holds of a level's
    references, the EHR is asked for the missing and stale ones together (one ``batch``,
    or side by side), and one short transaction keeps the answers, 404s included. No EHR
    call happens while a transaction is open. An unreachable EHR leaves stale copies in use.
    """
    if source is None or not resources:
        return

    def lookup_level(references: Sequence[str]) -> dict[str, Mapping[str, Any] | None]:
        with transaction(factory) as session:
            rows = state_repository.get_states(session, references)
            held = {ref: _body_and_freshness(row, now, source.ttl) for ref, row in rows.items()}
        answers: dict[str, Mapping[str, Any] | None] = {
            ref: body for ref, (body, fresh) in held.items() if fresh
        }
        wanted = [ref for ref in references if ref not in answers]
        if not wanted:
            return answers
        fetched = fetch_many(source.ehr, wanted)
        keep = [
            resource if resource is not None else _missing(ref)
            for ref, resource in fetched.items()
            if not isinstance(resource, EhrError)
        ]
        if keep:
            with transaction(factory) as session:
                for resource in keep:
                    _store(session, resource, now)
        for ref in wanted:
            answer = fetched.get(ref)
            answers[ref] = (
                held.get(ref, (None, False))[0] if isinstance(answer, EhrError) else answer
            )
        return answers

    referenced_closure_by_level(resources, lookup_level)


def fetch_many(ehr: Any, references: Sequence[str]) -> dict[str, dict[str, Any] | EhrError | None]:
    """Several references read at once where the client can (``read_many``: one ``batch``, or
    side by side), else one by one, and one by one after a failed batch so one bad
    reference costs only its own copy. Per reference: the resource, ``None`` (the EHR does
    not have it) or the `EhrError` that stopped its read."""
    read_many = getattr(ehr, "read_many", None)
    if callable(read_many) and len(references) > 1:
        try:
            return dict(read_many(references))
        except EhrError:
            log.warning("resources unavailable together; reading them one by one")
    return {reference: _fetch(ehr, reference) for reference in references}


def live_snapshot(
    session: Session,
    patient_ref: str,
    patient: Mapping[str, Any] | None,
    *,
    source: ReferenceSource | None,
    now: datetime,
    messages: Sequence[PlannedMessage] | None = None,
) -> PatientSnapshot:
    """Everything the rules may look at for one patient, from our store (and the EHR).

    ``messages``: the patient's message rows when the caller has just read them (re-planning
    needs them too), so they are not read twice.
    """
    resources = [row.body for row in state_repository.resources_for_patient(session, patient_ref)]
    if messages is None:
        messages = repository.messages_for_patient(session, patient_ref)
    history = [
        SentRecord(key=m.key, rule=m.rule, purpose=m.purpose, send_at=m.sent_at or m.send_at)
        for m in messages
        if m.status in repository.HISTORY_STATUSES
    ]
    return build_snapshot(
        patient_ref=patient_ref,
        patient=patient,
        resources=resources,
        lookup=session_lookup(session, source, now),
        history=history,
    )
