"""Read-modify-write on EHR resources with optimistic concurrency (``If-Match``).

Staff edit the same Appointment or Communication at the same time we do; a blind PUT would
silently drop their change. We send the version we read and, on 412, read again and
re-apply our change, a bounded number of times.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from fhir_bridge.fhir.errors import EhrPreconditionFailed

log = logging.getLogger(__name__)


class ConcurrentUpdateConflict(RuntimeError):
    """The resource kept changing under us (412 on every attempt); retried later."""


class ReadUpdate(Protocol):
    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]: ...

    def update(
        self, resource: dict[str, Any], *, if_match: str | None = None
    ) -> dict[str, Any]: ...


Change = Callable[[dict[str, Any]], dict[str, Any] | None]


def update_with_retry(
    ehr: ReadUpdate, resource_type: str, resource_id: str, change: Change, *, attempts: int
) -> dict[str, Any]:
    """Apply ``change`` to the current version; returns what the EHR stored (or already had).

    ``change`` returns the modified resource, or ``None`` when nothing needs changing.
    """
    for attempt in range(1, attempts + 1):
        current = ehr.read(resource_type, resource_id)
        changed = change(current)
        if changed is None:
            return current
        version = (current.get("meta") or {}).get("versionId")
        try:
            return ehr.update(changed, if_match=str(version) if version else None)
        except EhrPreconditionFailed:
            log.info(
                "version conflict; re-reading",
                extra={"resource_type": resource_type, "resource_id": resource_id, "try": attempt},
            )
    raise ConcurrentUpdateConflict(f"{resource_type}/{resource_id} changed on every attempt")
