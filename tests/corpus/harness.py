"""Running one corpus Bundle the two ways a patient's messages can be decided.

``preview_outcome``: ``rules.preview.preview`` on the Bundle, in-process and pure.

``live_outcome``: the path users take. The Bundle's resources are written to the fake EHR
(a real process on 127.0.0.1); fhir-bridge polls them (``jobs.poll``, the ``polling`` ingest
mode) into a fresh SQLite store, plans on every change, and then every planned message is
claimed and delivered (``jobs.claim_due_messages`` / ``jobs.deliver_message``) with the
runtime's clock set to its send time, into the development outbox channel. What left is read
back from the outbox files; what was withheld from the store.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from channels.outbox import read_outbox
from fhir_bridge import jobs
from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import PlannedMessage
from rules.config import RulesConfig
from rules.model import is_lifecycle_reason
from rules.preview import preview
from rules.templates import UNSUBSCRIBE_PLACEHOLDER
from tests.pipeline.conftest import make_runtime

REFERENCED_FIRST = (
    "Organization",
    "Location",
    "HealthcareService",
    "Practitioner",
    "PractitionerRole",
    "Medication",
    "Patient",
    "Consent",
)
MAX_DELIVERY_ROUNDS = 60


@dataclass(frozen=True)
class Sent:
    """One message as it reaches (or, for preview, would reach) the patient."""

    key: str
    send_at: datetime
    channel: str
    text: str
    subject: str | None
    zone: str | None
    template: str
    language: str


@dataclass
class Outcome:
    """What was decided for one Bundle: sent and withheld (reason) by key, and anything else."""

    source: str
    sent: dict[str, Sent] = field(default_factory=dict)
    withheld: dict[str, str] = field(default_factory=dict)
    other: dict[str, str] = field(default_factory=dict)


def resources_of(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in document.get("entry") or ()]


def _instant(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def preview_outcome(document: Mapping[str, Any], config: RulesConfig, now: datetime) -> Outcome:
    outcome = Outcome(source="preview")
    for entry in preview(document, config, now):
        key = str(entry["key"])
        if entry["status"] == "planned":
            trace = entry.get("trace") or {}
            outcome.sent[key] = Sent(
                key=key,
                send_at=_instant(entry["send_at"]),
                channel=str(entry["channel"]),
                text=str(entry["text"]),
                subject=entry.get("subject"),
                zone=trace.get("zone"),
                template=str(entry.get("template")),
                language=str(entry.get("language")),
            )
        elif not is_lifecycle_reason(str(entry["reason"])):
            outcome.withheld[key] = str(entry["reason"])
    return outcome


class Clock:
    """The runtime's injectable clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _load_order(resources: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Referenced resources, the Patient and Consents first; then the events in Bundle order."""
    first = [r for kind in REFERENCED_FIRST for r in resources if r["resourceType"] == kind]
    rest = [r for r in resources if r["resourceType"] not in REFERENCED_FIRST]
    return first + rest


def live_outcome(
    document: Mapping[str, Any],
    now: datetime,
    *,
    ehr: EhrServer,
    workdir: Path,
    template_db: Path,
) -> Outcome:
    ehr.reset()
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "fhir-bridge.db"
    shutil.copyfile(template_db, database)
    rt = make_runtime(
        f"sqlite:///{database}",
        workdir,
        ehr_base_url=ehr.base_url,
        ingest_mode="polling",
        poll_page_size=50,
        ehr_max_attempts=2,
    )
    clock = Clock(now)
    rt.clock = clock
    try:
        for resource in _load_order(resources_of(document)):
            ehr.update(resource)
        jobs.poll(rt)
        _deliver_everything(rt, clock)
        return _collect(rt)
    finally:
        if "ehr" in rt._cache:
            rt.ehr.close()
        rt.engine.dispose()


def _deliver_everything(rt: Any, clock: Clock) -> None:
    for _round in range(MAX_DELIVERY_ROUNDS):
        with transaction(rt.sessions) as session:
            due = session.scalar(
                select(func.min(PlannedMessage.send_at)).where(
                    PlannedMessage.status.in_(("planned", "queued"))
                )
            )
        if due is None:
            return
        due = _instant(due)
        clock.now = due if due > clock.now else clock.now + rt.lease + timedelta(seconds=1)
        for message_id in jobs.claim_due_messages(rt):
            jobs.deliver_message(rt, message_id)


def _collect(rt: Any) -> Outcome:
    outcome = Outcome(source="live")
    outbox_dir = Path(rt.settings.outbox_dir)
    left = {
        record["message_id"]: record
        for name in ("sms.jsonl", "email.jsonl")
        for record in read_outbox(outbox_dir / name)
    }
    with transaction(rt.sessions) as session:
        rows = list(session.scalars(select(PlannedMessage)))
        for row in rows:
            if row.status == "sent":
                record = left.get(row.id)
                if record is None:
                    outcome.other[row.key] = "sent-but-not-in-outbox"
                    continue
                outcome.sent[row.key] = Sent(
                    key=row.key,
                    send_at=_instant(row.send_at),
                    channel=str(record["channel"]),
                    text=_without_token(str(record["text"])),
                    subject=record.get("subject"),
                    zone=(row.trace or {}).get("zone"),
                    template=row.template,
                    language=row.language,
                )
            elif row.status == "withheld":
                outcome.withheld[row.key] = str(row.reason)
            else:
                outcome.other[row.key] = f"{row.status}:{row.reason}"
    return outcome


_UNSUBSCRIBE_URL = re.compile(r"\S+/unsubscribe/email/\S+")


def _without_token(text: str) -> str:
    """An email's one-click unsubscribe link is signed per message; preview shows a
    placeholder in its place (``rules.templates.UNSUBSCRIBE_PLACEHOLDER``)."""
    return _UNSUBSCRIBE_URL.sub(UNSUBSCRIBE_PLACEHOLDER, text)
