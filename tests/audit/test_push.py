"""AuditEvents are kept in the audited transaction, pushed to the EHR after commit by the
relay's tasks, retried while the EHR is down, and kept locally when it refuses them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhir_bridge.audit import events, repository
from fhir_bridge.audit.jobs import audit_events_to_push, push_audit_event
from fhir_bridge.audit.service import record
from fhir_bridge.fhir.keys import generate_private_key, load_signing_key, public_jwks
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox import EhrServer
from fhir_bridge.sandbox.auth import DEFAULT_SCOPE
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import AuditEventRecord
from tests.audit.conftest import BRIDGE_URL, Clock
from tests.support.outage_proxy import outage_proxy

PATIENT = "Patient/pat-okafor-5521"
PRACTITIONER = "Practitioner/dr-alvarez-0042"
MakeRuntime = Callable[..., Runtime]


def _panel_open(rt: Runtime) -> dict[str, Any]:
    return events.panel_opened(
        observer=events.Observer(base_url=BRIDGE_URL, ehr_base_url=rt.settings.ehr_base_url),
        recorded=rt.clock(),
        staff_ref=PRACTITIONER,
        patient_ref=PATIENT,
        client=events.PanelClient(client_id="lakeside-staff-panel", address="10.20.4.17"),
    )


def _recorded(rt: Runtime) -> str:
    with transaction(rt.sessions) as session:
        return record(session, _panel_open(rt))


def _row(rt: Runtime, audit_id: str) -> AuditEventRecord:
    with transaction(rt.sessions) as session:
        row = repository.get(session, audit_id)
        assert row is not None
        return row


def test_an_audit_event_of_a_rolled_back_transaction_is_not_kept(
    make_runtime: MakeRuntime, ehr: EhrServer
) -> None:
    rt = make_runtime(ehr.base_url)
    try:
        with transaction(rt.sessions) as session:
            record(session, _panel_open(rt))
            raise LookupError("the audited action failed")
    except LookupError:
        pass
    assert audit_events_to_push(rt) == []


def test_the_relay_hands_a_committed_audit_event_to_a_push_that_writes_it_to_the_ehr(
    make_runtime: MakeRuntime, ehr: EhrServer
) -> None:
    rt = make_runtime(ehr.base_url)
    audit_id = _recorded(rt)
    assert audit_events_to_push(rt) == [audit_id]
    assert push_audit_event(rt, audit_id) == "written"
    row = _row(rt, audit_id)
    assert (row.push_status, row.attempts) == ("written", 1)
    stored = ehr.read("AuditEvent", str(row.ehr_id))
    assert stored["entity"][0]["what"] == {"reference": PATIENT}
    assert audit_events_to_push(rt) == []


def test_a_push_while_the_ehr_is_down_is_retried_once_it_is_back(
    make_runtime: MakeRuntime, ehr: EhrServer, clock: Clock
) -> None:
    with outage_proxy(ehr.origin) as proxy:
        rt = make_runtime(proxy.origin + ehr.base_url.removeprefix(ehr.origin))
        audit_id = _recorded(rt)
        proxy.down()
        assert push_audit_event(rt, audit_id) == "retry"
        assert _row(rt, audit_id).push_status == "pending"
        assert audit_events_to_push(rt) == []  # not before its retry time
        proxy.up()
        clock.advance(5)
        assert audit_events_to_push(rt) == [audit_id]
        assert push_audit_event(rt, audit_id) == "written"
    assert _row(rt, audit_id).attempts == 2


def test_an_ehr_that_refuses_audit_event_writes_leaves_it_rejected_and_kept_locally(
    make_runtime: MakeRuntime, ehr: EhrServer
) -> None:
    pem = generate_private_key("ES384")
    # The EHR registered our client without AuditEvent writes: the create answers 403.
    ehr.register_client("lakeside-bridge", public_jwks(load_signing_key(pem)), DEFAULT_SCOPE)
    rt = make_runtime(
        ehr.base_url,
        ehr_auth="smart-backend",
        ehr_client_id="lakeside-bridge",
        ehr_private_key=pem,
        ehr_token_url=ehr.token_url,
    )
    audit_id = _recorded(rt)
    assert push_audit_event(rt, audit_id) == "rejected"
    row = _row(rt, audit_id)
    assert (row.push_status, row.ehr_id) == ("rejected", None)
    assert "HTTP 403" in str(row.push_error)
    assert audit_events_to_push(rt) == []
    with transaction(rt.sessions) as session:
        kept = repository.for_patient(session, PATIENT)
    assert [(r.id, r.type_code, r.agent_ref) for r in kept] == [(audit_id, "rest", PRACTITIONER)]


def test_with_the_push_turned_off_audit_events_stay_local_and_pending(
    make_runtime: MakeRuntime, ehr: EhrServer
) -> None:
    rt = make_runtime(ehr.base_url, audit_push=False)
    audit_id = _recorded(rt)
    assert audit_events_to_push(rt) == []
    assert push_audit_event(rt, audit_id) == "off"
    assert _row(rt, audit_id).push_status == "pending"
    assert ehr.search("AuditEvent")["total"] == 0
