"""A fake FHIR R4 EHR (HAPI/Epic/Medplum habits included) run as a process for integration tests.

Typical use::

    with EhrServer() as ehr, NotificationReceiver() as endpoint:
        ehr.create(subscription_pointing_at(endpoint.url))
        ehr.create(appointment)
        endpoint.wait_for(2)  # handshake + event-notification

`EhrServer` (process.py) starts `python -m tests.support.ehr` on a free loopback port;
`NotificationReceiver` (receiver.py) is a recording HTTP endpoint for notifications.
Admin knobs (chaos, settings, forced errors, delivery log, stats) live under `/_admin`.
"""

from tests.support.ehr.process import EhrRequestError, EhrServer, EhrServerError
from tests.support.ehr.receiver import NotificationReceiver, ReceivedRequest

__all__ = [
    "EhrRequestError",
    "EhrServer",
    "EhrServerError",
    "NotificationReceiver",
    "ReceivedRequest",
]
