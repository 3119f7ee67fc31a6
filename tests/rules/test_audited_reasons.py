"""Which decisions against a message are audited (a not-done Communication) and which are not.

Audited: the patient was denied a message we would otherwise send (consent,
caps, protections, sensitivity policy, length, quiet hours). Not audited:
bookkeeping about why a resource no longer calls for a message.
"""

from __future__ import annotations

import pytest

from rules.model import is_lifecycle_reason


@pytest.mark.parametrize(
    "reason",
    [
        "appointment-cancelled",
        "status-not-planned",
        "offset-passed",
        "catch-up-not-needed",
        "catch-up-too-close-to-start",
        "medication-request-stopped",
        "superseded",
        "readmitted",
    ],
)
def test_bookkeeping_outcomes_write_no_communication(reason: str) -> None:
    assert is_lifecycle_reason(reason)


@pytest.mark.parametrize(
    "reason",
    [
        "cap-reached",
        "no-consent",
        "patient-deceased",
        "message-too-long",
        "catch-up-outside-quiet-hours",
        "run-out-unknown",
    ],
)
def test_messages_withheld_from_the_patient_are_audited(reason: str) -> None:
    assert not is_lifecycle_reason(reason)
