"""The ``fhir-bridge`` command line: run the service, manage Subscriptions, poll, preview.

``fhir-bridge run`` is the embedded default: migrations, then the API, a worker
and the scheduler in one process tree on SQLite and a filesystem broker.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Sequence

from fhir_bridge.settings import SettingsError, get_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        result: int = args.func(args)
    except SettingsError as exc:
        print(f"fhir-bridge: {exc}", file=sys.stderr)
        return 2
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fhir-bridge", description=__doc__)
    sub = parser.add_subparsers(metavar="COMMAND")

    cmd = sub.add_parser("serve", help="run the HTTP API (uvicorn)")
    cmd.set_defaults(func=_serve)
    cmd = sub.add_parser("worker", help="run a Celery worker")
    cmd.add_argument("--beat", action="store_true", help="also run the scheduler in-process")
    cmd.add_argument("--concurrency", type=int, default=2)
    cmd.set_defaults(func=_worker)
    cmd = sub.add_parser("scheduler", help="run the periodic scheduler (Celery beat)")
    cmd.set_defaults(func=_scheduler)
    cmd = sub.add_parser("run", help="migrate, then API + worker + scheduler (embedded default)")
    cmd.set_defaults(func=_run)
    cmd = sub.add_parser("migrate", help="apply database migrations")
    cmd.set_defaults(func=_migrate)
    cmd = sub.add_parser("poll", help="search the EHR by _lastUpdated once (polling mode)")
    cmd.set_defaults(func=_poll)
    cmd = sub.add_parser("dispatch", help="claim and deliver due messages once, in-process")
    cmd.set_defaults(func=_dispatch)

    subs = sub.add_parser("subscriptions", help="manage the EHR Subscriptions")
    subs_sub = subs.add_subparsers(metavar="ACTION")
    for name, func, text in (
        ("create", _subscriptions_create, "create (idempotently) one Subscription per type"),
        ("list", _subscriptions_list, "list our Subscriptions and their local state"),
        ("status", _subscriptions_status, "check each Subscription on the EHR now"),
    ):
        subs_sub.add_parser(name, help=text).set_defaults(func=func)

    keys = sub.add_parser("keys", help="SMART Backend Services keys")
    keys_sub = keys.add_subparsers(metavar="ACTION")
    gen = keys_sub.add_parser("generate", help="print a new private key (PEM)")
    gen.add_argument("--alg", choices=["RS384", "ES384"], default="ES384")
    gen.set_defaults(func=_keys_generate)
    keys_sub.add_parser("jwks", help="print the public JWKS").set_defaults(func=_keys_jwks)
    sub.add_parser("registration", help="print what clinic IT registers with the EHR").set_defaults(
        func=_registration
    )

    from rules.cli import register

    register(sub)
    return parser


def _serve(_args: argparse.Namespace) -> int:
    import uvicorn

    from fhir_bridge.api.app import create_app

    settings = get_settings()
    uvicorn.run(create_app(), host=settings.host, port=settings.port, log_config=None)
    return 0


def _worker(args: argparse.Namespace) -> int:
    from fhir_bridge.logging_setup import configure_logging
    from fhir_bridge.tasks import celery_app

    settings = get_settings()
    configure_logging(settings.log_level)
    argv = [
        "worker",
        "--loglevel",
        settings.log_level,
        "--concurrency",
        str(args.concurrency),
        "--queues",
        settings.queue_name,
        "--without-gossip",
        "--without-mingle",
    ]
    if args.beat:
        beat_file = settings.data_dir / "celerybeat-schedule"
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        argv += ["--beat", "--schedule", str(beat_file)]
    celery_app.worker_main(argv)
    return 0


def _scheduler(_args: argparse.Namespace) -> int:
    from fhir_bridge.logging_setup import configure_logging
    from fhir_bridge.tasks import celery_app

    settings = get_settings()
    configure_logging(settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    celery_app.start(
        [
            "beat",
            "--loglevel",
            settings.log_level,
            "--schedule",
            str(settings.data_dir / "celerybeat-schedule"),
        ]
    )
    return 0


def _migrate(_args: argparse.Namespace) -> int:
    from fhir_bridge.store.migrate import upgrade

    upgrade(get_settings().database_url)
    print("database is at the newest schema")
    return 0


def _ensure_dev_secret() -> None:
    """Embedded default only: create a notification secret once, kept under var/."""
    if os.environ.get("FHIR_BRIDGE_NOTIFICATION_SECRET"):
        return
    settings = get_settings()
    path = settings.data_dir / "notification-secret"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    os.environ["FHIR_BRIDGE_NOTIFICATION_SECRET"] = path.read_text().strip()
    get_settings.cache_clear()


def _run(_args: argparse.Namespace) -> int:
    _ensure_dev_secret()
    _migrate(_args)
    settings = get_settings()
    worker = subprocess.Popen(
        [sys.executable, "-m", "fhir_bridge", "worker", "--beat", "--concurrency", "1"]
    )

    def _stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    # uvicorn shuts down on SIGTERM/SIGINT and then re-raises the signal; ending with
    # SystemExit (not the default handler) lets the worker below be stopped, not orphaned.
    signal.signal(signal.SIGTERM, _stop)
    print(f"fhir-bridge: API on http://{settings.host}:{settings.port}  (Ctrl-C stops)")
    if not settings.ehr_base_url:
        print(
            "fhir-bridge: no EHR configured yet; set FHIR_BRIDGE_EHR_BASE_URL (see README), "
            "then run 'fhir-bridge subscriptions create'"
        )
    try:
        return _serve(_args)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()


def _runtime():  # type: ignore[no-untyped-def]
    from fhir_bridge.runtime import get_runtime

    return get_runtime()


def _poll(_args: argparse.Namespace) -> int:
    from fhir_bridge import jobs

    print(json.dumps(jobs.poll(_runtime()), indent=2))
    return 0


def _dispatch(_args: argparse.Namespace) -> int:
    from fhir_bridge import jobs

    rt = _runtime()
    outcomes = {}
    for message_id in jobs.claim_due_messages(rt):
        outcomes[message_id] = jobs.deliver_message(rt, message_id)
        jobs.write_back(rt, message_id)
    print(json.dumps(outcomes, indent=2))
    return 0


def _subscriptions_create(_args: argparse.Namespace) -> int:
    from fhir_bridge import jobs
    from fhir_bridge.settings import SUBSCRIBED_TYPES
    from fhir_bridge.store.db import transaction
    from fhir_bridge.sync.subscriptions import ensure_subscriptions

    rt = _runtime()
    with transaction(rt.sessions) as session:
        rows = ensure_subscriptions(
            session, rt.ehr, jobs.subscription_plan(rt), SUBSCRIBED_TYPES, rt.clock()
        )
        listing = [_describe(row) for row in rows]
    print(json.dumps(listing, indent=2))
    return 0


def _subscriptions_list(_args: argparse.Namespace) -> int:
    from fhir_bridge.store.db import transaction
    from fhir_bridge.sync.repository import list_subscriptions

    rt = _runtime()
    with transaction(rt.sessions) as session:
        listing = [_describe(row) for row in list_subscriptions(session)]
    print(json.dumps(listing, indent=2))
    return 0


def _subscriptions_status(_args: argparse.Namespace) -> int:
    from fhir_bridge import jobs

    print(json.dumps(jobs.check_subscriptions(_runtime()), indent=2))
    return 0


def _describe(row: object) -> dict[str, object]:
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
        "last_error",
    )
    return {name: _plain(getattr(row, name)) for name in fields}


def _plain(value: object) -> object:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _keys_generate(args: argparse.Namespace) -> int:
    from fhir_bridge.fhir.keys import generate_private_key

    print(generate_private_key(args.alg), end="")
    return 0


def _keys_jwks(_args: argparse.Namespace) -> int:
    from fhir_bridge.fhir.keys import public_jwks
    from fhir_bridge.runtime import load_signing_key

    print(json.dumps(public_jwks(load_signing_key(get_settings())), indent=2))
    return 0


def _registration(_args: argparse.Namespace) -> int:
    settings = get_settings()
    print(
        json.dumps(
            {
                "client_name": "fhir-bridge",
                "client_id": settings.ehr_client_id,
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "private_key_jwt",
                "token_endpoint_auth_signing_alg": settings.ehr_signing_alg,
                "jwks_uri": f"{settings.public_base_url}/.well-known/jwks.json",
                "scope": settings.ehr_scope,
                "notification_endpoint_base": f"{settings.public_base_url}/notifications/",
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
