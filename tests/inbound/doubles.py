"""Test doubles for two-way messaging: an in-memory EHR with versions and If-Match, and an
SMS adapter that records what it was asked to send."""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from channels.base import ChannelAdapter, OutboundMessage, SendReceipt
from fhir_bridge.fhir.errors import EhrNotFound, EhrPreconditionFailed, EhrUnavailable


@dataclass
class InMemoryEhr:
    """Versioned resources; ``conflicts[type/id]`` forces that many 412s on update."""

    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    conflicts: dict[str, int] = field(default_factory=dict)
    unavailable: bool = False
    updates: list[tuple[str, str | None]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(9001))

    def put(self, resource: dict[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(resource)
        stored["meta"] = {
            **(stored.get("meta") or {}),
            "versionId": "1",
            "lastUpdated": datetime.now(UTC).isoformat(),
        }
        self.resources[f"{stored['resourceType']}/{stored['id']}"] = stored
        return stored

    def of_type(self, resource_type: str) -> list[dict[str, Any]]:
        return [r for r in self.resources.values() if r["resourceType"] == resource_type]

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        self._check()
        found = self.resources.get(f"{resource_type}/{resource_id}")
        if found is None:
            raise EhrNotFound(f"EHR GET {resource_type} failed: HTTP 404", status=404)
        return copy.deepcopy(found)

    def create(
        self, resource: dict[str, Any], *, if_none_exist: str | None = None
    ) -> dict[str, Any]:
        self._check()
        if if_none_exist:
            ((_name, value),) = parse_qsl(if_none_exist)
            system, _, code = value.partition("|")
            for existing in self.of_type(resource["resourceType"]):
                for identifier in existing.get("identifier") or []:
                    if identifier.get("system") == system and identifier.get("value") == code:
                        return copy.deepcopy(existing)
        return self.put({**resource, "id": str(next(self._ids))})

    def update(self, resource: dict[str, Any], *, if_match: str | None = None) -> dict[str, Any]:
        self._check()
        key = f"{resource['resourceType']}/{resource['id']}"
        self.updates.append((key, if_match))
        current = self.resources[key]
        if self.conflicts.get(key, 0) > 0:
            self.conflicts[key] -= 1
            current["meta"]["versionId"] = str(int(current["meta"]["versionId"]) + 1)
            raise EhrPreconditionFailed("EHR PUT failed: HTTP 412", status=412)
        if if_match is not None and if_match != current["meta"]["versionId"]:
            raise EhrPreconditionFailed("EHR PUT failed: HTTP 412", status=412)
        stored = copy.deepcopy(resource)
        stored["meta"] = {
            **current["meta"],
            "versionId": str(int(current["meta"]["versionId"]) + 1),
        }
        self.resources[key] = stored
        return copy.deepcopy(stored)

    def search_all(self, resource_type: str, params: dict[str, str]) -> list[dict[str, Any]]:
        self._check()
        return []

    def _check(self) -> None:
        if self.unavailable:
            raise EhrUnavailable("EHR unavailable: HTTP 503", status=503)


@dataclass
class RecordingSms(ChannelAdapter):
    """Accepts every message and remembers it."""

    provider = "twilio"
    channel = "sms"
    sent: list[OutboundMessage] = field(default_factory=list)

    def send(self, message: OutboundMessage) -> SendReceipt:
        self.sent.append(message)
        return SendReceipt(self.provider, f"SM{len(self.sent):032x}", "queued")

    def texts_to(self, address: str) -> list[str]:
        return [m.text for m in self.sent if m.to == address]
