"""The development EHR: an in-memory FHIR R4 server (HAPI/Epic/Medplum habits included).

It is a tool of the product -- ``fhir-bridge sandbox`` runs it with sample patients, and
``fhir-bridge run`` starts it when no EHR is configured -- and the test suite's fake EHR.
It speaks REST (search, paging, conditional create, versions), Subscriptions (R4 Backport
topic-based and classic, with handshakes, heartbeats, ``$status`` and ``$events``), SMART
Backend Services and the SMART EHR launch. It keeps everything in memory and has no login:
never put real patient data in it.

Typical use in a test::

    with EhrServer() as ehr, NotificationReceiver() as endpoint:
        ehr.create(subscription_pointing_at(endpoint.url))
        ehr.create(appointment)
        endpoint.wait_for(2)  # handshake + event-notification

`EhrServer` (process.py) starts `python -m fhir_bridge.sandbox` on a free loopback port;
`NotificationReceiver` (receiver.py) is a recording HTTP endpoint for notifications.
Admin knobs (chaos, settings, forced errors, delivery log, stats, launch contexts) live under
`/_admin`; `samples.py` loads the sample patients.
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
