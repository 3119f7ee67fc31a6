"""Per-subscription credentials, derived from one master secret.

Each Subscription gets its own bearer token and HMAC key, computed as
HMAC-SHA256(master, purpose:subscription-id). Nothing secret is stored in the
database, and rotating the master secret revokes every subscription at once.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache


def subscription_token(master_secret: str, subscription_id: str) -> str:
    """The bearer token the EHR must send with notifications for this subscription."""
    return _derive(master_secret, "bearer", subscription_id)


def subscription_signing_key(master_secret: str, subscription_id: str) -> str:
    """The shared secret for Medplum-style ``X-Signature`` HMAC of the body."""
    return _derive(master_secret, "hmac", subscription_id)


@lru_cache(maxsize=4096)  # a clinic has a handful of Subscriptions; derived once each
def _derive(master_secret: str, purpose: str, subscription_id: str) -> str:
    message = f"{purpose}:{subscription_id}".encode("utf-8", "surrogatepass")
    return hmac.new(master_secret.encode(), message, hashlib.sha256).hexdigest()


def is_authentic(
    *,
    master_secret: str,
    subscription_id: str,
    authorization: str | None,
    signature: str | None,
    body: bytes,
) -> bool:
    """True when the bearer token or the body signature matches (constant-time).

    Any header value is only compared, as bytes: a non-ASCII or otherwise odd value is
    simply not a match, so every refusal looks the same whatever the subscription id.
    """
    if authorization:
        scheme, _, token = authorization.partition(" ")
        expected = subscription_token(master_secret, subscription_id)
        if scheme.lower() == "bearer" and hmac.compare_digest(
            _as_bytes(token.strip()), expected.encode()
        ):
            return True
    if signature:
        key = subscription_signing_key(master_secret, subscription_id).encode()
        expected_sig = hmac.new(key, body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(_as_bytes(signature.strip().lower()), expected_sig.encode()):
            return True
    return False


def _as_bytes(value: str) -> bytes:
    """Header text as bytes for comparison (``hmac.compare_digest`` refuses non-ASCII str)."""
    return value.encode("utf-8", "surrogatepass")
