"""Twilio webhook signatures (``X-Twilio-Signature``).

Status callbacks and inbound SMS arrive on a public URL; the signature is how we know Twilio
sent them and that nobody altered the parameters (for example flipping a status to
"delivered" or forging a STOP). Scheme, per Twilio's "Secure webhooks" guide: take the full
URL Twilio requested (including the query string), append every POST parameter sorted by
name as name+value with no separators (repeated names: values sorted), HMAC-SHA1 the result
with the account auth token, base64-encode.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

Params = Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]]

_DEFAULT_PORTS = {"https": 443, "http": 80}


def compute_signature(auth_token: str, url: str, params: Params) -> str:
    """Return the base64 HMAC-SHA1 signature Twilio would send for this request."""
    payload = url + "".join(name + value for name, value in _sorted_pairs(params))
    digest = hmac.new(auth_token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(digest.digest()).decode("ascii")


def is_valid_signature(auth_token: str, url: str, params: Params, signature: str) -> bool:
    """True if ``signature`` matches, compared in constant time.

    Like Twilio's SDKs, the URL is also tried with the default port added and removed,
    because TLS-terminating proxies often change whether ``:443`` appears in the URL.
    """
    pairs = list(_sorted_pairs(params))
    expected_signature = signature.encode("utf-8")
    matched = False
    for candidate in _url_variants(url):
        computed = compute_signature(auth_token, candidate, pairs).encode("ascii")
        matched |= hmac.compare_digest(computed, expected_signature)
    return matched


def _sorted_pairs(params: Params) -> list[tuple[str, str]]:
    if isinstance(params, Mapping):
        pairs: list[tuple[str, str]] = []
        for name, value in params.items():
            if isinstance(value, str):
                pairs.append((name, value))
            else:
                pairs.extend((name, item) for item in value)
    else:
        pairs = list(params)
    return sorted(pairs)


def _url_variants(url: str) -> list[str]:
    parts = urlsplit(url)
    default_port = _DEFAULT_PORTS.get(parts.scheme)
    if default_port is None or parts.hostname is None:
        return [url]
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    without_port = urlunsplit(parts._replace(netloc=prefix + host))
    with_port = urlunsplit(parts._replace(netloc=f"{prefix}{host}:{parts.port or default_port}"))
    if parts.port not in (None, default_port):
        return [url, without_port]
    return [url, without_port, with_port]
