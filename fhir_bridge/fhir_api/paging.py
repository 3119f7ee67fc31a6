"""Opaque, tamper-checked paging cursors for ``next`` links (keyset, not offset).

A cursor carries where the last page ended (sort key and sequence) and a digest of the
query it belongs to, signed with a key derived from the notification secret: a cursor
edited by hand, or reused with other parameters, is refused with a 400.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime

from fhir_bridge.fhir_api.repository import Position
from fhir_bridge.fhir_api.search import SearchError, SearchQuery

_LABEL = b"fhir-bridge read-only FHIR API paging cursor"


def _digest(query: SearchQuery) -> str:
    canonical = json.dumps(query.canonical, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def encode_cursor(key: bytes, query: SearchQuery, position: Position) -> str:
    payload = json.dumps(
        {
            "k": position.key.isoformat() if position.key else None,
            "s": position.seq,
            "q": _digest(query),
        },
        separators=(",", ":"),
    ).encode("utf-8")
    mac = hmac.new(key, _LABEL + payload, hashlib.sha256).digest()[:16]
    return _b64(payload) + "." + _b64(mac)


def decode_cursor(key: bytes, query: SearchQuery) -> Position | None:
    """The position a query's ``_cursor`` names (None without one); SearchError if forged."""
    if query.cursor is None:
        return None
    try:
        encoded, _, encoded_mac = query.cursor.partition(".")
        payload, mac = _unb64(encoded), _unb64(encoded_mac)
    except ValueError:
        raise SearchError("_cursor is not valid") from None
    expected = hmac.new(key, _LABEL + payload, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(mac, expected):
        raise SearchError("_cursor is not valid")
    data = json.loads(payload)
    if data.get("q") != _digest(query):
        raise SearchError("_cursor belongs to another search")
    moment = datetime.fromisoformat(data["k"]) if data.get("k") else None
    return Position(moment, int(data["s"]))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    if not text:
        raise ValueError("empty")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
