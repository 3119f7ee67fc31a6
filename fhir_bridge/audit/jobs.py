"""The audit push as jobs of a :class:`Runtime` (the Celery task and the relay call these)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from fhir_bridge.audit.service import PushDeps, due, push
from fhir_bridge.runtime import Runtime


def push_deps(rt: Runtime) -> PushDeps:
    """Pushing is on when ``FHIR_BRIDGE_AUDIT_PUSH`` is and an EHR is configured."""
    enabled = rt.settings.audit_push and bool(rt.settings.ehr_base_url)
    return PushDeps(
        factory=rt.sessions,
        ehr=rt.ehr if enabled else None,
        clock=rt.clock,
        lease=rt.lease,
        retry_after=timedelta(seconds=rt.settings.relay_interval_seconds),
    )


def push_audit_event(rt: Runtime, audit_id: str) -> str:
    return push(push_deps(rt), audit_id)


def audit_events_to_push(rt: Runtime, limit: int = 500) -> Sequence[str]:
    return due(push_deps(rt), limit)
