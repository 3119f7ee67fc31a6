"""Delivery: transient failures back off then give up; abandoned sends are settled, not resent."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from channels.base import (
    ChannelAdapter,
    OutboundMessage,
    PermanentChannelError,
    SendReceipt,
    TransientChannelError,
)
from fhir_bridge.fhir.errors import EhrNotFound
from fhir_bridge.fhir.resources import patient_reference
from fhir_bridge.outreach.delivery import DeliveryDeps, deliver, reconcile_abandoned
from fhir_bridge.outreach.planning import new_row
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import PlannedMessage
from fhir_bridge.sync import repository as state_repository
from rules.engine import plan_for_patient
from tests.pipeline.conftest import make_runtime
from tests.pipeline.messages import planned_row
from tests.rules.factories import appointment, default_config, english_patient, snapshot

LEASE = timedelta(minutes=2)


class SmtpLike(ChannelAdapter):
    """A provider that cannot be asked what it sent (like SMTP)."""

    provider, channel = "smtp", "email"

    def send(self, message: OutboundMessage) -> SendReceipt:
        raise AssertionError("reconciliation must never resend")


class TwilioLike(ChannelAdapter):
    """A provider that can be asked whether a message left, by our id."""

    provider, channel = "twilio", "sms"

    def __init__(self, sent: Mapping[str, SendReceipt]) -> None:
        self.sent = dict(sent)

    def send(self, message: OutboundMessage) -> SendReceipt:
        raise AssertionError("reconciliation must never resend")

    def find_sent(self, message_id: str, record: object = None) -> SendReceipt | None:
        return self.sent.get(message_id)


class Overloaded(ChannelAdapter):
    """Every send fails with a retryable error."""

    provider = "twilio"

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.calls = 0

    def send(self, message: OutboundMessage) -> SendReceipt:
        self.calls += 1
        raise TransientChannelError("http-503", "provider overloaded")


class StubEhr:
    """Serves fixed resources by reference; no Consent resources."""

    def __init__(self, *resources: dict[str, Any]) -> None:
        self.resources = {f"{r['resourceType']}/{r['id']}": r for r in resources}

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        try:
            return self.resources[f"{resource_type}/{resource_id}"]
        except KeyError:
            raise EhrNotFound("not found", status=404) from None

    def search_all(self, resource_type: str, params: Mapping[str, str]) -> Iterator[Any]:
        return iter(())


@pytest.fixture
def runtime(sqlite_url: str, tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(sqlite_url, tmp_path)
    yield rt
    rt.engine.dispose()


def _store_resources(session: Session, resources: list[dict[str, Any]], _p: Any) -> None:
    for resource in resources:
        existing = state_repository.get_state(session, resource["resourceType"], resource["id"])
        state_repository.save_state(
            session,
            existing,
            resource=resource,
            version_id=None,
            last_updated=None,
            patient_ref=patient_reference(resource),
            now=datetime.now().astimezone(),
        )


def _deps(
    rt: Runtime, now: datetime, adapters: Mapping[str, ChannelAdapter], ehr: Any = None
) -> DeliveryDeps:
    return DeliveryDeps(
        factory=rt.sessions,
        ehr=ehr or StubEhr(),
        adapters=adapters,
        config=default_config(),
        clock=lambda: now,
        lease=LEASE,
        max_attempts=2,
        refresh=_store_resources,
    )


def _abandoned(rt: Runtime, now: datetime, channel: str) -> str:
    row = planned_row(
        now, status="sending", channel=channel, lease_until=now - timedelta(seconds=1), attempts=1
    )
    with transaction(rt.sessions) as session:
        session.add(row)
    return row.id


def _row(rt: Runtime, message_id: str) -> PlannedMessage:
    with transaction(rt.sessions) as session:
        row = session.get(PlannedMessage, message_id)
        assert row is not None
        return row


def test_abandoned_send_without_provider_lookup_becomes_unknown(
    runtime: Runtime, fixed_now: datetime
) -> None:
    message_id = _abandoned(runtime, fixed_now, "email")

    counts = reconcile_abandoned(_deps(runtime, fixed_now, {"email": SmtpLike()}))

    row = _row(runtime, message_id)
    assert counts == {"sent": 0, "requeued": 0, "unknown": 1, "deferred": 0}
    assert (row.status, row.communication_status) == ("unknown", "pending")


def test_abandoned_send_the_provider_never_received_is_requeued(
    runtime: Runtime, fixed_now: datetime
) -> None:
    message_id = _abandoned(runtime, fixed_now, "sms")

    counts = reconcile_abandoned(_deps(runtime, fixed_now, {"sms": TwilioLike({})}))

    assert counts == {"sent": 0, "requeued": 1, "unknown": 0, "deferred": 0}
    assert _row(runtime, message_id).status == "queued"


def test_abandoned_send_the_provider_has_is_recorded_as_sent(
    runtime: Runtime, fixed_now: datetime
) -> None:
    message_id = _abandoned(runtime, fixed_now, "sms")
    receipt = SendReceipt("twilio", "SM0f1e2d3c4b5a69788796a5b4c3d2e1f0", "delivered")

    counts = reconcile_abandoned(
        _deps(runtime, fixed_now, {"sms": TwilioLike({message_id: receipt})})
    )

    row = _row(runtime, message_id)
    assert counts == {"sent": 1, "requeued": 0, "unknown": 0, "deferred": 0}
    assert (row.status, row.provider_message_id) == ("sent", receipt.provider_message_id)


def test_a_send_whose_lease_has_not_expired_is_left_alone(
    runtime: Runtime, fixed_now: datetime
) -> None:
    message_id = _abandoned(runtime, fixed_now + timedelta(minutes=5), "email")

    counts = reconcile_abandoned(_deps(runtime, fixed_now, {"email": SmtpLike()}))

    assert counts == {"sent": 0, "requeued": 0, "unknown": 0, "deferred": 0}
    assert _row(runtime, message_id).status == "sending"


def _queued_reminder(rt: Runtime) -> tuple[str, datetime, StubEhr]:
    visit = appointment()
    person = english_patient()
    message = plan_for_patient(
        snapshot(visit, patient_resource=person),
        default_config(),
        datetime.fromisoformat("2026-11-23T12:00:00+00:00"),
    ).messages[0]
    row = new_row(message, message.send_at)
    row.status, row.lease_until = "queued", message.send_at - timedelta(seconds=1)
    with transaction(rt.sessions) as session:
        session.add(row)
    return row.id, message.send_at, StubEhr(visit, person)


def test_transient_channel_error_requeues_with_backoff(runtime: Runtime) -> None:
    message_id, now, ehr = _queued_reminder(runtime)
    adapters = {"sms": Overloaded("sms"), "email": Overloaded("email")}

    outcome = deliver(_deps(runtime, now, adapters, ehr), message_id)

    row = _row(runtime, message_id)
    assert outcome == "retry"
    assert (row.status, row.attempts) == ("queued", 1)
    assert row.lease_until is not None and row.lease_until > now + timedelta(seconds=10)


def test_transient_channel_errors_fail_the_message_after_max_attempts(runtime: Runtime) -> None:
    message_id, now, ehr = _queued_reminder(runtime)
    adapters = {"sms": Overloaded("sms"), "email": Overloaded("email")}
    deps = _deps(runtime, now, adapters, ehr)

    outcomes = [deliver(deps, message_id), deliver(deps, message_id)]

    row = _row(runtime, message_id)
    assert outcomes == ["retry", "failed"]
    assert (row.status, row.reason, row.communication_status) == (
        "failed",
        "delivery-failed",
        "pending",
    )


class Recording(ChannelAdapter):
    """Accepts every message and remembers where it went."""

    provider = "outbox"

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.sent: list[OutboundMessage] = []

    def send(self, message: OutboundMessage) -> SendReceipt:
        self.sent.append(message)
        return SendReceipt("outbox", f"out-{len(self.sent)}", "sent")


class RefusesNumber(ChannelAdapter):
    """The provider says the number is not a mobile number (Twilio 21614)."""

    provider, channel = "twilio", "sms"

    def send(self, message: OutboundMessage) -> SendReceipt:
        raise PermanentChannelError("21614", "invalid-address")


def test_an_invalid_mobile_number_falls_back_to_the_next_permitted_channel(
    runtime: Runtime,
) -> None:
    message_id, now, ehr = _queued_reminder(runtime)
    email = Recording("email")
    deps = _deps(runtime, now, {"sms": RefusesNumber(), "email": email}, ehr)

    outcomes = [deliver(deps, message_id), deliver(deps, message_id)]

    row = _row(runtime, message_id)
    assert outcomes == ["fallback", "sent"]
    assert (row.status, row.channel) == ("sent", "email")
    assert [m.to for m in email.sent] == ["maria.gonzalez@example.com"]


def test_with_fallback_off_an_invalid_mobile_number_fails_the_message(runtime: Runtime) -> None:
    message_id, now, ehr = _queued_reminder(runtime)
    deps = _deps(runtime, now, {"sms": RefusesNumber(), "email": Recording("email")}, ehr)
    deps.fallback = False

    outcome = deliver(deps, message_id)

    row = _row(runtime, message_id)
    assert outcome == "failed"
    assert (row.status, row.reason) == ("failed", "invalid-address")
