"""R4 resources as an EHR sends them, for the end-to-end tests.

They are the pipeline tests' samples (``tests.pipeline.samples``), made new for the EHR
to store: no id or meta, and the names, contact and times each test needs.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from tests.pipeline import samples

_csn = itertools.count(4_100_000)


def patient(mrn: str, given: str, family: str, email: str) -> dict[str, Any]:
    resource = samples.patient()
    del resource["id"], resource["meta"]
    resource["identifier"][0]["value"] = mrn
    resource["name"] = [{"use": "official", "family": family, "given": [given]}]
    resource["telecom"] = [{"system": "email", "value": email, "use": "home", "rank": 1}]
    resource["birthDate"] = "1968-04-12"
    resource["communication"] = [
        {
            "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-US"}]},
            "preferred": True,
        }
    ]
    return resource


def appointment(patient_id: str, start: datetime, *, status: str = "booked") -> dict[str, Any]:
    resource = samples.appointment(
        patient_id,
        appointment_id=None,
        start=start.isoformat(timespec="seconds"),
        status=status,
        version=None,
        last_updated=None,
    )
    resource["identifier"][0]["value"] = str(next(_csn))
    return resource
