"""``fhir-bridge subscriptions …``: create, list, status, secrets and topics install.

``secrets``: what an EHR admin types in by hand.

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

from fhir_bridge.fhir.errors import EhrAuthError, EhrError, EhrNotFound, EhrUnavailable
from fhir_bridge.ingest.auth import subscription_signing_key, subscription_token
from fhir_bridge.settings import SUBSCRIBED_TYPES, UserError, get_settings

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


# --------------------------------------------------------------------------- create/list/status


def _say(line: str) -> None:
    print(f"fhir-bridge: {line}", file=sys.stderr)


def create_command() -> int:
    """``subscriptions create``: non-zero when a type has no fitting topic or the EHR refuses
    or errors a Subscription (one line per type on stderr); the rows as JSON on stdout."""
    from fhir_bridge import jobs
    from fhir_bridge.runtime import get_runtime
    from fhir_bridge.sync.subscriptions import FAILED_STATUSES, TopicsRefused, ensure_subscriptions

    rt = get_runtime()
    try:
        rows = ensure_subscriptions(
            rt.sessions, rt.ehr, jobs.subscription_plan(rt), SUBSCRIBED_TYPES, rt.clock()
        )
    except TopicsRefused as refused:
        for line in refused.lines:
            _say(line)
        return 1
    listing = [describe_row(row) for row in rows]
    print(json.dumps(listing, indent=2))
    failed = [row for row in listing if row["status"] in FAILED_STATUSES]
    for row in failed:
        what = "rejected" if row["status"] == "rejected" else f"set to {row['status']}"
        reason = row["last_error"] or "no reason given"
        _say(f"{row['resource_type']}: the EHR {what} the Subscription ({reason})")
    return 1 if failed else 0


def list_command() -> int:
    """``subscriptions list``: our rows, each with what the EHR says of it now (``remote``)."""
    from fhir_bridge.runtime import build_ehr_client, get_runtime
    from fhir_bridge.store.db import transaction
    from fhir_bridge.sync.repository import list_subscriptions

    rt = get_runtime()
    with transaction(rt.sessions) as session:
        listing = [describe_row(row) for row in list_subscriptions(session)]
    if not listing:
        print("[]")
        return 0
    unreachable: str | None = None
    ehr = None
    try:
        # One quick try per read: a listing should not wait out the EHR client's retries.
        ehr = build_ehr_client(rt.settings.model_copy(update={"ehr_max_attempts": 1}))
    except (UserError, EhrError) as exc:
        unreachable = f"EHR not usable: {exc}"
    for row in listing:
        row["remote"] = _remote_state(ehr, row, unreachable)
        if row["remote"].get("unreachable"):
            unreachable = str(row["remote"]["unreachable"])
    if ehr is not None:
        ehr.close()
    print(json.dumps(listing, indent=2))
    return 0


def _remote_state(ehr: Any, row: dict[str, Any], unreachable: str | None) -> dict[str, Any]:
    if not row["remote_id"]:
        return {"status": None, "error": row["last_error"] or "not on the EHR"}
    if unreachable is not None or ehr is None:
        return {"unreachable": unreachable or "EHR not configured"}
    try:
        remote = ehr.read("Subscription", row["remote_id"])
    except EhrNotFound:
        return {"status": None, "error": "not on the EHR (deleted?)"}
    except (EhrUnavailable, EhrAuthError) as exc:
        return {"unreachable": f"the EHR could not be reached ({exc})"}
    except EhrError as exc:
        return {"unreachable": f"the EHR answered an error ({exc})"}
    error = remote.get("error")
    return {"status": remote.get("status"), "error": str(error)[:500] if error else None}


def status_command() -> int:
    """``subscriptions status``: check each now; non-zero when the EHR rejected, errored or
    lost one (the check re-requests it; run again to see it recovered)."""
    from fhir_bridge import jobs
    from fhir_bridge.runtime import get_runtime
    from fhir_bridge.store.db import transaction
    from fhir_bridge.sync.repository import list_subscriptions

    rt = get_runtime()
    results = jobs.check_subscriptions(rt)
    print(json.dumps(results, indent=2))
    with transaction(rt.sessions) as session:
        due = {row.resource_type: describe_row(row) for row in list_subscriptions(session)}
    bad = {kind: result for kind, result in results.items() if result in BAD_CHECKS}
    for resource_type, result in bad.items():
        next_at = (due.get(resource_type) or {}).get("next_rerequest_at")
        _say(f"{resource_type}: {BAD_CHECKS[result]}".replace("{next}", str(next_at)))
    return 1 if bad else 0


BAD_CHECKS = {
    "missing": "the Subscription is not on the EHR; run `fhir-bridge subscriptions create`",
    "rejected": "the EHR refused to reactivate the Subscription (see `subscriptions list`)",
    "reactivated": "the EHR had set the Subscription to error; it was re-requested and "
    "caught up (see `subscriptions list` for the EHR's reason); if it fails again, the next "
    "re-request waits until {next}",
    "backing-off": "the EHR keeps the Subscription in error; the next re-request is due at "
    "{next} (see `subscriptions list` for the EHR's reason)",
}


def describe_row(row: Any) -> dict[str, Any]:
    """One of our Subscription rows as plain JSON values (``next_rerequest_at``: when one the
    EHR keeps in error will be re-requested again; null when at the next check)."""
    from fhir_bridge.sync.subscriptions import next_rerequest_at

    fields = (
        "id",
        "resource_type",
        "kind",
        "payload",
        "criteria",
        "remote_id",
        "endpoint",
        "status",
        "events_through",
        "good_through",
        "last_notification_at",
        "last_checked_at",
        "last_error",
        "rerequest_count",
    )
    described = {}
    for name in fields:
        value = getattr(row, name)
        described[name] = value.isoformat() if hasattr(value, "isoformat") else value
    due = next_rerequest_at(row)
    described["next_rerequest_at"] = due.isoformat() if due is not None else None
    return described


# --------------------------------------------------------------------------- topics install


def register_topics(actions: Any) -> None:
    """Add ``topics install`` to the ``subscriptions`` sub-commands."""
    topics = actions.add_parser("topics", help="the EHR's SubscriptionTopics")
    topics_actions = topics.add_subparsers(metavar="ACTION")
    install = topics_actions.add_parser(
        "install",
        help="create fhir-bridge's own topics on the EHR (where it allows that)",
        description=(
            "Create one SubscriptionTopic per resource type (R4: a Basic resource, as the "
            "Backport IG encodes topics) that fires on create, update and delete, at "
            "FHIR_BRIDGE_SUBSCRIPTION_TOPICS or {FHIR_BRIDGE_SUBSCRIPTION_TOPIC_BASE}/"
            "{type}-change. Topics already there are left alone."
        ),
    )
    install.set_defaults(func=_install_topics)
    topics.set_defaults(func=lambda _args: (topics.print_help(), 2)[1])


def _install_topics(_args: argparse.Namespace) -> int:
    from fhir_bridge.runtime import get_runtime
    from fhir_bridge.sync.topics import install_topics

    rt = get_runtime()
    outcomes = install_topics(rt.ehr, rt.settings)
    failed = False
    for resource_type, url, outcome in outcomes:
        if outcome.startswith("refused"):
            failed = True
            _say(f"{resource_type}: {url} {outcome}")
        else:
            print(f"{resource_type}: {url} {outcome}")
    return 1 if failed else 0
