"""Searchset bundles with HAPI-style `_getpages` links over a frozen result snapshot."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fhir_bridge.sandbox.outcomes import InvalidRequestError, NotFoundError
from fhir_bridge.sandbox.search import SearchParams, last_updated_ms

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_MAX_CACHED_SEARCHES = 500


@dataclass(frozen=True)
class _Snapshot:
    type_: str
    self_url: str
    resources: list[dict[str, Any]]


def page_size(params: SearchParams) -> int:
    """The `_count` asked for, clamped like real servers do."""
    for name, value in params:
        if name == "_count":
            if not value.isdigit():
                raise InvalidRequestError("_count must be a non-negative integer")
            return min(int(value), MAX_PAGE_SIZE)
    return DEFAULT_PAGE_SIZE


def sort_resources(resources: list[dict[str, Any]], params: SearchParams) -> list[dict[str, Any]]:
    """Order by `_sort=_lastUpdated` / `-_lastUpdated`; default is oldest first."""
    descending = any(name == "_sort" and value == "-_lastUpdated" for name, value in params)
    return sorted(resources, key=last_updated_ms, reverse=descending)


class SearchPager:
    """Keeps each search's result list so `next` links page through a stable snapshot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshots: OrderedDict[str, _Snapshot] = OrderedDict()

    def reset(self) -> None:
        """Forget all cached searches."""
        with self._lock:
            self._snapshots.clear()

    def first_page(
        self, base_url: str, type_: str, params: SearchParams, resources: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Bundle for the first page of a new search."""
        query = urlencode(params)
        self_url = f"{base_url}/{type_}" + (f"?{query}" if query else "")
        search_id = str(uuid.uuid4())
        with self._lock:
            self._snapshots[search_id] = _Snapshot(type_, self_url, resources)
            while len(self._snapshots) > _MAX_CACHED_SEARCHES:
                self._snapshots.popitem(last=False)
        return self._bundle(base_url, search_id, self_url, 0, page_size(params))

    def resource_type_of(self, search_id: str) -> str:
        """The resource type a cached search returns, so paging can be scope-checked."""
        with self._lock:
            snapshot = self._snapshots.get(search_id)
        if snapshot is None:
            raise NotFoundError("Search results have expired or never existed")
        return snapshot.type_

    def page(self, base_url: str, search_id: str, offset: int, count: int) -> dict[str, Any]:
        """Bundle for a later page addressed by a `next` link."""
        page_url = f"{base_url}?" + urlencode(
            {"_getpages": search_id, "_getpagesoffset": offset, "_count": count}
        )
        return self._bundle(base_url, search_id, page_url, offset, count)

    def _bundle(
        self, base_url: str, search_id: str, self_url: str, offset: int, count: int
    ) -> dict[str, Any]:
        with self._lock:
            snapshot = self._snapshots.get(search_id)
        if snapshot is None:
            raise NotFoundError("Search results have expired or never existed")
        window = snapshot.resources[offset : offset + count]
        links = [{"relation": "self", "url": self_url}]
        if count > 0 and offset + count < len(snapshot.resources):
            next_query = urlencode(
                {"_getpages": search_id, "_getpagesoffset": offset + count, "_count": count}
            )
            links.append({"relation": "next", "url": f"{base_url}?{next_query}"})
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "type": "searchset",
            "total": len(snapshot.resources),
            "link": links,
        }
        if window:
            bundle["entry"] = [
                {
                    "fullUrl": f"{base_url}/{resource['resourceType']}/{resource['id']}",
                    "resource": resource,
                    "search": {"mode": "match"},
                }
                for resource in window
            ]
        return bundle
