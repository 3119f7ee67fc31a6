"""One-click email unsubscribe (RFC 8058): ``/unsubscribe/email/{token}``.

Every email we send names this URL in ``List-Unsubscribe``. The token is signed and names
only our message id (:mod:`fhir_bridge.optout`).

* ``POST`` (the mail client's one-click body ``List-Unsubscribe=One-Click``, or the button
  on our page) records an email opt-out for the address that message went to in the local
  ledger, commits, and then writes the email deny ``Consent`` to the EHR, ending the
  earlier Consent of ours it supersedes. Repeating it changes nothing.
* ``GET`` never unsubscribes (mail scanners prefetch links): it shows a page whose button
  POSTs.
* A forged, damaged or expired token, or one whose message was not an email, gets a 4xx
  page telling the patient to call the clinic; nothing is recorded.

Pages are in English and Spanish, name only the clinic, and never show the address.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from html import escape
from typing import Final
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from fhir_bridge.fhir.errors import EhrError
from fhir_bridge.inbound.ehr_updates import ConcurrentUpdateConflict
from fhir_bridge.inbound.resources import ConsentChange
from fhir_bridge.optout import (
    EMAIL_UNSUBSCRIBE_PATH,
    SOURCE_EMAIL_UNSUBSCRIBE,
    UnsubscribeTokenError,
    UnsubscribeTokenExpired,
    read_email_unsubscribe_token,
    record_in_ledger,
    write_consent,
)
from fhir_bridge.outreach import repository as outreach_repository
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction

log = logging.getLogger(__name__)
router = APIRouter()

MAX_BODY_BYTES: Final = 4096
MAX_TOKEN_CHARS: Final = 512
ONE_CLICK_FIELD: Final = "List-Unsubscribe"
ONE_CLICK_VALUE: Final = "One-Click"
IDENTIFIER_PREFIX: Final = "email-unsubscribe:"
_NO_STORE: Final = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@dataclass(frozen=True)
class _Clinic:
    name: str
    phone: str


@router.get(EMAIL_UNSUBSCRIBE_PATH + "/{token}", response_class=HTMLResponse)
async def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
    """The confirmation page; a GET records nothing."""
    rt: Runtime = request.app.state.runtime
    clinic = _clinic(rt)
    message_id = _message_id(rt, token)
    if isinstance(message_id, HTMLResponse):
        return message_id
    if not await run_in_threadpool(_is_email, rt, message_id):
        return _invalid_page(clinic)
    return _page(
        200,
        "Unsubscribe from emails / Darse de baja",
        f"<p>Stop emails from {escape(clinic.name)}?</p>"
        f"<p lang='es'>¿Dejar de recibir correos de {escape(clinic.name)}?</p>"
        '<form method="post">'
        f'<input type="hidden" name="{ONE_CLICK_FIELD}" value="{ONE_CLICK_VALUE}">'
        "<button type='submit'>Unsubscribe / Darse de baja</button></form>",
    )


@router.post(EMAIL_UNSUBSCRIBE_PATH + "/{token}", response_class=HTMLResponse)
async def unsubscribe(request: Request, token: str) -> HTMLResponse:
    """Record the email opt-out (idempotent) and write the deny Consent to the EHR."""
    rt: Runtime = request.app.state.runtime
    clinic = _clinic(rt)
    message_id = _message_id(rt, token)
    if isinstance(message_id, HTMLResponse):
        return message_id
    body = await request.body()
    if len(body) > MAX_BODY_BYTES or not _is_one_click(request, body):
        return _page(
            400,
            "Unsubscribe / Darse de baja",
            "<p>Please use the button on the unsubscribe page.</p>"
            "<p lang='es'>Use el botón de la página para darse de baja.</p>",
        )
    change = await run_in_threadpool(_record, rt, message_id)
    if change is None:
        return _invalid_page(clinic)
    await run_in_threadpool(_write_to_ehr, rt, change, message_id)
    return _page(
        200,
        "Unsubscribed / Baja confirmada",
        f"<p>You will no longer get emails from {escape(clinic.name)}. "
        f"Questions: call {escape(clinic.phone)}.</p>"
        f"<p lang='es'>Ya no recibirá correos de {escape(clinic.name)}. "
        f"Si tiene preguntas, llame al {escape(clinic.phone)}.</p>",
    )


def _message_id(rt: Runtime, token: str) -> str | HTMLResponse:
    """The message id a genuine token names, or the 4xx page to answer with."""
    clinic = _clinic(rt)
    secret = rt.settings.notification_secret
    if secret is None or not secret.get_secret_value() or len(token) > MAX_TOKEN_CHARS:
        return _invalid_page(clinic)
    try:
        return read_email_unsubscribe_token(
            secret.get_secret_value(),
            token,
            max_age=timedelta(days=rt.settings.email_unsubscribe_days),
            clock=rt.clock,
        )
    except UnsubscribeTokenExpired:
        log.info("expired unsubscribe link", extra={"outcome": "expired"})
        return _page(
            410,
            "Link expired / Enlace vencido",
            f"<p>This unsubscribe link has expired. To stop emails, call {escape(clinic.name)} "
            f"at {escape(clinic.phone)}.</p>"
            f"<p lang='es'>Este enlace ha vencido. Para dejar de recibir correos, llame a "
            f"{escape(clinic.name)} al {escape(clinic.phone)}.</p>",
        )
    except UnsubscribeTokenError:
        log.warning("unsubscribe link with a bad signature", extra={"outcome": "invalid"})
        return _invalid_page(clinic)


def _is_one_click(request: Request, body: bytes) -> bool:
    """RFC 8058's body, form-encoded (or, rarely, multipart with the same field)."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        return f'name="{ONE_CLICK_FIELD}"'.encode() in body and ONE_CLICK_VALUE.encode() in body
    pairs = parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return (ONE_CLICK_FIELD, ONE_CLICK_VALUE) in pairs


def _is_email(rt: Runtime, message_id: str) -> bool:
    with transaction(rt.sessions) as session:
        row = outreach_repository.get(session, message_id)
        return row is not None and row.channel == "email" and bool(row.address)


def _record(rt: Runtime, message_id: str) -> ConsentChange | None:
    """The opt-out in the local ledger (committed here); ``None`` for a non-email message."""
    with transaction(rt.sessions) as session:
        row = outreach_repository.get(session, message_id)
        if row is None or row.channel != "email" or not row.address:
            log.warning("unsubscribe link for no email", extra={"message_id": message_id})
            return None
        change = ConsentChange(
            patient_ref=row.patient_ref,
            channel="email",
            address=row.address,
            permit=False,
            at=rt.clock(),
            identifier_system=rt.settings.inbound_identifier_system,
            identifier_value=IDENTIFIER_PREFIX + message_id,
        )
        added = record_in_ledger(session, change, source=SOURCE_EMAIL_UNSUBSCRIBE)
    log.info("email unsubscribe", extra={"message_id": message_id, "recorded": added})
    return change


def _write_to_ehr(rt: Runtime, change: ConsentChange, message_id: str) -> None:
    """The Consent, after the ledger commit and outside any transaction. The opt-out is in
    force locally either way; on an EHR failure the patient's retry (or staff) writes it."""
    try:
        write_consent(rt.ehr, change, attempts=rt.settings.ehr_update_attempts)
    except (EhrError, ConcurrentUpdateConflict) as exc:
        log.warning(
            "unsubscribe consent not written to the EHR",
            extra={"message_id": message_id, "error": type(exc).__name__},
        )


def _clinic(rt: Runtime) -> _Clinic:
    organization = rt.rules.organization
    return _Clinic(name=organization.clinic_name, phone=organization.clinic_phone)


def _invalid_page(clinic: _Clinic) -> HTMLResponse:
    return _page(
        404,
        "Link not valid / Enlace no válido",
        f"<p>This unsubscribe link is not valid. To stop emails, call {escape(clinic.name)} "
        f"at {escape(clinic.phone)}.</p>"
        f"<p lang='es'>Este enlace no es válido. Para dejar de recibir correos, llame a "
        f"{escape(clinic.name)} al {escape(clinic.phone)}.</p>",
    )


def _page(status: int, title: str, body: str) -> HTMLResponse:
    document = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<meta name='robots' content='noindex'>"
        f"<title>{escape(title)}</title></head><body>{body}</body></html>"
    )
    return HTMLResponse(document, status_code=status, headers=_NO_STORE)
