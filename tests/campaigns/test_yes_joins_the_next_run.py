"""Issue #14 acceptance: a double opt-in YES adds a patient on the next run of a health-tip
campaign, end to end against the development EHR.

Rosa Martínez (Spanish, es-MX) is in the "adults" audience of a weekly health-tip campaign
but has never said anything about health tips. The first run withholds her tip; she is
invited (``fhir-bridge campaigns invite``'s service), the invitation is delivered, she
answers "SÍ" through the signed Twilio webhook and the inbound job, which writes a health-tips
Consent to the EHR; the campaign's next run sends her the tip, once, in Spanish.
"""

from __future__ import annotations

from typing import Any

from fhir_bridge.campaigns import service
from fhir_bridge.store.models import PlannedMessage
from tests.campaigns.test_campaigns_end_to_end import DRAFTER, approved, messages, run_and_deliver
from tests.optin.conftest import ROSA, ROSA_PHONE, Clinic, clinic, ehr_server  # noqa: F401  (fixtures)

SI_SID = "SM5f0c1e2d3b4a59687f8e9d0c1b2a3948"
ES_TIP = (
    "Consejo de salud: tome agua durante el dia, mas cuando hace calor. "
    "Riverside Health (555) 010-0100. Responda BAJA para no recibir SMS."
)


def _weekly_tips(world: Clinic) -> str:
    """A health-tip campaign for the adults audience, drafted and approved, every 7 days."""
    return approved(
        world.runtime,
        service.Draft(
            name="Consejos de invierno",
            kind="health-tips",
            audience=service.audience_of(world.runtime, "adults"),
            by=DRAFTER,
            cadence_days=7,
        ),
    )


def _rosa_says_si(world: Clinic) -> None:
    """Rosa is invited, the invitation reaches her, and three hours later she texts SÍ."""
    world.invite(ROSA)
    world.deliver_invitations()
    world.clock.advance(hours=3)
    assert world.text("SÍ", sid=SI_SID, sender=ROSA_PHONE) == "health-tips-opt-in"


def _next_run(world: Clinic, campaign_id: str) -> service.RunResult:
    """The campaign's next run, when its cadence says it is due."""
    world.clock.now = service.status(world.runtime, campaign_id)["next_run_at"]
    return run_and_deliver(world.runtime, campaign_id)


def _rosas(world: Clinic) -> list[PlannedMessage]:
    """Rosa's campaign messages, oldest run first."""
    rows = [row for row in messages(world.runtime) if row.patient_ref == ROSA]
    return sorted(rows, key=lambda row: row.created_at)


def _communication_of(world: Clinic, row: PlannedMessage) -> dict[str, Any]:
    return world.ehr.read("Communication", str(row.communication_id))


def test_before_rosa_opts_in_the_run_withholds_her_tip_with_a_not_done_communication(
    clinic: Clinic,  # noqa: F811  (tests.optin's fixture, imported above)
) -> None:
    campaign_id = _weekly_tips(clinic)

    run_and_deliver(clinic.runtime, campaign_id)

    (withheld,) = _rosas(clinic)
    assert (withheld.status, withheld.reason, withheld.text) == (
        "withheld",
        "opt-in-required",
        None,
    )
    communication = _communication_of(clinic, withheld)
    assert (communication["status"], communication["subject"]) == ("not-done", {"reference": ROSA})
    assert clinic.sms.texts_to(ROSA_PHONE) == []


def test_after_si_to_the_invitation_the_next_run_texts_rosa_the_tip_once_in_spanish(
    clinic: Clinic,  # noqa: F811  (tests.optin's fixture, imported above)
) -> None:
    campaign_id = _weekly_tips(clinic)
    run_and_deliver(clinic.runtime, campaign_id)
    _rosa_says_si(clinic)
    assert len(clinic.health_tips_consents(ROSA)) == 1  # in the EHR before the next run

    second = _next_run(clinic, campaign_id)

    assert second.run == 2
    assert [(row.status, row.language) for row in _rosas(clinic)] == [
        ("withheld", ""),  # run 1 stays withheld: joining does not replay a missed tip
        ("sent", "es"),
    ]
    invitation, joined, tip = clinic.sms.texts_to(ROSA_PHONE)
    assert invitation.startswith("Riverside Health: responda SI para recibir consejos")
    assert joined.startswith("Se inscribio en consejos de salud de Riverside Health")
    assert tip == ES_TIP


def test_the_tip_of_the_next_run_is_written_back_citing_the_ehr_consent(
    clinic: Clinic,  # noqa: F811
) -> None:
    campaign_id = _weekly_tips(clinic)
    run_and_deliver(clinic.runtime, campaign_id)
    _rosa_says_si(clinic)
    (consent,) = clinic.health_tips_consents(ROSA)

    _next_run(clinic, campaign_id)

    sent = next(row for row in _rosas(clinic) if row.status == "sent")
    communication = _communication_of(clinic, sent)
    assert communication["status"] == "in-progress"  # sent; delivery not yet reported
    assert communication["recipient"] == [{"reference": ROSA}]
    assert communication["payload"] == [{"contentString": ES_TIP}]
    assert {"system": "urn:fhir-bridge:outreach-purpose", "code": "health-tips"} in [
        coding for category in communication["category"] for coding in category["coding"]
    ]
    assert f"Consent/{consent['id']}" in communication["note"][0]["text"]
