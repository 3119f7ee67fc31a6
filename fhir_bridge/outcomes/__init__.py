"""Outcome measures for clinic managers: ``fhir-bridge report``, the panel's outcomes page."""
