"""Provider delivery statuses: which callback may change a message, and what it means.

Callbacks arrive out of order and more than once (Twilio retries, proxies replay), so the
status only ever moves forward: queued < sent < delivered/undelivered/failed, and the last
three are final (a late "sent" after "delivered" is ignored).

**Communication status (decision).** Delivered becomes ``completed``. Undelivered/failed
becomes ``not-done`` with a coded ``statusReason`` (``urn:fhir-bridge:delivery-failure``
``undelivered``/``failed``, the provider error code in the text), not ``entered-in-error``:
the record is right, the communication did not happen. Pure logic, no I/O.
"""

from __future__ import annotations

from typing import Any, Final

from channels.twilio_errors import INVALID_ADDRESS_CODES, UNSUBSCRIBED_CODES

DELIVERY_FAILURE_SYSTEM: Final = "urn:fhir-bridge:delivery-failure"
FINAL_STATUSES: Final = frozenset({"delivered", "undelivered", "failed"})
FAILED_STATUSES: Final = frozenset({"undelivered", "failed"})
_RANK: Final = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "undelivered": 4,
    "failed": 4,
    "delivered": 4,
}

CONTACT_OPTED_OUT: Final = "opted-out"
CONTACT_UNUSABLE: Final = "unusable"


def next_delivery_status(current: str | None, incoming: str) -> str | None:
    """The status to record for a callback, or ``None`` if it would not move forward."""
    if incoming not in _RANK or current in FINAL_STATUSES:
        return None
    if current is not None and _RANK.get(current, -1) >= _RANK[incoming]:
        return None
    return incoming


def contact_consequence(error_code: str | None) -> str | None:
    """What a provider error says about the address: opted out (21610), unusable, or nothing."""
    if error_code is None or not error_code.isdigit():
        return None
    code = int(error_code)
    if code in UNSUBSCRIBED_CODES:
        return CONTACT_OPTED_OUT
    if code in INVALID_ADDRESS_CODES:
        return CONTACT_UNUSABLE
    return None


def communication_target(
    delivery_status: str | None, error_code: str | None
) -> tuple[str, dict[str, Any] | None] | None:
    """(status, statusReason) the Communication should have, or ``None`` to leave it alone."""
    if delivery_status == "delivered":
        return "completed", None
    if delivery_status in FAILED_STATUSES:
        detail = f"provider reported {delivery_status}"
        if error_code:
            detail += f" (error {error_code})"
        reason = {
            "coding": [{"system": DELIVERY_FAILURE_SYSTEM, "code": delivery_status}],
            "text": detail,
        }
        return "not-done", reason
    return None


def with_delivery_status(
    communication: dict[str, Any], target: tuple[str, dict[str, Any] | None]
) -> dict[str, Any] | None:
    """The Communication changed to ``target``, or ``None`` if it already says so."""
    status, reason = target
    if communication.get("status") == status and communication.get("statusReason") == reason:
        return None
    changed = dict(communication)
    changed["status"] = status
    if reason is None:
        changed.pop("statusReason", None)
    else:
        changed["statusReason"] = reason
    return changed
