"""One snapshot, two callers: what the rules see about a patient, built the same way
for live planning and for ``fhir-bridge preview``.

The rules read more than the patient's own resources: the Location of an
appointment decides its time zone and whether its name may be printed; a
PractitionerRole or HealthcareService can reveal a specialty; a Medication
carries the brand name. Preview used to see these (they were in the Bundle)
while live planning did not, so the two disagreed. Both now call
:func:`build_snapshot` with a ``lookup`` that finds a referenced resource: the
Bundle for preview, our store (filled from the EHR, cached by version) for the
live pipeline. A reference the lookup cannot resolve is simply absent, and the
rules fall back to their documented defaults (organisation zone, no place name).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from rules.memo import ContentMemo, content_key
from rules.model import PatientSnapshot, SentRecord

REFERENCED_TYPES: Final = frozenset(
    {
        "Location",
        "HealthcareService",
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Medication",
    }
)
# Appointment -> PractitionerRole -> HealthcareService/Location is the longest chain the
# rules follow; one more hop (e.g. to an Organization) is cheap and harmless.
MAX_DEPTH: Final = 3

Lookup = Callable[[str], Mapping[str, Any] | None]
LookupMany = Callable[[Sequence[str]], Mapping[str, Mapping[str, Any] | None]]
"""Several references looked up at once (one level of the closure): absent ones may be
left out or ``None``."""


def relative_reference(reference: str) -> str | None:
    """``Type/id`` for a literal reference to a type the rules follow, else ``None``.

    Handles absolute URLs (``https://ehr/fhir/Location/7``) and version-specific
    references (``Location/7/_history/2``); contained (``#id``) and logical
    references are left to the resource that holds them.
    """
    if not reference or reference.startswith("#"):
        return None
    if "_history" not in reference:  # the usual shape: the last two segments, found directly
        head, slash, resource_id = reference.rpartition("/")
        resource_type = head.rpartition("/")[2]
        if not slash or resource_type not in REFERENCED_TYPES or not resource_id:
            return None
        return f"{resource_type}/{resource_id}"
    parts = reference.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) < 2:
        return None
    resource_type, resource_id = parts[-2], parts[-1]
    if resource_type not in REFERENCED_TYPES or not resource_id:
        return None
    return f"{resource_type}/{resource_id}"


def collect_references(node: Any, found: dict[str, None]) -> None:
    """Add the references under ``node`` to ``found``, depth first in document order."""
    if isinstance(node, list):
        for item in node:
            if not isinstance(item, str):  # most leaves; skips the slower ABC check
                collect_references(item, found)
        return
    if not isinstance(node, (dict, Mapping)):
        return
    target = node.get("reference")
    if isinstance(target, str) and (relative := relative_reference(target)) is not None:
        found.setdefault(relative)
    for key, value in node.items():
        if key not in ("meta", "text") and not isinstance(value, str):
            collect_references(value, found)


def references_of(resource: Mapping[str, Any]) -> list[str]:
    """Every reference to a followed type in one resource, in first-seen order."""
    found: dict[str, None] = {}
    collect_references(resource, found)
    return list(found)


_SHARED_REFERENCES: Final[ContentMemo[list[str]]] = ContentMemo()


def shared_references_of(resource: Mapping[str, Any]) -> list[str]:
    """:func:`references_of`, remembered by content for the types many patients share
    (a day's appointments point at the same Locations). Do not modify the result."""
    if resource.get("resourceType") not in REFERENCED_TYPES:
        return references_of(resource)
    return remembered_references_of(resource, content_key(resource))


def remembered_references_of(resource: Mapping[str, Any], key: bytes | None) -> list[str]:
    """:func:`references_of`, remembered by ``key``, the resource's
    :func:`rules.memo.content_key` (``None``: not remembered). Do not modify the result."""
    if key is None:
        return references_of(resource)
    found = _SHARED_REFERENCES.get(key)
    if found is None:
        found = _SHARED_REFERENCES.put(key, references_of(resource))
    return found


def references_in(
    resources: Sequence[Mapping[str, Any]],
    of: Callable[[Mapping[str, Any]], Sequence[str]] = references_of,
) -> list[str]:
    """Every reference to a followed type in ``resources``, in first-seen order."""
    return list(dict.fromkeys(ref for resource in resources for ref in of(resource)))


def referenced_closure(
    resources: Sequence[Mapping[str, Any]],
    lookup: Lookup,
    of: Callable[[Mapping[str, Any]], Sequence[str]] = references_of,
) -> dict[str, Mapping[str, Any]]:
    """The referenced resources the rules may read, following references ``MAX_DEPTH`` deep.

    ``of`` finds one resource's references (planning passes a cached version of
    :func:`references_of`, since it asks about the same resources many times).
    """
    return referenced_closure_by_level(resources, one_at_a_time(lookup), of)


def one_at_a_time(lookup: Lookup) -> LookupMany:
    """A level lookup that asks ``lookup`` for each reference in turn."""
    return lambda references: {reference: lookup(reference) for reference in references}


def referenced_closure_by_level(
    resources: Sequence[Mapping[str, Any]],
    lookup_many: LookupMany,
    of: Callable[[Mapping[str, Any]], Sequence[str]] = references_of,
) -> dict[str, Mapping[str, Any]]:
    """:func:`referenced_closure`, asking ``lookup_many`` once per level (the live pipeline
    reads a level's references from the store in one statement and the EHR in one batch)."""
    found: dict[str, Mapping[str, Any]] = {}
    tried: set[str] = set()
    frontier = _references_in(resources, of)
    for _depth in range(MAX_DEPTH):
        wanted = [reference for reference in frontier if reference not in tried]
        if not wanted:
            break
        tried.update(wanted)
        answers = lookup_many(wanted)
        fresh: list[Mapping[str, Any]] = []
        for reference in wanted:
            resource = answers.get(reference)
            if isinstance(resource, (dict, Mapping)):
                found[reference] = resource
                fresh.append(resource)
        if not fresh:
            break
        frontier = _references_in(fresh, of)
        if not frontier:
            break
    return found


def _references_in(
    resources: Sequence[Mapping[str, Any]], of: Callable[[Mapping[str, Any]], Sequence[str]]
) -> Sequence[str]:
    """:func:`references_in`, without building anything for the usual one or none."""
    if len(resources) == 1:
        return list(dict.fromkeys(of(resources[0])))
    found: dict[str, None] = {}
    for resource in resources:
        for reference in of(resource):
            found.setdefault(reference)
    return list(found)


def build_snapshot(
    *,
    patient_ref: str,
    patient: Mapping[str, Any] | None,
    resources: Sequence[Mapping[str, Any]],
    lookup: LookupMany,
    history: Sequence[SentRecord] = (),
) -> PatientSnapshot:
    """Everything the rules may look at for one patient, with its referenced resources
    (``lookup`` answers a level of references at once: the live store in one statement,
    a preview bundle :func:`one_at_a_time`)."""
    return PatientSnapshot(
        patient_ref=patient_ref,
        patient=patient,
        resources=list(resources),
        history=list(history),
        referenced=referenced_closure_by_level(resources, lookup),
    )


def bundle_lookup(resources: Sequence[Mapping[str, Any]]) -> Lookup:
    """A lookup over the resources of a Bundle (what ``preview`` is given)."""
    index = {
        f"{r.get('resourceType')}/{r.get('id')}": r
        for r in resources
        if r.get("resourceType") in REFERENCED_TYPES and r.get("id")
    }
    return index.get
