"""The fake EHR moved into the product as :mod:`fhir_bridge.sandbox` (``fhir-bridge sandbox``).

This package stays so older imports (``tests.support.ehr``, ``tests.support.ehr.process``,
…) and ``python -m tests.support.ehr`` keep working; each submodule is an alias of the
sandbox's own module (same classes, same private names).
"""

from fhir_bridge.sandbox.process import EhrRequestError, EhrServer, EhrServerError
from fhir_bridge.sandbox.receiver import NotificationReceiver, ReceivedRequest

__all__ = [
    "EhrRequestError",
    "EhrServer",
    "EhrServerError",
    "NotificationReceiver",
    "ReceivedRequest",
]
