"""Content-keyed memos for facts the rules derive from shared resources.

A busy day plans tens of thousands of patients whose appointments point at the
same few dozen Locations (and Practitioners, HealthcareServices...). What the
rules read from such a resource - its sensitivity findings, its references -
depends only on its content, so it is worked out once and looked up after that.

The key is the resource's full content (its ``marshal`` serialisation: key
order, exact types and every value), never its id or ``meta.versionId`` alone: an
EHR or a test can change a resource without bumping its version, and a stale
verdict about a Location's name would print a revealing place name. A resource
whose content cannot be keyed (a self-referencing structure, anything but plain
JSON-like values) is simply not memoised.

Why ``marshal`` (format 0) and not ``repr``: it is as exact (``True`` is not
``1``, a list is not a tuple, a ``str`` subclass is refused rather than guessed),
it writes content only (no references to shared or interned objects), and it is
about three times faster; every planned message keys a Location and a language.
"""

from __future__ import annotations

import marshal
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Final, Generic, TypeVar, cast

_CONTENT_ONLY: Final = 0
"""Format 0: no back-references (cycles fail) and no interning marks."""

T = TypeVar("T")


def content_key(resource: Mapping[str, Any] | object) -> bytes | None:
    """Bytes equal for two resources (or parts of one) exactly when their content is,
    else ``None`` (self-referencing, or holding something other than dicts, lists,
    tuples, strings, numbers, booleans and ``None``)."""
    try:
        return marshal.dumps(cast(Any, resource), _CONTENT_ONLY)
    except (ValueError, RecursionError):
        return None


class ContentMemo(Generic[T]):
    """A bounded map from content keys to derived facts (emptied when full).

    A key is a :func:`content_key`, or a tuple holding one with the settings the fact
    also depends on.

    Safe to share between threads: only single ``dict`` operations are used, and a
    lost race costs a recomputation, never a wrong answer.
    """

    get: Callable[[Hashable], T | None]
    """The fact remembered for a key, if any (the dict's own ``get``: a memo is asked
    several times for every planned message, so no Python-level call in between)."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._entries: dict[Hashable, T] = {}
        self.get = self._entries.get

    def put(self, key: Hashable, value: T) -> T:
        """Remember ``value`` for ``key`` and return it."""
        if len(self._entries) >= self._capacity:
            self._entries.clear()
        self._entries[key] = value
        return value

    def __len__(self) -> int:
        return len(self._entries)
