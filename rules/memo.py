"""Content-keyed memos for facts the rules derive from shared resources.

A busy day plans tens of thousands of patients whose appointments point at the
same few dozen Locations (and Practitioners, HealthcareServices...). What the
rules read from such a resource - its sensitivity findings, its references -
depends only on its content, so it is worked out once and looked up after that.

The key is the resource's full content (its ``repr``: key order, types and every
value), never its id or ``meta.versionId`` alone: an EHR or a test can change a
resource without bumping its version, and a stale verdict about a Location's
name would print a revealing place name. A resource whose content cannot be
keyed (a self-referencing structure) is simply not memoised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Generic, TypeVar

_RECURSIVE_MARKERS: Final = ("{...}", "[...]")

T = TypeVar("T")


def content_key(resource: Mapping[str, Any]) -> str | None:
    """A string equal for two resources exactly when their content is, else ``None``."""
    try:
        key = repr(resource)
    except (RecursionError, ValueError, TypeError):
        return None
    if any(marker in key for marker in _RECURSIVE_MARKERS):
        return None
    return key


class ContentMemo(Generic[T]):
    """A bounded map from content keys to derived facts (emptied when full).

    Safe to share between threads: only single ``dict`` operations are used, and a
    lost race costs a recomputation, never a wrong answer.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._entries: dict[str, T] = {}

    def get(self, key: str) -> T | None:
        """The fact remembered for ``key``, if any."""
        return self._entries.get(key)

    def put(self, key: str, value: T) -> T:
        """Remember ``value`` for ``key`` and return it."""
        if len(self._entries) >= self._capacity:
            self._entries.clear()
        self._entries[key] = value
        return value

    def __len__(self) -> int:
        return len(self._entries)
