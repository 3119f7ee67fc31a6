"""Specification of ``decide_consent`` for the local ledger and SMS double opt-in."""

from __future__ import annotations

import pytest

from tests.consent.decision_cases import Case, assert_decision
from tests.consent.fhir_fixtures import (
    MOBILE_E164,
    action,
    dated,
    ledger_entry,
    make_consent,
    purpose_coding,
)

CASES = [
    # Local ledger.
    pytest.param(
        Case(False, "opted-out", ledger=(ledger_entry("901", "opt-out"),), used=("ledger:901",)),
        id="sms-stop-opts-out",
    ),
    pytest.param(
        Case(
            True,
            "opted-in",
            ledger=(
                ledger_entry("901", "opt-out", days_ago=5),
                ledger_entry("902", "opt-in", days_ago=2),
            ),
        ),
        id="start-after-stop-opts-back-in",
    ),
    pytest.param(
        Case(
            False,
            "opted-out",
            consents=(
                make_consent(
                    "c-8",
                    {
                        "type": "permit",
                        "purpose": [purpose_coding("appointment-reminder")],
                        "action": [action("sms")],
                    },
                    date_time="2024-01-15",
                ),
            ),
            ledger=(ledger_entry("903", "opt-out", address=MOBILE_E164),),
        ),
        id="recent-stop-beats-older-more-specific-permit",
    ),
    pytest.param(
        Case(
            True,
            "permitted-by-consent",
            consents=(
                dated(
                    make_consent("c-9", {"type": "permit", "action": [action("sms")]}),
                    "2025-03-09T12:00:00Z",
                ),
            ),
            ledger=(ledger_entry("904", "opt-out", days_ago=30),),
        ),
        id="newer-ehr-permit-beats-older-stop",
    ),
    pytest.param(
        Case(
            True,
            "default-allow",
            ledger=(ledger_entry("905", "opt-out", address="+16175550100"),),
        ),
        id="stop-from-another-number-does-not-apply",
    ),
    pytest.param(
        Case(
            False,
            "opted-out",
            ledger=(ledger_entry("906", "opt-out", address="(617) 555-0143"),),
        ),
        id="stop-address-compared-after-e164-normalisation",
    ),
    pytest.param(
        Case(
            False,
            "opted-out",
            ledger=(ledger_entry("907", "opt-out", address=MOBILE_E164),),
            address=None,
        ),
        id="address-specific-stop-applies-when-address-unknown",
    ),
    pytest.param(
        Case(
            False,
            "default-deny",
            ledger=(ledger_entry("908", "opt-in", purpose="health-tips", address=MOBILE_E164),),
            purpose="health-tips",
            address=None,
        ),
        id="address-specific-opt-in-grants-nothing-when-address-unknown",
    ),
    pytest.param(
        Case(
            False,
            "opted-out",
            ledger=(ledger_entry("909", "opt-in"), ledger_entry("910", "opt-out")),
        ),
        id="simultaneous-opt-in-and-opt-out-denies",
    ),
    pytest.param(
        Case(False, "default-deny", ledger=(ledger_entry("911", "opt-in"),), purpose="health-tips"),
        id="general-opt-in-is-not-a-promotional-opt-in",
    ),
    pytest.param(
        Case(
            True,
            "opted-in",
            ledger=(ledger_entry("912", "opt-in", purpose="health-tips", source="staff"),),
            purpose="health-tips",
        ),
        id="purpose-specific-opt-in-allows-promotion",
    ),
    pytest.param(
        Case(
            False,
            "opted-out",
            ledger=(ledger_entry("913", "opt-out", channel="*"),),
            channel="email",
            address="camila.lopez@example.org",
        ),
        id="all-channel-opt-out-covers-email",
    ),
    # SMS double opt-in.
    pytest.param(
        Case(False, "opt-in-required", policy={"sms_double_opt_in": True}),
        id="double-opt-in-requires-confirmation",
    ),
    pytest.param(
        Case(
            False,
            "opt-in-pending",
            ledger=(ledger_entry("914", "opt-in-pending", source="staff"),),
            policy={"sms_double_opt_in": True},
        ),
        id="double-opt-in-pending-sends-nothing",
    ),
    pytest.param(
        Case(
            True,
            "opted-in",
            ledger=(
                ledger_entry("915", "opt-in-pending", days_ago=3, source="staff"),
                ledger_entry("916", "opt-in", days_ago=2),
            ),
            policy={"sms_double_opt_in": True},
        ),
        id="double-opt-in-confirmed-by-yes",
    ),
    pytest.param(
        Case(True, "default-allow", channel="email", policy={"sms_double_opt_in": True}),
        id="double-opt-in-does-not-affect-email",
    ),
    pytest.param(
        Case(
            False,
            "opt-in-required",
            consents=(make_consent("c-10", {"type": "permit"}),),
            policy={"sms_double_opt_in": True},
        ),
        id="double-opt-in-ignores-general-permit",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_ledger_decision(case: Case) -> None:
    assert_decision(case)
