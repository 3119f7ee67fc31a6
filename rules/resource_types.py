"""The FHIR resource types outreach is planned from: the one list every other list derives from.

Subscriptions (one per type), polling, the EHR client's validation, the planning store and
``preview`` all read it from here; add a type here and nowhere else.
"""

from __future__ import annotations

PLANNED_TYPES: tuple[str, ...] = ("Appointment", "MedicationRequest", "Encounter")
