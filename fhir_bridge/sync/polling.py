"""Polling the EHR for changes, for EHRs that send no notifications.

``FHIR_BRIDGE_POLL_SEARCH`` chooses the searches:

``system`` (default)
    ``{Type}?_lastUpdated=ge{watermark}&_sort=_lastUpdated`` for Appointment,
    MedicationRequest and Encounter, from a persistent watermark per type.
``per-location``
    ``Appointment?location=Location/{id}&date=ge{first day}&date=lt{day after last}`` for
    each configured Location (``FHIR_BRIDGE_POLL_LOCATIONS``, else the rules file's
    ``locations:`` keys), over the next ``FHIR_BRIDGE_POLL_WINDOW_DAYS``.
``per-day``
    ``Appointment?date={day}`` for each day of the same window.

The two window modes are for EHRs (Epic-style) that refuse a search without a patient, a
location or a date. They read Appointments only: MedicationRequest (``authoredon``) and
Encounter (``date``) searches on such EHRs need a patient, so refill notices and discharge
check-ins there need Subscriptions or system-level search. Each poll re-reads the whole
window; ``apply_resource`` skips versions we already hold, so polling twice changes nothing.
An Appointment we hold in the window that the search no longer returns (moved out of the
window or to another location, or deleted) is re-read by id, so its reminders move or stop.

Short transactions: every search and re-read runs with no transaction open; what it
returned is applied afterwards in a short transaction (``apply_in_short_transactions``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.fhir.client import SearchParams
from fhir_bridge.fhir.errors import EhrAuthError, EhrError, EhrNotFound
from fhir_bridge.settings import ENV_PREFIX, SettingsError
from fhir_bridge.store.db import transaction
from fhir_bridge.sync import repository
from fhir_bridge.sync.service import (
    EhrReads,
    SyncDeps,
    apply_in_short_transactions,
    read_current,
    since_params,
)

log = logging.getLogger(__name__)

WINDOW_TYPES = ("Appointment",)
_REFUSED_STATUSES = (400, 403, 405, 422)


class PollSearchRefused(SettingsError):
    """The EHR refused the kind of search ``FHIR_BRIDGE_POLL_SEARCH`` asks for."""


@dataclass(frozen=True)
class PollWindow:
    """The days of upcoming Appointments a window poll reads: ``[first, end)``."""

    first: date
    end: date

    @classmethod
    def around(cls, now: datetime, days: int) -> PollWindow:
        # From yesterday (UTC): "today" at a clinic west of UTC may still be yesterday there.
        today = now.date()
        return cls(first=today - timedelta(days=1), end=today + timedelta(days=days + 1))

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.end - self.first).days)]

    def holds(self, start: datetime) -> bool:
        return self.first <= start.date() < self.end


def poll_locations(setting: str | None, rules_locations: Iterable[str]) -> list[str]:
    """``Location/id`` references to search, from the setting or else the rules file."""
    raw = [item.strip() for item in setting.split(",")] if setting else list(rules_locations)
    references = []
    for item in raw:
        if not item:
            continue
        reference = item if "/" in item else f"Location/{item}"
        if reference not in references:
            references.append(reference)
    if not references:
        raise SettingsError(
            f"{ENV_PREFIX}POLL_SEARCH=per-location needs {ENV_PREFIX}POLL_LOCATIONS "
            "(comma-separated Location ids) or Location entries under `locations:` "
            "in the rules file"
        )
    return references


def window_searches(
    mode: str, window: PollWindow, locations: Sequence[str], page_size: int
) -> list[dict[str, str | list[str]]]:
    """The Appointment searches one window poll makes (pure: for tests and ``doctor``)."""
    count = str(page_size)
    if mode == "per-location":
        dates = [f"ge{window.first.isoformat()}", f"lt{window.end.isoformat()}"]
        return [{"location": ref, "date": dates, "_count": count} for ref in locations]
    if mode == "per-day":
        return [{"date": day.isoformat(), "_count": count} for day in window.days()]
    raise ValueError(f"not a window polling mode: {mode}")


def poll_system(
    sessions: sessionmaker[Session],
    deps_at: Callable[[], SyncDeps],
    resource_types: Iterable[str],
    page_size: int,
) -> dict[str, int]:
    """Each type by ``_lastUpdated`` from its watermark; resources changed, per type.

    Per type: the watermark is read, the search runs with no transaction open, then one
    short transaction applies the results and moves the watermark to the search's start.
    """
    applied = {}
    for resource_type in resource_types:
        deps = deps_at()
        name = f"poll:{resource_type}"
        with transaction(sessions) as session:
            since = repository.get_watermark(session, name)
        params = since_params(deps, since, page_size)
        reads = read_search(deps, resource_type, params, "system")
        applied[resource_type] = apply_in_short_transactions(
            sessions,
            deps,
            reads,
            then=partial(repository.set_watermark, name=name, value=deps.now),
        )
    return applied


def poll_window(
    sessions: sessionmaker[Session],
    deps_at: Callable[[], SyncDeps],
    mode: str,
    searches: Sequence[SearchParams],
    window: PollWindow,
    locations: Sequence[str] | None,
) -> int:
    """Run the window searches, then re-read the Appointments we hold that they missed.

    Every search and re-read happens with no transaction open; each is applied in its own
    short transaction. Returns how many resources changed.
    """
    started = deps_at()
    changed = 0
    seen: set[str] = set()
    for params in searches:
        deps = deps_at()
        reads = read_search(deps, "Appointment", params, mode)
        seen |= {str(resource.get("id")) for resource in reads.all_resources()}
        changed += apply_in_short_transactions(sessions, deps, reads)
    with transaction(sessions) as session:
        unseen = [
            f"Appointment/{state.resource_id}"
            for state in repository.resources_of_type(session, "Appointment")
            if state.resource_id not in seen and _in_scope(state.body, window, locations)
        ]
    deps = deps_at()
    changed += apply_in_short_transactions(
        sessions,
        deps,
        read_current(deps, unseen),
        then=partial(
            repository.set_watermark, name=f"poll-window:Appointment:{mode}", value=started.now
        ),
    )
    return changed


def read_search(deps: SyncDeps, resource_type: str, params: SearchParams, mode: str) -> EhrReads:
    """Every page of one search (current versions); a refused search names the setting."""
    try:
        found = list(deps.ehr.search_all(resource_type, params))
    except EhrError as exc:
        refused = refusal(exc, resource_type, mode)
        if refused is None:
            raise
        raise refused from exc
    return EhrReads(resources=[(resource, True) for resource in found])


def _in_scope(body: dict[str, Any], window: PollWindow, locations: Sequence[str] | None) -> bool:
    try:
        start = datetime.fromisoformat(str(body.get("start")))
    except ValueError:
        return False
    if not window.holds(start):
        return False
    if locations is None:
        return True
    held = {
        str((participant.get("actor") or {}).get("reference") or "")
        for participant in body.get("participant") or []
    }
    return any(ref == loc or ref.endswith("/" + loc) for ref in held for loc in locations)


def refusal(exc: EhrError, resource_type: str, mode: str) -> PollSearchRefused | None:
    """A clear, one-line error when the EHR refuses the search itself (not our token)."""
    if exc.status not in _REFUSED_STATUSES or isinstance(exc, EhrNotFound):
        return None
    if isinstance(exc, EhrAuthError) and exc.status != 403:
        return None
    setting = f"{ENV_PREFIX}POLL_SEARCH"
    if mode == "system":
        advice = (
            f"set {setting}=per-location (with {ENV_PREFIX}POLL_LOCATIONS) or {setting}=per-day, "
            f"or use Subscriptions ({ENV_PREFIX}INGEST_MODE=subscriptions)"
        )
        what = f"a system-level {resource_type} search by _lastUpdated"
    else:
        other = "per-day" if mode == "per-location" else "per-location"
        advice = f"try {setting}={other}, or check the client's system/{resource_type}.rs scope"
        what = f"the {mode} {resource_type} search"
    return PollSearchRefused(f"the EHR refused {what} (HTTP {exc.status}); {advice}")
