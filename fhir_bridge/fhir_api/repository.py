"""All SQL of the read-only FHIR API: Communications as written, and their search.

``record_version`` is called by whoever writes a Communication (outbound write-back,
delivery-status sync, inbound replies) inside the transaction that records the write,
so what the API serves is in step with what the EHR was sent.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, String, and_, cast, delete, exists, false, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from fhir_bridge.fhir_api.search import Criterion, SearchQuery, TokenValue, reference_token
from fhir_bridge.store.models import (
    AuditEventRecord,
    ClientAssertion,
    CommunicationCurrent,
    CommunicationToken,
    CommunicationVersion,
    utcnow,
)

NEVER_SENT = datetime(1, 1, 1, tzinfo=UTC)
_ID_NAMESPACE = uuid.UUID("6f0a9d5e-5b0c-4b7e-9a51-3c1f0b7d2e44")


def communication_id(identifier_system: str, identifier_value: str) -> str:
    """Our id of a Communication: stable, derived from its business identifier."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{identifier_system}|{identifier_value}"))


def record_version(
    session: Session,
    resource: dict[str, Any],
    *,
    ehr_id: str | None,
    ehr_version: str | None = None,
    recorded_at: datetime | None = None,
) -> CommunicationVersion | None:
    """Keep this Communication as sent; ``None`` when it equals the newest version kept."""
    identifier = resource["identifier"][0]
    resource_id = communication_id(identifier["system"], identifier["value"])
    latest = session.scalars(
        select(CommunicationVersion)
        .where(CommunicationVersion.resource_id == resource_id)
        .order_by(CommunicationVersion.version.desc())
        .limit(1)
        .with_for_update()
    ).first()
    if latest is not None and _content(latest.body) == _content(resource):
        return None
    at = recorded_at or utcnow()
    row = CommunicationVersion(
        resource_id=resource_id,
        version=(latest.version + 1) if latest else 1,
        identifier_system=identifier["system"],
        identifier_value=identifier["value"],
        body=resource,
        recorded_at=at,
        ehr_id=ehr_id or (latest.ehr_id if latest else None),
        ehr_version=ehr_version,
    )
    session.add(row)
    _index(session, row, resource)
    session.flush()
    return row


def _content(resource: dict[str, Any]) -> dict[str, Any]:
    """What a version says, without the server's id and meta (the EHR's echo adds them)."""
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k == "tag"}
    body = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    return {**body, "meta": meta}


def _index(session: Session, row: CommunicationVersion, resource: dict[str, Any]) -> None:
    sent = _instant(resource.get("sent"))
    current = session.scalars(
        select(CommunicationCurrent).where(CommunicationCurrent.resource_id == row.resource_id)
    ).first()
    if current is None:
        current = CommunicationCurrent(resource_id=row.resource_id)
        session.add(current)
    current.version = row.version
    current.sent = sent
    current.sent_sort = sent or NEVER_SENT
    current.last_updated = row.recorded_at
    session.execute(
        delete(CommunicationToken).where(CommunicationToken.resource_id == row.resource_id)
    )
    session.add_all(
        CommunicationToken(resource_id=row.resource_id, param=param, system=system, value=value)
        for param, system, value in sorted(set(communication_tokens(row.resource_id, resource)))
    )


def communication_tokens(resource_id: str, resource: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(param, system, value) for every token and reference the search reads."""
    tokens = [("_id", "", resource_id), ("status", "", str(resource.get("status", "")))]
    for identifier in resource.get("identifier", []):
        tokens.append(("identifier", identifier.get("system", ""), identifier.get("value", "")))
    for name, key in (("category", "category"), ("medium", "medium")):
        for concept in resource.get(key, []):
            for coding in concept.get("coding", []):
                tokens.append((name, coding.get("system", ""), coding.get("code", "")))
    references = [("subject", resource.get("subject"))]
    references += [("about", ref) for ref in resource.get("about", [])]
    references += [("based-on", ref) for ref in resource.get("basedOn", [])]
    for name, ref in references:
        parsed = reference_token((ref or {}).get("reference", ""))
        if parsed is not None:
            tokens.append((name, parsed.system or "", parsed.code or ""))
    return [t for t in tokens if t[2]]


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Position:
    """Where a page ends: the sort key and ``seq`` of its last Communication."""

    key: datetime | None
    seq: int | str


@dataclass(frozen=True)
class Page:
    rows: list[tuple[CommunicationCurrent, CommunicationVersion]]
    total: int
    last: Position | None
    more: bool


def search_communications(session: Session, query: SearchQuery, after: Position | None) -> Page:
    """One page of the newest versions matching ``query``, after ``after`` (keyset)."""
    base: Select[Any] = select(CommunicationCurrent)
    for criterion in query.criteria:
        base = base.where(_condition(criterion))
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    if query.summary_count or query.count == 0:
        return Page([], total, None, False)
    descending = query.sort == "-sent"
    key = CommunicationCurrent.sent_sort if query.sort else None
    ordered = base
    if after is not None:
        ordered = ordered.where(_after(key, after, descending))
    if key is None:
        ordered = ordered.order_by(CommunicationCurrent.seq)
    elif descending:
        ordered = ordered.order_by(key.desc(), CommunicationCurrent.seq.desc())
    else:
        ordered = ordered.order_by(key, CommunicationCurrent.seq)
    found = list(session.scalars(ordered.limit(query.count + 1)))
    more = len(found) > query.count
    found = found[: query.count]
    versions = _versions(session, [(c.resource_id, c.version) for c in found])
    rows = [(c, versions[(c.resource_id, c.version)]) for c in found]
    last = None
    if found:
        end = found[-1]
        last = Position(end.sent_sort if key is not None else None, end.seq)
    return Page(rows, total, last, more)


def _after(key: Any, after: Position, descending: bool) -> ColumnElement[bool]:
    seq, last = CommunicationCurrent.seq, int(after.seq)
    if key is None or after.key is None:
        return seq > last
    if descending:
        return or_(key < after.key, and_(key == after.key, seq < last))
    return or_(key > after.key, and_(key == after.key, seq > last))


def _condition(criterion: Criterion) -> ColumnElement[bool]:
    param = criterion.param
    if param.type == "date":
        column = (
            CommunicationCurrent.last_updated
            if param.name == "_lastUpdated"
            else CommunicationCurrent.sent
        )
        alternatives = [
            and_(
                column.is_not(None),
                *(column >= b.at if b.op == ">=" else column < b.at for b in bounds),
            )
            for bounds in criterion.dates
        ]
        return or_(*alternatives)
    return exists().where(
        CommunicationToken.resource_id == CommunicationCurrent.resource_id,
        CommunicationToken.param == param.key,
        or_(*(_token_matches(t) for t in criterion.tokens)),
    )


def _token_matches(token: TokenValue) -> ColumnElement[bool]:
    parts: list[ColumnElement[bool]] = []
    if token.system is not None:
        parts.append(CommunicationToken.system == token.system)
    if token.code is not None:
        parts.append(CommunicationToken.value == token.code)
    return and_(*parts)


def _versions(
    session: Session, keys: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], CommunicationVersion]:
    if not keys:
        return {}
    rows = session.scalars(
        select(CommunicationVersion).where(
            or_(
                *(
                    and_(CommunicationVersion.resource_id == rid, CommunicationVersion.version == v)
                    for rid, v in keys
                )
            )
        )
    )
    return {(r.resource_id, r.version): r for r in rows}


def read_communication(
    session: Session, resource_id: str, version: int | None = None
) -> CommunicationVersion | None:
    """The newest version (or the one asked for) of one Communication."""
    statement = select(CommunicationVersion).where(CommunicationVersion.resource_id == resource_id)
    if version is not None:
        statement = statement.where(CommunicationVersion.version == version)
    return session.scalars(statement.order_by(CommunicationVersion.version.desc()).limit(1)).first()


def communication_history(session: Session, resource_id: str) -> list[CommunicationVersion]:
    """Every version of one Communication, newest first (as FHIR ``_history`` lists them)."""
    return list(
        session.scalars(
            select(CommunicationVersion)
            .where(CommunicationVersion.resource_id == resource_id)
            .order_by(CommunicationVersion.version.desc())
        )
    )


def accept_assertion(session: Session, client_id: str, jti: str, expires_at: datetime) -> bool:
    """Remember a client assertion's ``jti``; False when it was seen before (a replay)."""
    from fhir_bridge.store.db import insert_once

    session.execute(delete(ClientAssertion).where(ClientAssertion.expires_at < utcnow()))
    row = ClientAssertion(client_id=client_id, jti=jti, expires_at=expires_at)
    return insert_once(session, row) is not None


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditEventRecord]
    total: int
    last: Position | None
    more: bool


_AUDIT_COLUMNS: dict[str, Any] = {
    "_id": AuditEventRecord.id,
    "agent": AuditEventRecord.agent_ref,
    "patient": AuditEventRecord.patient_ref,
    "type": AuditEventRecord.type_code,
    "subtype": AuditEventRecord.subtype_code,
    "outcome": AuditEventRecord.outcome,
}


def search_audit_events(session: Session, query: SearchQuery, after: Position | None) -> AuditPage:
    """One page of AuditEvents matching ``query``, newest first unless ``_sort=date``."""
    base: Select[Any] = select(AuditEventRecord)
    for criterion in query.criteria:
        base = base.where(_audit_condition(criterion))
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    if query.summary_count or query.count == 0:
        return AuditPage([], total, None, False)
    recorded, tie = AuditEventRecord.recorded, AuditEventRecord.id
    ascending = query.sort == "date"
    if after is not None and after.key is not None:
        last = str(after.seq)
        if ascending:
            base = base.where(or_(recorded > after.key, and_(recorded == after.key, tie > last)))
        else:
            base = base.where(or_(recorded < after.key, and_(recorded == after.key, tie < last)))
    order = (recorded, tie) if ascending else (recorded.desc(), tie.desc())
    found = list(session.scalars(base.order_by(*order).limit(query.count + 1)))
    more = len(found) > query.count
    found = found[: query.count]
    end = Position(found[-1].recorded, found[-1].id) if found else None
    return AuditPage(found, total, end, more)


def _audit_condition(criterion: Criterion) -> ColumnElement[bool]:
    param = criterion.param
    if param.type == "date":
        column = AuditEventRecord.recorded
        return or_(
            *(
                and_(*(column >= b.at if b.op == ">=" else column < b.at for b in bounds))
                for bounds in criterion.dates
            )
        )
    if param.name == "entity":
        return or_(*(_entity_matches(t) for t in criterion.tokens))
    column = _AUDIT_COLUMNS[param.name]
    values = [_reference_text(t) if param.type == "reference" else t.code for t in criterion.tokens]
    return column.in_([v for v in values if v is not None])


def _reference_text(token: TokenValue) -> str | None:
    return f"{token.system}/{token.code}" if token.system and token.code else None


def _entity_matches(token: TokenValue) -> ColumnElement[bool]:
    """An entity's ``what.reference``: the patient column, or the JSON as stored (portable)."""
    reference = _reference_text(token)
    if reference is None:
        return false()
    needle = json.dumps({"reference": reference})[1:-1]
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return or_(
        AuditEventRecord.patient_ref == reference,
        cast(AuditEventRecord.resource, String).like(f"%{escaped}%", escape="\\"),
    )


def read_audit_event(session: Session, audit_id: str) -> AuditEventRecord | None:
    return session.get(AuditEventRecord, audit_id)
