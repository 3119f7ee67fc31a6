"""The staff-facing SMART-on-FHIR app, launched inside the chart (SMART App Launch 2.x).

Staff open it from the EHR (EHR launch: ``/smart/launch?iss=…&launch=…``); it shows
the launch patient's outreach timeline (every planned message: when, why, status,
withheld reason, rendered text) and consent per channel and purpose, and lets staff
cancel a pending message or record an opt-in/opt-out. ``router`` is mounted by
``fhir_bridge.api.app.create_app``; see :mod:`smart_app.routes`.
"""

from smart_app.routes import router

__all__ = ["router"]
