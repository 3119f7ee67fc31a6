"""AuditEvents are built to IHE Basic Audit Log Patterns and are strictly valid R4."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fhirclient.models.auditevent import AuditEvent

from fhir_bridge.audit import events

RECORDED = datetime(2026, 12, 1, 9, 30, 15, tzinfo=UTC)
OBSERVER = events.Observer(
    base_url="https://bridge.lakeside-fp.org", ehr_base_url="https://ehr.lakeside-fp.org/fhir/r4"
)
PANEL = events.PanelClient(client_id="lakeside-staff-panel", address="10.20.4.17")
PATIENT = "Patient/pat-okafor-5521"
PRACTITIONER = "Practitioner/dr-alvarez-0042"


def _agent(resource: dict[str, Any], code: str) -> dict[str, Any]:
    return next(agent for agent in resource["agent"] if agent["type"]["coding"][0]["code"] == code)


def _entity_with_role(resource: dict[str, Any], role: str) -> dict[str, Any]:
    return next(
        entity for entity in resource["entity"] if (entity.get("role") or {}).get("code") == role
    )


def test_a_panel_open_is_a_balp_patient_read_by_the_practitioner() -> None:
    resource = events.panel_opened(
        observer=OBSERVER,
        recorded=RECORDED,
        staff_ref=PRACTITIONER,
        patient_ref=PATIENT,
        client=PANEL,
    )
    AuditEvent(resource, strict=True)
    assert resource["meta"]["profile"] == [events.BALP + "PatientRead"]
    assert (resource["type"]["code"], resource["subtype"][0]["code"]) == ("rest", "read")
    assert (resource["action"], resource["outcome"]) == ("R", "0")
    user = _agent(resource, "IRCP")
    assert (user["who"], user["requestor"]) == ({"reference": PRACTITIONER}, True)
    assert _agent(resource, "110153")["who"]["display"] == "fhir-bridge"
    assert _agent(resource, "110152")["network"] == {"address": "10.20.4.17", "type": "2"}
    assert _entity_with_role(resource, "1")["what"] == {"reference": PATIENT}
    assert resource["source"]["observer"]["identifier"]["value"] == OBSERVER.base_url


def test_a_staff_cancel_is_a_patient_update_of_the_message_communication() -> None:
    target = events.identified("Communication", "urn:fhir-bridge:message-id", "9b1f0c2e-msg")
    resource = events.patient_change(
        observer=OBSERVER,
        recorded=RECORDED,
        action="U",
        requestor_ref=PRACTITIONER,
        patient_ref=PATIENT,
        target=target,
        client=PANEL,
        what="cancel",
    )
    AuditEvent(resource, strict=True)
    assert resource["meta"]["profile"] == [events.BALP + "PatientUpdate"]
    assert (resource["subtype"][0]["code"], resource["action"]) == ("update", "U")
    data = _entity_with_role(resource, "4")
    assert (data["what"], data["description"]) == (target, "cancel")
    assert _agent(resource, "AUT")["who"] == {"reference": PRACTITIONER}


def test_an_sms_opt_out_is_a_patient_create_asked_for_by_the_patient_and_written_to_the_ehr() -> (
    None
):
    resource = events.patient_change(
        observer=OBSERVER,
        recorded=RECORDED,
        action="C",
        requestor_ref=PATIENT,
        patient_ref=PATIENT,
        target=events.identified("Consent", "urn:fhir-bridge:inbound-sms", "SM8a1c2e"),
        what="sms-opt-out",
    )
    AuditEvent(resource, strict=True)
    assert resource["meta"]["profile"] == [events.BALP + "PatientCreate"]
    assert _agent(resource, "AUT") == {
        "type": {"coding": [{"system": events.PARTICIPATION, "code": "AUT", "display": "author"}]},
        "who": {"reference": PATIENT},
        "requestor": True,
    }
    assert _agent(resource, "110152")["who"]["identifier"]["value"] == OBSERVER.ehr_base_url


def test_a_reply_from_an_unknown_number_is_a_plain_create_without_a_patient() -> None:
    resource = events.patient_change(
        observer=OBSERVER,
        recorded=RECORDED,
        action="C",
        requestor_ref=None,
        patient_ref=None,
        target=events.identified("Communication", "urn:fhir-bridge:inbound-sms", "SM77f0"),
        what="reply:unknown-sender",
    )
    AuditEvent(resource, strict=True)
    assert resource["meta"]["profile"] == [events.BALP + "Create"]
    assert [entity["role"]["code"] for entity in resource["entity"]] == ["4"]


def test_a_refused_launch_is_a_login_security_alert_naming_the_route_not_the_url() -> None:
    resource = events.request_refused(
        observer=OBSERVER,
        recorded=RECORDED,
        code="state-mismatch",
        status=400,
        route="GET /smart/callback",
        staff_ref=None,
        patient_ref=None,
        client=PANEL,
    )
    AuditEvent(resource, strict=True)
    assert (resource["type"]["code"], resource["subtype"][0]["code"]) == ("110113", "110122")
    assert (resource["action"], resource["outcome"], resource["outcomeDesc"]) == (
        "E",
        "4",
        "state-mismatch",
    )
    assert _agent(resource, "110153")["requestor"] is True
    assert "?" not in json.dumps(resource)


def test_a_refusal_inside_a_session_names_the_practitioner_and_patient() -> None:
    resource = events.request_refused(
        observer=OBSERVER,
        recorded=RECORDED,
        code="csrf-token-invalid",
        status=403,
        route="POST /smart/l/{launch}/messages/{message_id}/cancel",
        staff_ref=PRACTITIONER,
        patient_ref=PATIENT,
        client=PANEL,
    )
    summary = events.summarize(resource)
    assert summary == events.Summary(
        type_code="110113",
        subtype_code="110132",
        action="E",
        outcome="4",
        agent_ref=PRACTITIONER,
        patient_ref=PATIENT,
    )


def test_an_upstream_failure_while_launching_is_a_serious_failure() -> None:
    resource = events.request_refused(
        observer=OBSERVER,
        recorded=RECORDED,
        code="ehr-discovery-failed",
        status=502,
        route="GET /smart/launch",
        staff_ref=None,
        patient_ref=None,
        client=events.PanelClient(client_id="lakeside-staff-panel"),
    )
    assert resource["outcome"] == "8"
    assert "network" not in _agent(resource, "110153")
