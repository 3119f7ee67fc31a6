"""The staff-facing SMART-on-FHIR app (launched inside the chart).

Reserved for the staff panel: the patient's outreach timeline and consent, with actions.
It is not built yet; the data it will show already exists (planned messages with their
traces, the consent ledger, and Communications in the EHR).
"""
