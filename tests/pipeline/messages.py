"""Planned-message rows for the store, planning and delivery specifications."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from fhir_bridge.store.models import PlannedMessage

PATIENT_REF = "Patient/eJzlzKe3KPzAV5TtkxmNivQ3"
APPOINTMENT_REF = "Appointment/eWLhfjXHp4RUczv2VLqhCGQ3"


def planned_row(now: datetime, **changes: Any) -> PlannedMessage:
    """A reminder row as planning stores it, one day before a visit."""
    fields: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "key": f"appointment-reminder:{APPOINTMENT_REF}:P1D:{uuid.uuid4().hex[:6]}",
        "rule": "appointment-reminder",
        "purpose": "appointment-reminder",
        "patient_ref": PATIENT_REF,
        "about": [APPOINTMENT_REF],
        "send_at": now - timedelta(minutes=1),
        "status": "planned",
        "template": "appointment_reminder",
        "language": "en",
        "variables": {},
        "trace": {},
        "created_at": now,
        "updated_at": now,
        "communication_status": "none",
    }
    fields.update(changes)
    return PlannedMessage(**fields)
