"""Twilio webhooks: delivery status callbacks and inbound SMS; plus the staff inbox.

Both webhooks are authenticated by ``X-Twilio-Signature`` over the full public URL (our
``PUBLIC_BASE_URL`` + path + query, as Twilio requested it) and the form parameters; a
missing or wrong signature gets 403 and changes nothing. They store what arrived (once per
MessageSid) before answering and leave the work to Celery tasks, so Twilio gets its answer
within milliseconds and a crash after the answer loses nothing.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader

from channels.twilio_signature import is_valid_signature
from fhir_bridge.inbound.callbacks import StatusCallback, accept_status_callback
from fhir_bridge.inbound.processing import accept_inbound
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction
from fhir_bridge.tasks import AfterCommit

log = logging.getLogger(__name__)
router = APIRouter()

MAX_FORM_BYTES = 64 * 1024
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
CALLBACK_ID_PARAMS = ("message_id", "bridge_message_id")


# The longest value we store for each field (its column; Twilio's own are far shorter).
# A signed request beyond these, or with a NUL byte anywhere, is answered 400 and stores
# nothing: Twilio never sends one, and the database would refuse it half-way.
FIELD_LIMITS = {
    "MessageSid": 128,
    "SmsSid": 128,
    "MessageStatus": 32,
    "ErrorCode": 16,
    "From": 64,
    "To": 64,
    "Body": 4096,
}
MESSAGE_ID = re.compile(r"[A-Za-z0-9-]{1,36}")

_SIGNATURE = APIKeyHeader(
    name="X-Twilio-Signature",
    scheme_name="twilioSignature",
    description="Twilio's HMAC-SHA1 over the public URL and the form parameters.",
    auto_error=False,
)


def _form_body(required: tuple[str, ...]) -> dict[str, Any]:
    """OpenAPI for a Twilio form post (the route parses the raw body to check the signature)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": list(required),
                        "properties": {
                            name: {"type": "string", "maxLength": limit}
                            for name, limit in FIELD_LIMITS.items()
                        },
                    }
                }
            },
        }
    }


def _well_formed(form: dict[str, str]) -> bool:
    """No NUL anywhere and every stored field within its column."""
    if any("\x00" in name or "\x00" in value for name, value in form.items()):
        return False
    return all(len(form.get(name) or "") <= limit for name, limit in FIELD_LIMITS.items())


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


@router.post(
    "/twilio/status",
    status_code=204,
    dependencies=[Security(_SIGNATURE)],
    openapi_extra={
        **_form_body(("MessageSid", "MessageStatus")),
        "parameters": [
            {"name": "message_id", "in": "query", "required": True, "schema": {"type": "string"}}
        ],
    },
)
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
    if not MESSAGE_ID.fullmatch(message_id) or not _well_formed(form):
        return Response(status_code=400)
    callback = StatusCallback(message_id, sid, status, form.get("ErrorCode") or None)
    outcome = await run_in_threadpool(_store_status, rt, callback)
    after = AfterCommit()
    if outcome:
        after.add("fhir_bridge.sync_communication", message_id)
    return Response(status_code=204, background=after.background())


def _store_status(rt: Runtime, callback: StatusCallback) -> bool:
    with transaction(rt.sessions) as session:
        return accept_status_callback(session, callback, rt.clock()).sync_requested


@router.post(
    "/twilio/inbound",
    dependencies=[Security(_SIGNATURE)],
    openapi_extra=_form_body(("MessageSid", "From")),
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}},
)
async def twilio_inbound(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    form = await _signed_form(request, rt)
    if form is None:
        return Response(status_code=403)
    sid = form.get("MessageSid") or form.get("SmsSid")
    sender = form.get("From")
    if not sid or not sender or not _well_formed(form):
        return Response(status_code=400)
    inbound_id = await run_in_threadpool(_store_inbound, rt, sid, sender, form)
    after = AfterCommit()
    if inbound_id is not None:
        after.add("fhir_bridge.process_inbound_sms", inbound_id)
    return Response(EMPTY_TWIML, media_type="application/xml", background=after.background())


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
