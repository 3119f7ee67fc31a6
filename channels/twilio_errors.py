"""Translate Twilio REST responses into the channel contract's transient/permanent errors.

Twilio error bodies look like ``{"code": 21211, "message": "The 'To' number 5551234567 is
not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211",
"status": 400}``. The ``message`` often repeats the phone number, so only the numeric code
and HTTP status ever reach our exceptions and logs.
"""

from __future__ import annotations

import httpx

from channels.base import ChannelError, PermanentChannelError, TransientChannelError
from channels.retry import retry_after_seconds

UNSUBSCRIBED_CODES = frozenset({21610})
INVALID_ADDRESS_CODES = frozenset({21211, 21401, 21407, 21612, 21614})
TRANSIENT_CODES = frozenset({20429, 20500, 20503})


def permanent_reason(code: int | None) -> str:
    """Map a Twilio error code to the contract's permanent-failure reason."""
    if code in UNSUBSCRIBED_CODES:
        return "unsubscribed"
    if code in INVALID_ADDRESS_CODES:
        return "invalid-address"
    return "rejected"


def error_from_response(response: httpx.Response) -> ChannelError:
    """Build the error for a non-2xx Twilio response (429/5xx transient, else permanent)."""
    code = _twilio_code(response)
    code_text = str(code) if code is not None else f"http-{response.status_code}"
    detail = f"http {response.status_code}"
    if response.status_code == 429 or response.status_code >= 500 or code in TRANSIENT_CODES:
        return TransientChannelError(
            code_text,
            detail=detail,
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    return PermanentChannelError(code_text, reason=permanent_reason(code), detail=detail)


def _twilio_code(response: httpx.Response) -> int | None:
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.isdigit():
        return int(code)
    return None
