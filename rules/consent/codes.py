"""How outreach channel and purpose are expressed in an R4 ``Consent``.

R4 has no dedicated element for "may we text this patient about X", so fhir-bridge
reads (and writes) Consents like this:

* **Relevance.** Only ``status = active`` Consents whose ``scope`` is
  ``patient-privacy`` or ``treatment`` (``http://terminology.hl7.org/CodeSystem/
  consentscope``; configurable) are read. ``research`` and ``adr`` never affect
  outreach. ``category`` is not used to filter (EHRs vary: LOINC 59284-0 "Patient
  Consent", 64292-6 "Release of information consent", ...); we write 59284-0.
* **Permit or deny.** ``provision.type``. A nested provision without a type takes
  its parent's. A root provision without a type falls back to ``policyRule``
  (v3-ActCode ``OPTIN``/``OPTINR`` = permit, ``OPTOUT``/``OPTOUTE`` = deny); a
  Consent with neither (e.g. a signed consent-to-treat form) says nothing about
  outreach and is ignored, and the decision trace says so.
* **Purpose.** ``provision.purpose`` (Coding). Codes from the fhir-bridge
  CodeSystem :data:`OUTREACH_PURPOSE_SYSTEM` (``appointment-reminder``,
  ``refill-notice``, ``discharge-checkin``, ``health-tips``, ...) name one purpose;
  v3-ActReason ``TREAT`` stands for the care-related purposes and ``HMARKT`` for
  promotional ones (configurable per purpose). A provision with purposes none of
  which we recognise is about something else and does not apply; a provision with
  no purpose applies to every purpose.
* **Channel.** ``provision.action`` (example binding in R4, so local codes are
  allowed): :data:`OUTREACH_CHANNEL_SYSTEM` codes ``sms``/``email``/``voice``, or
  ``http://hl7.org/fhir/contact-point-system`` ``sms``/``email``/``phone`` (phone =
  voice). The standard consentaction codes ``use``/``disclose`` mean "any channel";
  ``access``/``collect``/``correct`` concern record access, not outreach, so such
  provisions do not apply. No action means every channel.
* **Time.** ``provision.period`` bounds when a provision applies (expired = ignored);
  ``Consent.dateTime`` orders Consents against each other and against the ledger.
* **Uncertainty only restricts.** A qualifier we cannot interpret positively
  (unknown action code, ``actor``, ``data``, ``class``, ``securityLabel``,
  ``dataPeriod``) makes a *permit* inapplicable but leaves a *deny* in force, so
  odd input can withhold a message but never allow one.
* **Contact hint.** Consents written by fhir-bridge carry a masked hint of the
  address the patient opted out from in the :data:`CONTACT_HINT_EXTENSION`
  extension on the provision; it is informational and never matched.
"""

from __future__ import annotations

from typing import Final

OUTREACH_PURPOSE_SYSTEM: Final = "https://fhir-bridge.org/fhir/CodeSystem/outreach-purpose"
OUTREACH_CHANNEL_SYSTEM: Final = "https://fhir-bridge.org/fhir/CodeSystem/outreach-channel"
CONTACT_HINT_EXTENSION: Final = "https://fhir-bridge.org/fhir/StructureDefinition/contact-hint"

CONSENT_SCOPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_ACTION_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/consentaction"
CONTACT_POINT_SYSTEM: Final = "http://hl7.org/fhir/contact-point-system"
V3_ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_ACT_REASON: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
LOINC: Final = "http://loinc.org"

PURPOSE_HEALTH_TIPS: Final = "health-tips"

CHANNEL_SMS: Final = "sms"
CHANNEL_EMAIL: Final = "email"
CHANNEL_VOICE: Final = "voice"
CHANNELS: Final = (CHANNEL_SMS, CHANNEL_EMAIL, CHANNEL_VOICE)

ANY: Final = "*"

GENERIC_OUTREACH_ACTIONS: Final = frozenset({"use", "disclose"})
NON_OUTREACH_ACTIONS: Final = frozenset({"access", "collect", "correct"})

POLICY_RULE_PERMIT: Final = frozenset({"OPTIN", "OPTINR"})
POLICY_RULE_DENY: Final = frozenset({"OPTOUT", "OPTOUTE"})

_CONTACT_POINT_CHANNELS: Final = {
    "sms": CHANNEL_SMS,
    "email": CHANNEL_EMAIL,
    "phone": CHANNEL_VOICE,
}


def channel_for_coding(system: str, code: str) -> str | None:
    """The outreach channel a ``provision.action`` coding names, if it names one."""
    if system == OUTREACH_CHANNEL_SYSTEM and code in CHANNELS:
        return code
    if system == CONTACT_POINT_SYSTEM:
        return _CONTACT_POINT_CHANNELS.get(code)
    return None
