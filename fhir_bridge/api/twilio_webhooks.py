"""Twilio webhooks: delivery status callbacks and inbound SMS; plus the staff inbox.

Both webhooks are authenticated by ``X-Twilio-Signature`` over the full public URL (our
``PUBLIC_BASE_URL`` + path + query, as Twilio requested it) and the form parameters; a
missing or wrong signature gets 403 and changes nothing. They store what arrived (once per
MessageSid) before answering and leave the work to Celery tasks, so Twilio gets its answer
within milliseconds and a crash after the answer loses nothing.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from channels.twilio_signature import is_valid_signature
from fhir_bridge.inbound.callbacks import StatusCallback, accept_status_callback
from fhir_bridge.inbound.processing import accept_inbound
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction
from fhir_bridge.tasks import try_enqueue

log = logging.getLogger(__name__)
router = APIRouter()

MAX_FORM_BYTES = 64 * 1024
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
CALLBACK_ID_PARAMS = ("message_id", "bridge_message_id")


async def _signed_form(request: Request, rt: Runtime) -> dict[str, str] | None:
    """The form parameters if the request carries a valid Twilio signature, else ``None``."""
    token = rt.settings.twilio_auth_token
    signature = request.headers.get("x-twilio-signature")
    body = await request.body()
    if token is None or not signature or len(body) > MAX_FORM_BYTES:
        return None
    pairs = parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    query = request.url.query
    url = f"{rt.settings.public_base_url}{request.url.path}" + (f"?{query}" if query else "")
    if not is_valid_signature(token.get_secret_value(), url, pairs, signature):
        log.warning("twilio webhook with a bad signature", extra={"path": request.url.path})
        return None
    return dict(pairs)


@router.post("/twilio/status")
async def twilio_status(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    form = await _signed_form(request, rt)
    if form is None:
        return Response(status_code=403)
    message_id = next(
        (request.query_params[p] for p in CALLBACK_ID_PARAMS if request.query_params.get(p)), None
    )
    sid, status = form.get("MessageSid") or form.get("SmsSid"), form.get("MessageStatus")
    if not message_id or not sid or not status:
        return Response(status_code=400)
    callback = StatusCallback(message_id, sid, status, form.get("ErrorCode") or None)
    outcome = await run_in_threadpool(_store_status, rt, callback)
    if outcome:
        try_enqueue("fhir_bridge.sync_communication", message_id)
    return Response(status_code=204)


def _store_status(rt: Runtime, callback: StatusCallback) -> bool:
    with transaction(rt.sessions) as session:
        return accept_status_callback(session, callback, rt.clock()).sync_requested


@router.post("/twilio/inbound")
async def twilio_inbound(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    form = await _signed_form(request, rt)
    if form is None:
        return Response(status_code=403)
    sid = form.get("MessageSid") or form.get("SmsSid")
    sender = form.get("From")
    if not sid or not sender:
        return Response(status_code=400)
    inbound_id = await run_in_threadpool(_store_inbound, rt, sid, sender, form)
    if inbound_id is not None:
        try_enqueue("fhir_bridge.process_inbound_sms", inbound_id)
    return Response(EMPTY_TWIML, media_type="application/xml")


def _store_inbound(rt: Runtime, sid: str, sender: str, form: dict[str, str]) -> int | None:
    with transaction(rt.sessions) as session:
        row = accept_inbound(
            session,
            sid=sid,
            from_address=sender,
            to_address=form.get("To"),
            body=form.get("Body", ""),
            now=rt.clock(),
        )
        return row.id if row is not None else None
