"""``fhir-bridge subscriptions secrets``: what an EHR admin types in by hand.

For each Subscription we hold: the notification endpoint, the ``Authorization`` header
the EHR must send, and the HMAC key for Medplum-style ``X-Signature`` (the value of
Medplum's ``subscription-secret`` extension). All are derived from
``FHIR_BRIDGE_NOTIFICATION_SECRET`` (``fhir_bridge.ingest.auth``), so nothing secret is
stored. They are secrets: printed to a terminal only (``--force`` for a pipe or file),
always with a warning on stderr, and never logged.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from fhir_bridge.ingest.auth import subscription_signing_key, subscription_token
from fhir_bridge.settings import get_settings

# An extension URL, not a secret.
MEDPLUM_SECRET_EXTENSION = "https://www.medplum.com/fhir/StructureDefinition/subscription-secret"  # noqa: S105
WARNING = (
    "fhir-bridge: the values below are secrets: anyone who has them can post notifications "
    "to fhir-bridge. Type them into the EHR; keep them out of tickets, chat and logs."
)


def register_secrets(actions: Any) -> None:
    """Add ``secrets`` to the ``subscriptions`` sub-commands (``actions`` from add_subparsers)."""
    cmd = actions.add_parser(
        "secrets",
        help="print each Subscription's endpoint, bearer header and X-Signature key",
        description=(
            "Print what an EHR admin configures by hand for each Subscription fhir-bridge "
            "holds: the endpoint URL, the 'Authorization: Bearer ...' header and the HMAC "
            "key for Medplum-style X-Signature. Run 'fhir-bridge subscriptions create' first."
        ),
    )
    cmd.add_argument(
        "--force",
        action="store_true",
        help="print even when standard output is not a terminal (a pipe or a file)",
    )
    cmd.add_argument("--json", action="store_true", help="one JSON list instead of text")
    cmd.set_defaults(func=_secrets)


def _secrets(args: argparse.Namespace) -> int:
    if not sys.stdout.isatty() and not args.force:
        print(
            "fhir-bridge: not printing Subscription secrets to a pipe or file; "
            "run it in a terminal, or add --force if you mean to",
            file=sys.stderr,
        )
        return 2
    master_secret = get_settings().require_notification_secret()
    rows = _subscriptions()
    if not rows:
        print(
            "fhir-bridge: no Subscriptions recorded yet; run 'fhir-bridge subscriptions create'",
            file=sys.stderr,
        )
        return 1
    print(WARNING, file=sys.stderr)
    described = [describe(row, master_secret) for row in rows]
    if args.json:
        print(json.dumps(described, indent=2))
    else:
        print("\n\n".join(_as_text(item) for item in described))
    return 0


def _subscriptions() -> list[dict[str, Any]]:
    from fhir_bridge.runtime import get_runtime
    from fhir_bridge.store.db import transaction
    from fhir_bridge.sync.repository import list_subscriptions

    rt = get_runtime()
    with transaction(rt.sessions) as session:
        return [
            {
                "id": row.id,
                "resource_type": row.resource_type,
                "criteria": row.criteria,
                "remote_id": row.remote_id,
                "endpoint": row.endpoint,
            }
            for row in list_subscriptions(session)
        ]


def describe(row: dict[str, Any], master_secret: str) -> dict[str, Any]:
    """One Subscription's hand-configuration values (``row`` as from ``_subscriptions``)."""
    token = subscription_token(master_secret, row["id"])
    return {
        "resource_type": row["resource_type"],
        "criteria": row["criteria"],
        "remote_id": row["remote_id"],
        "endpoint": row["endpoint"],
        "header": f"Authorization: Bearer {token}",
        "x_signature_key": subscription_signing_key(master_secret, row["id"]),
        "medplum_extension": {
            "url": MEDPLUM_SECRET_EXTENSION,
            "valueString": subscription_signing_key(master_secret, row["id"]),
        },
    }


def _as_text(item: dict[str, Any]) -> str:
    on_ehr = f"Subscription/{item['remote_id']}" if item["remote_id"] else "not on the EHR yet"
    return "\n".join(
        [
            f"{item['resource_type']}  ({on_ehr}; criteria {item['criteria']})",
            f"  endpoint:         {item['endpoint']}",
            f"  header:           {item['header']}",
            f"  X-Signature key:  {item['x_signature_key']}",
            f"    (Medplum: extension {MEDPLUM_SECRET_EXTENSION} with this valueString)",
        ]
    )
