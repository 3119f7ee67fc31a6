"""FHIR RESTful interactions (create/update/read/vread/delete/search) over the EHR state."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from fhir_bridge.sandbox.outcomes import (
    FhirError,
    InvalidRequestError,
    PreconditionFailedError,
)
from fhir_bridge.sandbox.paging import page_size, sort_resources
from fhir_bridge.sandbox.search import SearchParams, matches
from fhir_bridge.sandbox.state import EhrState

_ETAG = re.compile(r'^(?:W/)?"?(\d+)"?$')
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
# With `system_search` off (Epic-style), clinical searches must be narrowed by one of these.
_NARROWING_PARAMS = frozenset(
    {"_id", "identifier", "patient", "subject", "actor", "location", "date"}
)
_NARROWED_TYPES = frozenset({"Appointment", "Encounter", "MedicationRequest"})


def etag(resource: dict[str, Any]) -> str:
    """Weak ETag of a resource version, as FHIR servers send it."""
    return f'W/"{resource["meta"]["versionId"]}"'


class FhirInteractions:
    """The FHIR REST semantics, independent of the HTTP framework."""

    def __init__(self, state: EhrState) -> None:
        self._state = state

    def require_type(self, type_: str) -> None:
        """404 for resource types FHIR R4 does not define."""
        if type_ not in self._state.resource_types:
            raise FhirError(404, "not-supported", "Unknown resource type")

    def create(
        self, type_: str, body: Any, if_none_exist: str | None
    ) -> tuple[int, dict[str, Any]]:
        """POST: a new resource (201), or the single existing match of If-None-Exist (200)."""
        resource = self._checked_body(type_, body)
        state = self._state
        with state.lock:
            if if_none_exist:
                existing = self._matching(type_, parse_qsl(if_none_exist, keep_blank_values=True))
                if len(existing) > 1:
                    raise PreconditionFailedError("If-None-Exist matched more than one resource")
                if existing:
                    return 200, existing[0]
            resource.pop("id", None)
            if type_ == "Subscription":
                stored = state.store.create(state.subscriptions.prepare(resource))
                state.subscriptions.register(stored)
                return 201, stored
            stored = state.store.create(resource)
            state.subscriptions.on_resource_written(stored, "POST")
            return 201, stored

    def update(
        self, type_: str, id_: str, body: Any, if_match: str | None
    ) -> tuple[int, dict[str, Any]]:
        """PUT: update-or-create with optional If-Match version check."""
        resource = self._checked_body(type_, body)
        if not _ID.match(id_):
            raise InvalidRequestError("Invalid resource id")
        if resource.get("id") != id_:
            raise InvalidRequestError("Resource id in the body must match the URL")
        expected_version = _parse_if_match(if_match)
        state = self._state
        with state.lock:
            if type_ == "Subscription":
                prepared = state.subscriptions.prepare(resource)
                result = state.store.put(type_, id_, prepared, expected_version)
                state.subscriptions.register(result.resource)
            else:
                result = state.store.put(type_, id_, resource, expected_version)
                state.subscriptions.on_resource_written(result.resource, "PUT")
        return (201 if result.created else 200), result.resource

    def read(self, type_: str, id_: str) -> dict[str, Any]:
        """GET by id."""
        return self._state.store.read(type_, id_)

    def vread(self, type_: str, id_: str, version_id: str) -> dict[str, Any]:
        """GET a historical version."""
        return self._state.store.vread(type_, id_, version_id)

    def delete(self, type_: str, id_: str) -> None:
        """DELETE: later reads answer 410; a deleted Subscription stops notifying."""
        with self._state.lock:
            self._state.store.delete(type_, id_)
            if type_ == "Subscription":
                self._state.subscriptions.forget(id_)

    def search(self, type_: str, params: SearchParams) -> dict[str, Any]:
        """GET type?params: a searchset Bundle with a stable `next` link."""
        page_size(params)
        if self._refuses_unnarrowed(type_, params):
            raise FhirError(
                400, "required", "This search needs a patient, location or date parameter"
            )
        with self._state.lock:
            found = sort_resources(self._matching(type_, params), params)
        return self._state.pager.first_page(self._state.config.base_url, type_, params, found)

    def _refuses_unnarrowed(self, type_: str, params: SearchParams) -> bool:
        if self._state.system_search or type_ not in _NARROWED_TYPES:
            return False
        return not any(name.partition(":")[0] in _NARROWING_PARAMS for name, _ in params)

    def page(self, params: dict[str, str]) -> dict[str, Any]:
        """A later page addressed by a `_getpages` link."""
        try:
            offset = int(params.get("_getpagesoffset", "0"))
            count = int(params.get("_count", "50"))
        except ValueError as error:
            raise InvalidRequestError("Paging parameters must be integers") from error
        if offset < 0 or count < 0:
            raise InvalidRequestError("Paging parameters must not be negative")
        return self._state.pager.page(
            self._state.config.base_url, params["_getpages"], offset, count
        )

    def _matching(self, type_: str, params: SearchParams) -> list[dict[str, Any]]:
        return [
            resource
            for resource in self._state.store.current_of_type(type_)
            if matches(resource, params)
        ]

    @staticmethod
    def _checked_body(type_: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InvalidRequestError("Request body must be a JSON object")
        if body.get("resourceType") != type_:
            raise InvalidRequestError("resourceType in the body must match the request URL")
        return dict(body)


def _parse_if_match(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    found = _ETAG.match(value.strip())
    if not found:
        raise InvalidRequestError('If-Match must be a version ETag such as W/"3"')
    return int(found.group(1))
