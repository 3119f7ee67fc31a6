"""Versioned in-memory resource store: the part of an EHR that remembers every version."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fhir_bridge.sandbox.outcomes import (
    GoneError,
    InvalidRequestError,
    NotFoundError,
    PreconditionFailedError,
)

Resource = dict[str, Any]


def format_instant(epoch_ms: int) -> str:
    """FHIR instant with millisecond precision in UTC, as HAPI renders it."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}+00:00"


class MonotonicClock:
    """Hands out millisecond timestamps that strictly increase across the whole server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0

    def next_ms(self) -> int:
        """A fresh timestamp, never equal to or before a previous one."""
        with self._lock:
            now_ms = int(time.time() * 1000)
            self._last_ms = max(now_ms, self._last_ms + 1)
            return self._last_ms


@dataclass(frozen=True)
class StoredVersion:
    """One version of a resource; `resource` is None for a deletion marker."""

    version_id: int
    last_updated_ms: int
    resource: Resource | None


@dataclass(frozen=True)
class WriteResult:
    """What a create/update produced, so callers can pick 200 vs 201 and fire events."""

    resource: Resource
    created: bool


class ResourceStore:
    """Thread-safe store keeping the full version history of every resource."""

    def __init__(self, clock: MonotonicClock, lock: threading.RLock) -> None:
        self._clock = clock
        self._lock = lock
        self._history: dict[tuple[str, str], list[StoredVersion]] = {}
        self._next_numeric_id = 1000

    def reset(self) -> None:
        """Forget every resource."""
        with self._lock:
            self._history.clear()
            self._next_numeric_id = 1000

    def create(self, resource: Resource) -> Resource:
        """Store a new resource under a server-assigned id (HAPI-like numeric ids)."""
        with self._lock:
            type_ = resource["resourceType"]
            new_id = self._allocate_id(type_)
            return self._write(type_, new_id, resource)

    def put(self, type_: str, id_: str, resource: Resource, if_match: int | None) -> WriteResult:
        """Update-or-create with optional optimistic locking on the version id."""
        with self._lock:
            versions = self._history.get((type_, id_))
            current = versions[-1] if versions else None
            if if_match is not None and (current is None or current.version_id != if_match):
                raise PreconditionFailedError(
                    f"If-Match version {if_match} does not match current version of {type_}/{id_}"
                )
            created = current is None or current.resource is None
            return WriteResult(self._write(type_, id_, resource), created)

    def read(self, type_: str, id_: str) -> Resource:
        """The current version; 404 if unknown, 410 if deleted."""
        with self._lock:
            current = self._latest(type_, id_)
            if current.resource is None:
                raise GoneError(f"Resource {type_}/{id_} was deleted")
            return copy.deepcopy(current.resource)

    def vread(self, type_: str, id_: str, version_id: str) -> Resource:
        """A specific historical version."""
        with self._lock:
            self._latest(type_, id_)
            for version in self._history[(type_, id_)]:
                if str(version.version_id) == version_id:
                    if version.resource is None:
                        raise GoneError(f"Version {version_id} of {type_}/{id_} is a deletion")
                    return copy.deepcopy(version.resource)
            raise NotFoundError(f"Version {version_id} of {type_}/{id_} is not known")

    def delete(self, type_: str, id_: str) -> None:
        """Record a deletion marker so later reads answer 410 Gone."""
        with self._lock:
            current = self._latest(type_, id_)
            if current.resource is None:
                return
            marker = StoredVersion(current.version_id + 1, self._clock.next_ms(), None)
            self._history[(type_, id_)].append(marker)

    def current_of_type(self, type_: str) -> list[Resource]:
        """Every live resource of a type, as deep copies."""
        with self._lock:
            return [
                copy.deepcopy(versions[-1].resource)
                for (stored_type, _), versions in self._history.items()
                if stored_type == type_ and versions[-1].resource is not None
            ]

    def system_update(
        self, type_: str, id_: str, mutate: Callable[[Resource], None]
    ) -> Resource | None:
        """A server-side change (e.g. Subscription.status) stored as a new version."""
        with self._lock:
            versions = self._history.get((type_, id_))
            if not versions or versions[-1].resource is None:
                return None
            updated = copy.deepcopy(versions[-1].resource)
            mutate(updated)
            return self._write(type_, id_, updated)

    def _latest(self, type_: str, id_: str) -> StoredVersion:
        versions = self._history.get((type_, id_))
        if not versions:
            raise NotFoundError(f"Resource {type_}/{id_} is not known")
        return versions[-1]

    def _allocate_id(self, type_: str) -> str:
        while True:
            self._next_numeric_id += 1
            candidate = str(self._next_numeric_id)
            if (type_, candidate) not in self._history:
                return candidate

    def _write(self, type_: str, id_: str, resource: Resource) -> Resource:
        if resource.get("resourceType") != type_:
            raise InvalidRequestError("resourceType does not match the request URL")
        versions = self._history.setdefault((type_, id_), [])
        version_id = versions[-1].version_id + 1 if versions else 1
        last_updated_ms = self._clock.next_ms()
        meta = dict(resource.get("meta") or {})
        meta["versionId"] = str(version_id)
        meta["lastUpdated"] = format_instant(last_updated_ms)
        body = {k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")}
        stored = copy.deepcopy({"resourceType": type_, "id": id_, "meta": meta, **body})
        versions.append(StoredVersion(version_id, last_updated_ms, stored))
        return copy.deepcopy(stored)
