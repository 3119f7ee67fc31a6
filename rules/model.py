"""The contract between the pure outreach logic (``rules``) and the pipeline that runs it.

Everything here is plain data: the pipeline hands resources in, the rules hand
decisions out. No I/O happens on either side of this boundary, which is what
lets the staff panel and ``fhir-bridge preview`` reuse exactly the same logic.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from typing import Any

JSON = dict[str, Any]

PURPOSE_APPOINTMENT_REMINDER = "appointment-reminder"
PURPOSE_REFILL_NOTICE = "refill-notice"
PURPOSE_DISCHARGE_CHECKIN = "discharge-checkin"
REASON_STAFF_CALL_INSTEAD = "staff-call-instead"
"""Withheld because staff call the patient instead; the pipeline writes an urgent Task."""


@dataclass(frozen=True)
class SentRecord:
    """A message that already left (or was decided) for this patient; used for caps."""

    key: str
    rule: str
    purpose: str
    send_at: datetime


@dataclass(frozen=True)
class PatientSnapshot:
    """Everything the rules may look at for one patient, as raw R4 JSON."""

    patient_ref: str
    patient: Mapping[str, Any] | None
    resources: Sequence[Mapping[str, Any]]
    history: Sequence[SentRecord] = ()
    referenced: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Resources the rules read through a reference (Location, HealthcareService,
    Practitioner, PractitionerRole, Organization, Medication), by relative reference
    ``Type/id``. Live planning and ``preview`` fill it with the same function,
    :func:`rules.snapshot.build_snapshot`."""

    def resolve(self, reference: str | None) -> Mapping[str, Any] | None:
        """The referenced resource for ``Type/id`` or an absolute URL ending in it."""
        if not reference:
            return None
        found = self.referenced.get(reference)
        if found is not None:
            return found
        for key, value in self.referenced.items():
            if reference.endswith("/" + key):
                return value
        return None


@dataclass(frozen=True, init=False)
class PlannedMessage:
    """One message the rules want sent at ``send_at`` (aware, UTC).

    ``key`` is stable across re-planning: the same appointment and offset always
    produce the same key, so the pipeline can upsert, reschedule and cancel by it.
    """

    key: str
    rule: str
    purpose: str
    patient_ref: str
    about: tuple[str, ...]
    send_at: datetime
    template: str
    language: str
    variables: Mapping[str, str]
    trace: Mapping[str, Any]
    sensitive: bool = False
    about_at: datetime | None = None
    """When what the message is about happens (an appointment's start). Frequency caps
    keep the message about the soonest event; ``None`` ranks by ``send_at``."""

    def __init__(
        self,
        key: str,
        rule: str,
        purpose: str,
        patient_ref: str,
        about: tuple[str, ...],
        send_at: datetime,
        template: str,
        language: str,
        variables: Mapping[str, str],
        trace: Mapping[str, Any],
        sensitive: bool = False,
        about_at: datetime | None = None,
    ) -> None:
        # The generated __init__ of a frozen dataclass sets each field through
        # object.__setattr__; filling the instance dict at once builds a message in
        # less than half the time, and a busy day plans hundreds of thousands.
        # check_hand_written_init (below the class) keeps this in step with the fields.
        self.__dict__.update(
            key=key,
            rule=rule,
            purpose=purpose,
            patient_ref=patient_ref,
            about=about,
            send_at=send_at,
            template=template,
            language=language,
            variables=variables,
            trace=trace,
            sensitive=sensitive,
            about_at=about_at,
        )

    def with_trace(self, trace: Mapping[str, Any]) -> PlannedMessage:
        """This message with another trace (``dataclasses.replace``, without its overhead).

        Copies every field at once rather than through the frozen ``__init__``, which
        sets each field with ``object.__setattr__`` (a plan of a busy day makes this
        copy for every message it keeps).
        """
        copy = object.__new__(PlannedMessage)
        fields = copy.__dict__
        fields.update(self.__dict__)
        fields["trace"] = trace
        return copy

    def withhold(self, reason: str, detail: str, trace: Mapping[str, Any]) -> WithheldMessage:
        """This message, decided against: same key and subject, with the reason and trace."""
        return WithheldMessage(
            key=self.key,
            rule=self.rule,
            purpose=self.purpose,
            patient_ref=self.patient_ref,
            about=self.about,
            reason=reason,
            detail=detail,
            trace=trace,
            send_at=self.send_at,
        )


@dataclass(frozen=True)
class WithheldMessage:
    """A message the rules decided not to send, with a coded reason for the audit trail."""

    key: str
    rule: str
    purpose: str
    patient_ref: str
    about: tuple[str, ...]
    reason: str
    detail: str
    trace: Mapping[str, Any]
    send_at: datetime | None = None
    """When it would have been sent; a ``cap-reached`` decision is provisional until then."""


def check_hand_written_init(cls: type) -> None:
    """Fail at import when a dataclass's hand-written ``__init__`` (written for speed)
    no longer takes exactly its fields, in order, with their defaults."""
    parameters = inspect.signature(cls).parameters.values()
    expected = [
        (item.name, inspect.Parameter.empty if item.default is MISSING else item.default)
        for item in fields(cls)
        if item.init
    ]
    if [(p.name, p.default) for p in parameters] != expected:
        raise TypeError(f"{cls.__name__}.__init__ does not match its fields")


check_hand_written_init(PlannedMessage)


@dataclass(frozen=True)
class Plan:
    """The complete desired outreach for one patient at ``planned_at``."""

    patient_ref: str
    planned_at: datetime
    messages: tuple[PlannedMessage, ...] = ()
    withheld: tuple[WithheldMessage, ...] = ()


@dataclass(frozen=True)
class RenderedMessage:
    """Text exactly as it will be delivered on one channel."""

    channel: str
    subject: str | None
    text: str
    html: str | None
    template: str
    language: str
    segments: int | None = None


@dataclass(frozen=True)
class PreparedDelivery:
    """A message cleared to leave now: consented channel, address and final text.

    ``consent_used`` names the Consent ids that allowed it, so the audit trail can
    show *why* the message was lawful at the moment it was sent.
    """

    channel: str
    address: str
    rendered: RenderedMessage
    consent_used: tuple[str, ...]
    trace: Mapping[str, Any]


LIFECYCLE_REASONS = frozenset(
    {
        "status-not-planned",
        "start-unknown",
        "patient-not-participant",
        "patient-declined",
        "not-an-order",
        "superseded",
        "supply-ended",
        "discharge-time-unknown",
        "readmitted",
        "offset-passed",
        "catch-up-not-needed",
        "catch-up-too-close-to-start",
    }
)
LIFECYCLE_PREFIXES = ("appointment-", "medication-request-")


def is_lifecycle_reason(reason: str) -> bool:
    """True when "withheld" only means the resource no longer calls for a message.

    A cancelled appointment or a stopped prescription is not a message we chose
    to withhold from a patient; recording it as a not-done Communication would
    bury the real decisions (consent, caps, protections) auditors look for.
    The same holds for bookkeeping about reminder slots: an offset whose time had
    passed when the appointment was booked (``offset-passed``), a catch-up not
    needed because a regular reminder follows soon, or none because the visit
    starts within the minimum lead (the patient has just booked it). A catch-up
    that quiet hours push past the start *is* audited: a policy withheld it.
    """
    return reason in LIFECYCLE_REASONS or reason.startswith(LIFECYCLE_PREFIXES)
