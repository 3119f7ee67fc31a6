"""The one-click unsubscribe link every email carries (RFC 8058): POST records an email
opt-out in the ledger and writes a deny Consent to the EHR; GET only shows a button; a
forged or expired link is a 4xx page and records nothing. Against the fake EHR process."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from channels.base import OutboundMessage
from channels.smtp import SmtpEmailAdapter
from fhir_bridge.optout import email_unsubscribe_links, email_unsubscribe_token
from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import PlannedMessage
from tests.inbound.conftest import NOW, PATIENT_REF, PUBLIC_BASE
from tests.inbound.optout_world import INBOUND_SYSTEM, OptOutWorld, open_world
from tests.support.smtp import SmtpServer

EMAIL = "camila.lopez@example.org"
MESSAGE_ID = "5b0e6c1a-8f2d-4b7e-9c3a-2d1f0e9b8a76"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture(scope="module")
def ehr_server() -> Iterator[EhrServer]:
    with EhrServer() as server:
        yield server


@pytest.fixture
def world(
    ehr_server: EhrServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OptOutWorld]:
    ehr_server.reset()
    for opened in open_world(ehr_server, tmp_path, monkeypatch):
        _emailed(opened, MESSAGE_ID, channel="email", address=EMAIL)
        yield opened


def _emailed(world: OptOutWorld, message_id: str, *, channel: str, address: str) -> None:
    """A reminder we already sent (as the delivery path leaves the row)."""
    with transaction(world.runtime.sessions) as session:
        session.add(
            PlannedMessage(
                id=message_id,
                key=f"appointment-reminder|Appointment/eWLhfjXHp4RUczv2ny7HWkQ3|{message_id}",
                rule="appointment-reminder",
                purpose="appointment-reminder",
                patient_ref=PATIENT_REF,
                about=["Appointment/eWLhfjXHp4RUczv2ny7HWkQ3"],
                send_at=NOW - timedelta(days=1),
                status="sent",
                template="appointment-reminder",
                language="es",
                variables={},
                trace={},
                channel=channel,
                address=address,
                subject_line="Recordatorio de cita de Riverside Health",
                text="Hola Camila, recordatorio: su cita es el jueves 3 de diciembre.",
                provider="smtp",
                provider_message_id=f"<{message_id}@fhir-bridge>",
                sent_at=NOW - timedelta(days=1),
                communication_status="written",
                communication_id="comm-7001",
            )
        )


def _path(world: OptOutWorld, message_id: str = MESSAGE_ID) -> str:
    links = email_unsubscribe_links(world.runtime.settings, message_id, world.clock)
    assert links is not None
    return links.url.removeprefix(PUBLIC_BASE)


def _email_consents(world: OptOutWorld) -> list[dict[str, Any]]:
    return world.ours("email")


def test_the_link_is_under_the_public_base_and_names_no_patient_or_address(
    world: OptOutWorld,
) -> None:
    links = email_unsubscribe_links(world.runtime.settings, MESSAGE_ID, world.clock)

    assert links is not None and links.mailto is None
    assert links.url.startswith(f"{PUBLIC_BASE}/unsubscribe/email/")
    assert EMAIL not in links.url and "camila" not in links.url.lower()
    assert PATIENT_REF.partition("/")[2] not in links.url


def test_one_click_post_records_the_opt_out_and_writes_a_deny_consent(world: OptOutWorld) -> None:
    response = world.client.post(_path(world), data=ONE_CLICK)

    assert response.status_code == 200
    assert world.ledger() == [("email", EMAIL, "opt-out", "email-unsubscribe")]
    (consent,) = _email_consents(world)
    assert (consent["status"], consent["provision"]["type"]) == ("active", "deny")
    assert consent["patient"] == {"reference": PATIENT_REF}
    assert consent["provision"]["extension"][0]["valueString"] == "***@example.org"
    assert consent["identifier"] == [
        {"system": INBOUND_SYSTEM, "value": f"email-unsubscribe:{MESSAGE_ID}"}
    ]


def test_the_confirmation_page_names_the_clinic_but_not_the_address(world: OptOutWorld) -> None:
    response = world.client.post(_path(world), data=ONE_CLICK)

    assert EMAIL not in response.text
    assert "Ya no recibirá correos" in response.text


def test_a_repeated_click_is_idempotent(world: OptOutWorld) -> None:
    path = _path(world)
    world.client.post(path, data=ONE_CLICK)
    world.clock.advance(minutes=10)
    again = world.client.post(path, data=ONE_CLICK)

    assert again.status_code == 200
    assert len(world.ledger()) == 1
    assert [c["status"] for c in _email_consents(world)] == ["active"]


def test_get_only_shows_a_button_that_posts(world: OptOutWorld) -> None:
    response = world.client.get(_path(world))

    assert response.status_code == 200
    assert '<form method="post">' in response.text
    assert 'name="List-Unsubscribe" value="One-Click"' in response.text
    assert world.ledger() == []
    assert _email_consents(world) == []


def test_a_forged_token_is_refused_and_records_nothing(world: OptOutWorld) -> None:
    forged = email_unsubscribe_token("not-our-secret", MESSAGE_ID, world.clock)

    response = world.client.post(f"/unsubscribe/email/{forged}", data=ONE_CLICK)

    assert response.status_code == 404
    assert "To stop emails, call Riverside Health at (555) 010-0100." in response.text
    assert world.ledger() == []
    assert _email_consents(world) == []


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("x", id="garbage"),
        pytest.param("ImFiYyI.aS8Xqw.", id="no-signature"),
        pytest.param("A" * 600, id="too-long"),
    ],
)
def test_a_damaged_token_is_a_4xx_page_never_a_5xx(world: OptOutWorld, token: str) -> None:
    assert world.client.post(f"/unsubscribe/email/{token}", data=ONE_CLICK).status_code == 404
    assert world.client.get(f"/unsubscribe/email/{token}").status_code == 404
    assert world.ledger() == []


def test_an_expired_link_is_gone_and_records_nothing(world: OptOutWorld) -> None:
    path = _path(world)
    world.clock.advance(days=366)

    response = world.client.post(path, data=ONE_CLICK)

    assert response.status_code == 410
    assert world.ledger() == []


def test_a_token_for_an_sms_message_unsubscribes_nothing(world: OptOutWorld) -> None:
    _emailed(world, "a3c9e2f4-1b6d-4e8a-9f0c-7d5b3a1e2c4f", channel="sms", address="+16175550123")

    response = world.client.post(
        _path(world, "a3c9e2f4-1b6d-4e8a-9f0c-7d5b3a1e2c4f"), data=ONE_CLICK
    )

    assert response.status_code == 404
    assert world.ledger() == []


def test_a_post_without_the_one_click_body_changes_nothing(world: OptOutWorld) -> None:
    response = world.client.post(_path(world), data={"confirm": "yes"})

    assert response.status_code == 400
    assert world.ledger() == []


def test_unsubscribing_ends_our_earlier_email_opt_in(world: OptOutWorld) -> None:
    earlier = world.ehr.create(
        {
            "resourceType": "Consent",
            "identifier": [{"system": INBOUND_SYSTEM, "value": "email-optin:portal-8841"}],
            "status": "active",
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "patient-privacy",
                    }
                ]
            },
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": PATIENT_REF},
            "dateTime": "2026-10-15T09:12:00Z",
            "policyRule": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
                ]
            },
            "provision": {
                "type": "permit",
                "period": {"start": "2026-10-15T09:12:00Z"},
                "action": [
                    {
                        "coding": [
                            {
                                "system": "https://fhir-bridge.org/fhir/CodeSystem/outreach-channel",
                                "code": "email",
                            }
                        ]
                    }
                ],
                "extension": [
                    {
                        "url": "https://fhir-bridge.org/fhir/StructureDefinition/contact-hint",
                        "valueString": "***@example.org",
                    }
                ],
            },
        }
    )

    world.client.post(_path(world), data=ONE_CLICK)

    ended = world.ehr.read("Consent", earlier["id"])
    assert ended["status"] == "inactive"
    assert ended["provision"]["period"]["end"] == "2026-12-01T14:00:00Z"
    assert [c["provision"]["type"] for c in _email_consents(world) if c["status"] == "active"] == [
        "deny"
    ]


def test_the_link_in_a_real_sent_email_unsubscribes(world: OptOutWorld) -> None:
    links = email_unsubscribe_links(world.runtime.settings, MESSAGE_ID, world.clock)
    with SmtpServer() as server:
        SmtpEmailAdapter(
            host=server.host,
            port=server.port,
            from_address="Riverside Health <no-reply@riverside-clinic.example.org>",
            security="none",
            timeout=5.0,
        ).send(
            OutboundMessage(
                message_id=MESSAGE_ID,
                channel="email",
                to=EMAIL,
                subject="Recordatorio de cita de Riverside Health",
                text="Hola Camila, recordatorio: su cita es el jueves 3 de diciembre.",
                list_unsubscribe=links,
            )
        )
    received = server.messages[0]
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    match = re.fullmatch(r"<(https?://[^>]+)>", str(received["List-Unsubscribe"]))
    assert match is not None

    response = world.client.post(
        match.group(1).removeprefix(PUBLIC_BASE),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 200
    assert world.ledger() == [("email", EMAIL, "opt-out", "email-unsubscribe")]
