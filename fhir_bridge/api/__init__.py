"""The HTTP face of fhir-bridge (FastAPI)."""
