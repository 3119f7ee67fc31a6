"""Specification of ``decide_consent``: EHR Consents, the ledger and policy defaults."""

from __future__ import annotations

from typing import Any

import pytest

from rules.consent import ConsentPolicy, decide_consent
from tests.consent.decision_cases import Case, assert_decision
from tests.consent.fhir_fixtures import (
    ACT_REASON,
    ACTION_SYSTEM,
    MOBILE_E164,
    NOW,
    action,
    ledger_entry,
    load,
    make_consent,
    purpose_coding,
)


def _with(resource: dict[str, Any], **changes: Any) -> dict[str, Any]:
    resource.update(changes)
    return resource


def _expired_stop() -> dict[str, Any]:
    stop = load("consent-sms-stop")
    stop["provision"]["period"] = {"start": "2024-01-01", "end": "2024-12-31"}
    return stop


def _expired_tips() -> dict[str, Any]:
    tips = load("consent-health-tips-email-optin")
    tips["provision"]["period"] = {"start": "2024-06-18", "end": "2025-01-31"}
    return tips


def _permit_with_actor() -> dict[str, Any]:
    consent = load("consent-deny-disclose-to-relatedperson")
    consent["provision"]["type"] = "permit"
    consent["provision"]["purpose"] = [purpose_coding("health-tips")]
    return consent


STOP_CONSENT = "Consent/cs-8841"

CASES = [
    # Policy defaults when nothing was said.
    pytest.param(Case(True, "default-allow"), id="reminder-sms-default-allowed"),
    pytest.param(Case(True, "default-allow", channel="email"), id="reminder-email-default-allowed"),
    pytest.param(Case(False, "default-deny", channel="voice"), id="reminder-voice-not-a-default"),
    pytest.param(
        Case(True, "default-allow", purpose="discharge-checkin"), id="discharge-checkin-default"
    ),
    pytest.param(
        Case(False, "default-deny", purpose="health-tips"), id="promotional-needs-explicit-opt-in"
    ),
    pytest.param(
        Case(False, "unknown-purpose", purpose="flu-shot-campaign"), id="unknown-purpose-denied"
    ),
    pytest.param(Case(False, "unknown-channel", channel="fax"), id="unknown-channel-denied"),
    # EHR Consents.
    pytest.param(
        Case(
            False, "denied-by-consent", consents=(load("consent-sms-stop"),), used=(STOP_CONSENT,)
        ),
        id="sms-opt-out-consent-denies-sms",
    ),
    pytest.param(
        Case(True, "default-allow", consents=(load("consent-sms-stop"),), channel="email"),
        id="sms-opt-out-consent-leaves-email",
    ),
    pytest.param(
        Case(True, "default-allow", consents=(_with(load("consent-sms-stop"), status="inactive"),)),
        id="inactive-consent-ignored",
    ),
    pytest.param(
        Case(
            True,
            "default-allow",
            consents=(_with(load("consent-sms-stop"), status="entered-in-error"),),
        ),
        id="entered-in-error-consent-ignored",
    ),
    pytest.param(
        Case(True, "default-allow", consents=(_with(load("consent-sms-stop"), status="draft"),)),
        id="draft-consent-ignored",
    ),
    pytest.param(
        Case(True, "default-allow", consents=(_expired_stop(),)), id="expired-consent-ignored"
    ),
    pytest.param(
        Case(
            True,
            "permitted-by-consent",
            consents=(load("consent-privacy-deny-except-reminders"),),
        ),
        id="nested-permit-is-exception-to-general-deny",
    ),
    pytest.param(
        Case(
            False,
            "denied-by-consent",
            consents=(load("consent-privacy-deny-except-reminders"),),
            purpose="refill-notice",
        ),
        id="general-deny-covers-other-purposes",
    ),
    pytest.param(
        Case(
            True,
            "permitted-by-consent",
            consents=(load("consent-health-tips-email-optin"),),
            purpose="health-tips",
            channel="email",
            address="camila.lopez@example.org",
        ),
        id="explicit-email-opt-in-allows-health-tips",
    ),
    pytest.param(
        Case(
            False,
            "default-deny",
            consents=(load("consent-health-tips-email-optin"),),
            purpose="health-tips",
        ),
        id="email-opt-in-does-not-cover-sms",
    ),
    pytest.param(
        Case(
            False,
            "default-deny",
            consents=(_expired_tips(),),
            purpose="health-tips",
            channel="email",
        ),
        id="expired-opt-in-no-longer-allows-promotion",
    ),
    pytest.param(
        Case(True, "default-allow", consents=(load("consent-to-treat-signed"),)),
        id="consent-to-treat-without-provision-is-silent",
    ),
    pytest.param(
        Case(True, "default-allow", consents=(load("consent-research-deny"),)),
        id="research-consent-out-of-scope",
    ),
    pytest.param(
        Case(
            False, "denied-by-consent", consents=(load("consent-deny-disclose-to-relatedperson"),)
        ),
        id="deny-with-uninterpreted-actor-still-restricts",
    ),
    pytest.param(
        Case(False, "default-deny", consents=(_permit_with_actor(),), purpose="health-tips"),
        id="permit-with-uninterpreted-actor-grants-nothing",
    ),
    pytest.param(
        Case(
            False,
            "denied-by-consent",
            consents=(make_consent("c-1", {}, policy_rule="OPTOUT"),),
        ),
        id="untyped-provision-takes-policy-rule-opt-out",
    ),
    pytest.param(
        Case(
            False,
            "denied-by-consent",
            consents=(
                make_consent(
                    "c-2", {"type": "deny", "purpose": [purpose_coding("TREAT", ACT_REASON)]}
                ),
            ),
            purpose="refill-notice",
        ),
        id="v3-treat-deny-covers-refill-notices",
    ),
    pytest.param(
        Case(
            True,
            "default-allow",
            consents=(
                make_consent(
                    "c-3", {"type": "deny", "purpose": [purpose_coding("HRESCH", ACT_REASON)]}
                ),
            ),
        ),
        id="deny-for-unrelated-purpose-does-not-apply",
    ),
    pytest.param(
        Case(
            True,
            "default-allow",
            consents=(
                make_consent("c-4", {"type": "deny", "action": [action("access", ACTION_SYSTEM)]}),
            ),
        ),
        id="deny-of-record-access-is-not-about-outreach",
    ),
    pytest.param(
        Case(
            False,
            "denied-by-consent",
            consents=(
                make_consent(
                    "c-5", {"type": "deny", "action": [action("notify", "urn:oid:1.2.3.4.5")]}
                ),
            ),
        ),
        id="deny-with-unknown-action-restricts",
    ),
    pytest.param(
        Case(
            False,
            "denied-by-consent",
            consents=(make_consent("c-6", {"type": "deny", "period": {"start": "next week"}}),),
        ),
        id="deny-with-malformed-period-restricts",
    ),
    pytest.param(
        Case(
            False,
            "denied-by-consent",
            consents=(
                make_consent(
                    "c-7",
                    {
                        "type": "deny",
                        "action": [action("email", "http://hl7.org/fhir/contact-point-system")],
                    },
                ),
            ),
            channel="email",
            address="camila.lopez@example.org",
        ),
        id="contact-point-system-email-names-the-channel",
    ),
    pytest.param(
        Case(
            True,
            "permitted-by-consent",
            consents=(
                make_consent("c-old", {}, date_time="2024-05-01", policy_rule="OPTOUT"),
                make_consent(
                    "c-new", {"type": "permit", "action": [action("sms")]}, date_time="2025-02-01"
                ),
            ),
            used=("Consent/c-new", "Consent/c-old"),
        ),
        id="newer-consent-wins-and-both-are-listed",
    ),
    pytest.param(
        Case(
            True,
            "default-allow",
            consents=(
                make_consent(
                    "c-11",
                    {
                        "type": "deny",
                        "purpose": [purpose_coding("health-tips")],
                        "provision": [{"type": "permit", "action": [action("email")]}],
                    },
                ),
            ),
            channel="email",
        ),
        id="nested-exception-stays-within-parent-purpose",
    ),
    pytest.param(
        Case(
            False,
            "denied-by-consent",
            consents=(
                make_consent("c-p", {"type": "permit", "action": [action("sms")]}),
                make_consent("c-d", {"type": "deny", "action": [action("sms")]}),
            ),
        ),
        id="deny-beats-permit-of-equal-rank",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_consent_decision(case: Case) -> None:
    assert_decision(case)


def test_policy_default_decision_uses_no_sources() -> None:
    decision = decide_consent(
        consents=[load("consent-to-treat-signed")],
        ledger=[],
        purpose="appointment-reminder",
        channel="sms",
        now=NOW,
        policy=ConsentPolicy(),
    )
    assert decision.used == ()


def test_trace_explains_why_a_consent_was_ignored() -> None:
    decision = decide_consent(
        consents=[load("consent-research-deny")],
        ledger=[],
        purpose="appointment-reminder",
        channel="sms",
        now=NOW,
        policy=ConsentPolicy(),
    )
    assert {"ref": "Consent/res-2291", "why": "out-of-scope"} in decision.trace["ignored"]


def test_trace_never_contains_the_address() -> None:
    decision = decide_consent(
        consents=[load("consent-sms-stop")],
        ledger=[ledger_entry("917", "opt-out", address=MOBILE_E164)],
        purpose="appointment-reminder",
        channel="sms",
        now=NOW,
        policy=ConsentPolicy(),
        address=MOBILE_E164,
    )
    assert "5550143" not in repr(decision.trace)


def test_custom_purpose_allowed_by_default_only_on_its_channels() -> None:
    policy = ConsentPolicy.model_validate(
        {"purposes": {"lab-result-ready": {"default_channels": ["email"]}}}
    )
    decide = {
        channel: decide_consent(
            consents=[],
            ledger=[],
            purpose="lab-result-ready",
            channel=channel,
            now=NOW,
            policy=policy,
        ).allowed
        for channel in ("sms", "email")
    }
    assert decide == {"sms": False, "email": True}


def test_configured_purposes_extend_the_shipped_ones() -> None:
    policy = ConsentPolicy.model_validate(
        {"purposes": {"lab-result-ready": {"default_channels": ["email"]}}}
    )
    assert {"appointment-reminder", "health-tips", "lab-result-ready"} <= set(policy.purposes)


def test_promotional_purpose_cannot_have_default_channels() -> None:
    with pytest.raises(ValueError, match="promotional"):
        ConsentPolicy.model_validate(
            {"purposes": {"newsletter": {"promotional": True, "default_channels": ["email"]}}}
        )
