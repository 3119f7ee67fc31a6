"""A fake FHIR R4 EHR (HAPI/Epic/Medplum habits included) run as a process for integration tests.

Use `EhrServer` as a context manager; see `process.py` for the helper API.
"""

from tests.support.ehr.process import EhrRequestError, EhrServer, EhrServerError

__all__ = ["EhrRequestError", "EhrServer", "EhrServerError"]
