"""Signed Twilio webhooks whose fields would not fit the store get a 400 and store nothing."""

from __future__ import annotations

from typing import Any

import pytest

from channels.twilio_signature import compute_signature
from tests.fuzz.conftest import PUBLIC_BASE, TWILIO_AUTH_TOKEN, FuzzedApi

SID = "SM8f4c2a1b9d7e6f5a4b3c2d1e0f9a8b7c"
PATIENT_PHONE = "+16175550123"


def _post_signed(api: FuzzedApi, path: str, form: dict[str, str]) -> Any:
    signature = compute_signature(TWILIO_AUTH_TOKEN, PUBLIC_BASE + path, form)
    return api.client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def _inbound(**changes: str) -> dict[str, str]:
    form = {
        "MessageSid": SID,
        "SmsSid": SID,
        "AccountSid": "AC3f1b2c4d5e6f708192a3b4c5d6e7f801",
        "From": PATIENT_PHONE,
        "To": "+16175550100",
        "Body": "Sí, confirmo mi cita con la Dra. Núñez",
    }
    form.update(changes)
    return form


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"MessageSid": "SM" + "a" * 200}, id="long-sid"),
        pytest.param({"From": "+1" + "6" * 80}, id="long-from"),
        pytest.param({"Body": "Sí\u0000 confirmo"}, id="nul-body"),
        pytest.param({"To": "+1617555\u00000100"}, id="nul-to"),
    ],
)
def test_an_inbound_sms_with_a_field_the_store_cannot_hold_is_refused(
    api: FuzzedApi, changes: dict[str, str]
) -> None:
    before = api.state()

    response = _post_signed(api, "/twilio/inbound", _inbound(**changes))

    assert response.status_code == 400
    assert api.state() == before


def test_a_well_formed_inbound_sms_is_still_stored(api: FuzzedApi) -> None:
    before = api.state()

    response = _post_signed(api, "/twilio/inbound", _inbound())

    assert response.status_code == 200
    assert api.state() != before


@pytest.mark.parametrize(
    ("query", "changes"),
    [
        pytest.param("message_id=" + "7" * 80, {}, id="long-message-id"),
        pytest.param("message_id=a%00b", {}, id="nul-message-id"),
        pytest.param("message_id=0b6a", {"ErrorCode": "3" * 40}, id="long-error-code"),
        pytest.param("message_id=0b6a", {"MessageStatus": "delivered\u0000"}, id="nul-status"),
    ],
)
def test_a_status_callback_with_a_field_the_store_cannot_hold_is_refused(
    api: FuzzedApi, query: str, changes: dict[str, str]
) -> None:
    form = {"MessageSid": SID, "MessageStatus": "delivered", "To": PATIENT_PHONE, **changes}
    before = api.state()

    response = _post_signed(api, f"/twilio/status?{query}", form)

    assert response.status_code == 400
    assert api.state() == before
