"""Plain words for the codes the panel shows: one place, so every screen says the same thing.

The codes themselves stay in the "Why" trace and in the EHR; staff read these words.
An unknown code is shown as itself (never hidden), so a new reason is visible at once.
"""

from __future__ import annotations

from typing import Final

from fhir_bridge.store.models import REASON_CANCELLED_BY_STAFF, MessageStatus
from rules.caps import REASON_CAP_REACHED
from rules.consent import decision as consent_reasons
from rules.model import REASON_STAFF_CALL_INSTEAD
from rules.outreach import REASON_RENDER_FAILED, REASON_TOO_LONG

REASONS: Final[dict[str, str]] = {
    # why a message was withheld, cancelled or failed
    REASON_CAP_REACHED: "Daily or weekly message limit for this patient already reached",
    REASON_CANCELLED_BY_STAFF: "Cancelled by staff",
    REASON_STAFF_CALL_INSTEAD: "Not sent: staff should call the patient instead",
    REASON_TOO_LONG: "Message too long for one text",
    REASON_RENDER_FAILED: "Message text could not be prepared",
    "no-consent": "No channel the patient has agreed to",
    "no-contact": "No phone number or email on file",
    "no-channel": "No channel available",
    "invalid-address": "Phone number or email not usable",
    "unsubscribed": "Patient unsubscribed at the provider",
    "no-longer-planned": "No longer needed (the appointment or order changed)",
    "start-unknown": "Start date unknown",
    "run-out-unknown": "Cannot tell when the supply runs out",
    "discharge-time-unknown": "Discharge time unknown",
    "patient-not-participant": "Patient is not on the appointment",
    "patient-declined": "Patient declined the appointment",
    "not-an-order": "Not an active prescription order",
    "deceased": "Patient is recorded as deceased",
    "minor": "Patient is a minor",
    "age-unknown": "Birth date missing, so age cannot be checked",
    "unknown-patient": "Patient record not found",
    "status-not-planned": "The appointment or order is no longer active",
    "superseded": "Replaced by a newer order",
    "supply-ended": "The prescription's supply has ended",
    "readmitted": "Patient was readmitted",
    "offset-passed": "Too late: the time for this message had already passed",
    "catch-up-not-needed": "Not needed: a regular reminder follows soon",
    "catch-up-too-close-to-start": "Not sent: the visit starts too soon",
    "catch-up-outside-quiet-hours": "Quiet hours would push it past the visit",
    "broadcast-cancelled": "The appointment was cancelled by an urgent broadcast",
    "reveals-audience": "The text would reveal why the patient was chosen",
    "not-in-audience": "Not in the campaign's audience",
    "delivery-failed": "The SMS or email provider could not deliver it",
    "delivery-unconfirmed": "Delivery could not be confirmed",
    # consent decisions
    consent_reasons.REASON_PERMITTED_BY_CONSENT: "Allowed by a Consent in the chart",
    consent_reasons.REASON_DENIED_BY_CONSENT: "Refused by a Consent in the chart",
    consent_reasons.REASON_OPTED_IN: "Patient opted in",
    consent_reasons.REASON_OPTED_OUT: "Patient opted out",
    consent_reasons.REASON_OPT_IN_PENDING: "Waiting for the patient to confirm opt-in",
    consent_reasons.REASON_DEFAULT_ALLOW: "Allowed by clinic default",
    consent_reasons.REASON_DEFAULT_DENY: "Not allowed by clinic default",
    consent_reasons.REASON_OPT_IN_REQUIRED: "Needs the patient's explicit opt-in",
    consent_reasons.REASON_UNKNOWN_PURPOSE: "Purpose not configured",
    consent_reasons.REASON_UNKNOWN_CHANNEL: "Channel not configured",
}

STATUSES: Final[dict[str, str]] = {
    MessageStatus.PLANNED: "Scheduled",
    MessageStatus.QUEUED: "Sending soon",
    MessageStatus.SENDING: "Sending",
    MessageStatus.SENT: "Sent",
    MessageStatus.WITHHELD: "Not sent",
    MessageStatus.CANCELLED: "Cancelled",
    MessageStatus.FAILED: "Failed",
    MessageStatus.UNKNOWN: "Delivery unknown",
}

PURPOSES: Final[dict[str, str]] = {
    "appointment-reminder": "Appointment reminder",
    "refill-notice": "Refill reminder",
    "discharge-checkin": "Check-in after discharge",
    "health-tips": "Health tips",
    "care-coordination": "Answer from staff",
}

LANGUAGES: Final[dict[str, str]] = {"en": "English", "es": "Spanish"}

CHANNELS: Final[dict[str, str]] = {"sms": "Text (SMS)", "email": "Email", "voice": "Voice"}

CONSENT_SOURCES: Final[dict[str, str]] = {
    "ehr-consent": "Consent in chart",
    "sms-keyword": "STOP/START reply",
    "email-unsubscribe": "Email unsubscribe link",
    "staff": "Recorded by staff",
    "provider": "Reported by the SMS/email provider",
    "default": "Clinic default",
}

INBOX_KINDS: Final[dict[str, str]] = {
    "crisis": "Possible crisis",
    "reschedule": "Asks to reschedule",
    "message": "Message from patient",
}

CANCEL_REASONS: Final[dict[str, str]] = {
    "patient-request": "Patient asked us not to send it",
    "wrong-details": "Details are wrong (time, place or person)",
    "already-contacted": "Patient already contacted another way",
    "clinical-judgement": "Clinical judgement",
    "other": "Other",
}

CONSENT_REASONS: Final[dict[str, str]] = {
    "patient-request-in-person": "Patient asked in person",
    "patient-request-phone": "Patient asked by phone",
    "guardian-request": "Guardian or representative asked",
    "wrong-number": "Contact details belong to someone else",
    "other": "Other",
}


def words(table: dict[str, str], code: str | None) -> str:
    """The plain words for ``code`` in ``table``; the code itself when it has none."""
    if not code:
        return ""
    return table.get(code, code)


def reason(code: str | None) -> str:
    """Plain words for a withheld / cancelled / consent reason code."""
    return words(REASONS, code)
