"""The ``fhir-bridge`` command line: run the service, manage Subscriptions, poll, preview.

``fhir-bridge run`` is the embedded default: migrations, then the API, a worker
and the scheduler in one process tree on SQLite and a filesystem broker.

Every command uses one data folder (``FHIR_BRIDGE_DATA_DIR``, default ``var``): the
notification secret, the SQLite database, the filesystem broker and the outbox. A
mistake the user can fix (a bad setting, a missing file, an unmigrated database, an
unreachable EHR) is one line on stderr naming the variable or file and the fix;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from fhir_bridge.settings import (
    ENV_PREFIX,
    Settings,
    SettingsError,
    UserError,
    ensure_notification_secret,
    get_settings,
)

if TYPE_CHECKING:
    from celery import Celery

EXIT_USER_ERROR, EXIT_UNEXPECTED = 2, 1
DESCRIPTION = """\
FHIR R4 EHR events in, patient reminders out (under consent), a Communication back.

Try it:   fhir-bridge run        (no settings: a sandbox EHR with sample patients)
Check:    fhir-bridge doctor     (every setting and connection, with the fix for each)

Every command uses one data folder, FHIR_BRIDGE_DATA_DIR (default var/): the notification
secret, the SQLite database, the filesystem broker and the outbox. Errors are one line
naming the variable or file to fix; --debug shows the traceback."""

log = logging.getLogger("fhir_bridge.worker")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    if args.debug:
        result: int = args.func(args)
        return result
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line, never a traceback, unless --debug
        message, code = explain(exc)
        print(f"fhir-bridge: {message}", file=sys.stderr)
        return code
    return result


def explain(exc: BaseException) -> tuple[str, int]:
    """The one line (and exit code) a user sees for an error; no PHI, no secrets."""
    from sqlalchemy.exc import SQLAlchemyError

    from fhir_bridge.fhir.errors import EhrAuthError, EhrError, EhrUnavailable, SigningKeyError
    from rules.config import RulesConfigError

    if isinstance(exc, UserError):
        return str(exc), EXIT_USER_ERROR
    if isinstance(exc, EhrError):
        ehr = _ehr_url()
        if isinstance(exc, EhrUnavailable):
            reason = _transport_reason(exc) if exc.status is None else f"HTTP {exc.status}"
            return (
                f"cannot reach the EHR at {ehr} ({reason}): check {ENV_PREFIX}EHR_BASE_URL "
                "and that the EHR is up",
                EXIT_USER_ERROR,
            )
        if isinstance(exc, EhrAuthError):
            return (
                f"the EHR at {ehr} refused our credentials (HTTP {exc.status}): check "
                f"{ENV_PREFIX}EHR_AUTH and its token or client id, and the registration "
                "(`fhir-bridge registration`)",
                EXIT_USER_ERROR,
            )
        return f"the EHR at {ehr}: {exc}", EXIT_USER_ERROR
    if isinstance(exc, SigningKeyError):
        return f"{exc}: check {ENV_PREFIX}EHR_PRIVATE_KEY_FILE", EXIT_USER_ERROR
    if isinstance(exc, RulesConfigError):
        first = exc.problems[0] if exc.problems else "invalid"
        more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        return (
            f"invalid rules file: {first}{more}; `fhir-bridge rules check FILE` lists every "
            f"problem ({ENV_PREFIX}RULES_FILE)",
            EXIT_USER_ERROR,
        )
    if isinstance(exc, SQLAlchemyError):
        reason = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0]
        return (
            f"database error ({reason}): check {ENV_PREFIX}DATABASE_URL, then "
            "`fhir-bridge migrate`",
            EXIT_USER_ERROR,
        )
    return (
        f"unexpected error ({type(exc).__name__}); run again with --debug for the details",
        EXIT_UNEXPECTED,
    )


def _ehr_url() -> str:
    try:
        return get_settings().ehr_base_url or "(not set)"
    except SettingsError:
        return "(settings invalid)"


def _transport_reason(exc: BaseException) -> str:
    import httpx

    cause = exc.__cause__
    if isinstance(cause, httpx.ConnectTimeout | httpx.ReadTimeout | httpx.PoolTimeout):
        return "timed out"
    if isinstance(cause, httpx.ConnectError):
        return "connection refused or host not found"
    return type(cause).__name__ if cause is not None else "no answer"


def _command(
    sub: argparse._SubParsersAction,
    name: str,
    text: str,
    func: object | None = None,
) -> argparse.ArgumentParser:
    """A subcommand whose one-line help also shows as its ``--help`` description."""
    cmd: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text)
    cmd.set_defaults(func=func if func is not None else _show_help(cmd))
    return cmd


def _show_help(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """A command group run without its action prints its own help."""

    def show(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return show


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fhir-bridge", description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks instead of one-line errors"
    )
    sub = parser.add_subparsers(metavar="COMMAND")

    _command(sub, "serve", "run the HTTP API (uvicorn)", _serve)
    cmd = _command(sub, "worker", "run a Celery worker", _worker)
    cmd.add_argument("--beat", action="store_true", help="also run the scheduler in-process")
    cmd.add_argument("--concurrency", type=int, default=2)
    cmd.add_argument(
        "--queues",
        default="",
        help="kinds of work to take, comma-separated (ingest,delivery,writeback,periodic,"
        "default); all by default",
    )
    # `run` checks the rules at its own start; its worker need not warn a second time.
    cmd.add_argument("--no-start-warnings", action="store_true", help=argparse.SUPPRESS)
    _command(sub, "scheduler", "run the periodic scheduler (Celery beat)", _scheduler)
    _command(sub, "run", "migrate, then API + worker + scheduler (embedded default)", _run)
    _command(
        sub, "migrate", "create or upgrade the database (and the data folder's secret)", _migrate
    )
    _command(sub, "poll", "search the EHR by _lastUpdated once (polling mode)", _poll)
    _command(sub, "dispatch", "claim and deliver due messages once, in-process", _dispatch)

    subs = _command(sub, "subscriptions", "manage the EHR Subscriptions")
    subs_sub = subs.add_subparsers(metavar="ACTION")
    _command(
        subs_sub, "create", "create (idempotently) one Subscription per type", _subscriptions_create
    )
    _command(subs_sub, "list", "list our Subscriptions with the EHR's status", _subscriptions_list)
    _command(subs_sub, "status", "check each Subscription on the EHR now", _subscriptions_status)

    from fhir_bridge.sync.cli import register_secrets, register_topics

    register_secrets(subs_sub)
    register_topics(subs_sub)

    keys = _command(sub, "keys", "SMART Backend Services keys")
    keys_sub = keys.add_subparsers(metavar="ACTION")
    gen = _command(
        keys_sub,
        "generate",
        "make a new private key: a 0600 file with --out, else on stdout",
        _keys_generate,
    )
    gen.add_argument("--alg", choices=["RS384", "ES384"], default="ES384")
    gen.add_argument(
        "--out", metavar="FILE", help="write here (folder made 0700, file 0600, never overwritten)"
    )
    _command(keys_sub, "jwks", "print the public JWKS of the configured key", _keys_jwks)
    reg = _command(
        sub, "registration", "print what the EHR admin enters for our two clients", _registration
    )
    reg.add_argument("--json", action="store_true", help="machine-readable output")

    from rules.cli import register

    register(sub)
    from fhir_bridge.sandbox.cli import register as register_sandbox

    register_sandbox(sub)
    from fhir_bridge.doctor_cli import register as register_doctor

    register_doctor(sub)
    from fhir_bridge.audit.cli import register as register_audit

    register_audit(sub, _command)
    from fhir_bridge.outcomes.cli import register as register_report

    register_report(sub)
    from fhir_bridge.campaigns.cli import register as register_campaigns

    register_campaigns(sub, _command)
    from fhir_bridge.optin.cli import register as register_optin

    register_optin(sub, _command)
    return parser


def require_database(settings: Settings) -> None:
    """Stop with one line unless the database exists and is migrated (creates nothing)."""
    from fhir_bridge.store.migrate import schema_problem

    problem = schema_problem(settings.database_url)
    if problem is not None:
        raise UserError(problem)


def _start(settings: Settings, *, warnings: bool = True) -> None:
    """What every long-running role does first: logging, the database check, warnings."""
    from fhir_bridge.logging_setup import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    require_database(settings)
    if warnings:
        warn_about_example_rules(settings)


def warn_about_example_rules(settings: Settings) -> list[str]:
    """One WARNING line while the rules still name the shipped example clinic."""
    import logging

    from rules.config import example_values_in_use, load_rules_config

    found = example_values_in_use(load_rules_config(settings.rules_file))
    if found:
        logging.getLogger("fhir_bridge").warning(
            "the rules are the shipped example: patients would get the example clinic's "
            "%s; run `fhir-bridge rules init`, edit the file, set %sRULES_FILE",
            ", ".join(found),
            ENV_PREFIX,
        )
    return found


def _serve(_args: argparse.Namespace) -> int:
    import uvicorn

    from fhir_bridge.api.app import create_app

    settings = get_settings()
    # Without the secret every notification would be answered 500: refuse to start instead.
    settings.require_notification_secret()
    _start(settings)
    uvicorn.run(create_app(), host=settings.host, port=settings.port, log_config=None)
    return 0


WORKER_CHILD_ENV = "FHIR_BRIDGE_WORKER_CHILD"
WORKER_RESTART_DELAY_SECONDS = 2.0


def _worker(args: argparse.Namespace) -> int:
    """The worker role: a small supervisor around the Celery worker process.

    The known way a broker outage ended Celery's worker (kombu restoring unacknowledged
    messages on a dropped Redis connection, an "unrecoverable error") is fixed by
    ``fhir_bridge.broker_shim``. The role must not stop delivering for anything else either,
    so the role's process stays up and starts a fresh Celery worker whenever one exits;
    the database is the record and the relay re-enqueues whatever the dead worker held.
    Only a requested stop (SIGTERM/SIGINT) ends the role: it is passed on, and the role
    exits with the worker's own exit code.
    """
    if os.environ.get(WORKER_CHILD_ENV):
        return _celery_worker(args)
    _start(get_settings(), warnings=not args.no_start_warnings)
    argv = [sys.executable, "-m", "fhir_bridge", "worker", "--no-start-warnings"]
    argv += ["--concurrency", str(args.concurrency)] + (["--beat"] if args.beat else [])
    argv += ["--queues", args.queues] if args.queues else []
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def _forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    while True:
        child = subprocess.Popen(argv, env={**os.environ, WORKER_CHILD_ENV: "1"})
        code = child.wait()
        if stopping:
            return _exit_code(code)
        # Nobody asked it to stop, so even exit 0 is unexpected (Celery has ended with 0
        # after an unrecoverable broker error).
        log.warning("celery worker stopped unexpectedly; starting a new one", extra={"code": code})
        time.sleep(WORKER_RESTART_DELAY_SECONDS)
        if stopping:
            return _exit_code(code)


def _celery_worker(args: argparse.Namespace) -> int:
    from fhir_bridge.tasks import celery_app, worker_queues

    settings = get_settings()
    _start(settings, warnings=False)
    argv = [
        "--quiet",
        "worker",
        "--loglevel",
        settings.log_level,
        "--concurrency",
        str(args.concurrency),
        "--queues",
        ",".join(worker_queues(settings.queue_name, _kinds(args.queues))),
        "--without-gossip",
        "--without-mingle",
    ]
    if args.beat:
        beat_file = settings.data_dir / "celerybeat-schedule"
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        argv += ["--beat", "--schedule", str(beat_file)]
    return _run_celery(celery_app, argv)


def _run_celery(app: Celery, argv: list[str]) -> int:
    """Run Celery's command line and return its exit code.

    ``Celery.start`` (and ``worker_main``) drop it: click returns the code of
    ``ctx.exit(code)`` in non-standalone mode and Celery discards the return value, so an
    unrecoverable error (logged CRITICAL) would end the process with 0 and
    `restart: on-failure` would not restart it. Anything but a clean shutdown is a failure.
    """
    from celery.bin.celery import celery as celery_command
    from click.exceptions import Exit

    celery_command.params[0].default = app
    try:
        code = celery_command.main(args=argv, standalone_mode=False)
    except Exit as stop:
        code = stop.exit_code
    finally:
        celery_command.params[0].default = None
    return _exit_code(code)


def _kinds(queues: str) -> list[str]:
    return [kind.strip() for kind in queues.split(",") if kind.strip()]


def _exit_code(code: object) -> int:
    """Celery's exit code as ours: 0 only for a clean (requested) shutdown."""
    if code is None or code == 0:
        return 0
    return code if isinstance(code, int) and 0 < code < 256 else EXIT_UNEXPECTED


def _scheduler(_args: argparse.Namespace) -> int:
    from fhir_bridge.logging_setup import configure_logging
    from fhir_bridge.tasks import celery_app

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return _run_celery(
        celery_app,
        [
            "--quiet",
            "beat",
            "--loglevel",
            settings.log_level,
            "--schedule",
            str(settings.data_dir / "celerybeat-schedule"),
        ],
    )


def _migrate(_args: argparse.Namespace) -> int:
    from fhir_bridge.store.migrate import upgrade

    _ensure_dev_secret()
    settings = get_settings()
    upgrade(settings.database_url)
    print("database is at the newest schema")
    return 0


def _ensure_dev_secret() -> None:
    """Create the data folder's notification secret once, unless one is configured.

    Settings read it from there whenever the variable is unset, so every command run in
    this folder (and every process ``run`` starts) uses the same secret.
    """
    if ensure_notification_secret(get_settings()):
        get_settings.cache_clear()


def _run(_args: argparse.Namespace) -> int:
    """Migrate, then API + worker + scheduler; without an EHR, the sandbox EHR as well."""
    _migrate(_args)

    def _stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    # uvicorn shuts down on SIGTERM/SIGINT and then re-raises the signal; ending with
    # SystemExit (not the default handler) lets the children below be stopped, not orphaned.
    signal.signal(signal.SIGTERM, _stop)
    children: list[subprocess.Popen[bytes]] = []
    sandbox = None
    try:
        if not get_settings().ehr_base_url:
            from fhir_bridge.sandbox.cli import start_for_run

            sandbox = start_for_run()  # sets the EHR variables the worker inherits
        settings = get_settings()
        # The worker inherits our settings; the API below already warned once.
        worker = [sys.executable, "-m", "fhir_bridge", "worker", "--beat", "--concurrency", "1"]
        children.append(subprocess.Popen([*worker, "--no-start-warnings"]))
        print(f"fhir-bridge: API on http://{settings.host}:{settings.port}  (Ctrl-C stops)")
        if sandbox is not None:
            from fhir_bridge.sandbox.cli import set_up_in_background

            set_up_in_background(sandbox, settings)
        return _serve(_args)
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        if sandbox is not None:
            sandbox.stop()


def _runtime():  # type: ignore[no-untyped-def]
    from fhir_bridge.runtime import get_runtime

    require_database(get_settings())
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
    from fhir_bridge.sync.cli import create_command

    _runtime()
    return create_command()


def _subscriptions_list(_args: argparse.Namespace) -> int:
    from fhir_bridge.sync.cli import list_command

    _runtime()
    return list_command()


def _subscriptions_status(_args: argparse.Namespace) -> int:
    from fhir_bridge.sync.cli import status_command

    _runtime()
    return status_command()


def _keys_generate(args: argparse.Namespace) -> int:
    from fhir_bridge.fhir.errors import SigningKeyError
    from fhir_bridge.fhir.keys import generate_private_key, write_private_key

    pem = generate_private_key(args.alg)
    if args.out is None:
        print(pem, end="")
        return 0
    try:
        path = write_private_key(args.out, pem)
    except SigningKeyError as exc:
        raise UserError(str(exc)) from exc
    print(
        f"wrote a new {args.alg} private key to {path} (mode 0600); "
        f"set {ENV_PREFIX}EHR_PRIVATE_KEY_FILE={path}, then `fhir-bridge registration`"
    )
    return 0


def _keys_jwks(_args: argparse.Namespace) -> int:
    from fhir_bridge.fhir.keys import public_jwks
    from fhir_bridge.runtime import load_signing_key

    print(json.dumps(public_jwks(load_signing_key(get_settings())), indent=2))
    return 0


def registration_details(settings: Settings) -> dict[str, dict[str, object]]:
    """What the EHR admin registers: our backend service and the staff panel (two clients).

    The signing algorithm is the key's own; without a key the backend entry says so.
    """
    from fhir_bridge.runtime import load_signing_key
    from smart_app.config import CALLBACK_PATH, LAUNCH_PATH, STANDALONE_PATH

    base = settings.public_base_url
    backend: dict[str, object] = {
        "client_type": "backend service (SMART Backend Services, client_credentials)",
        "client_id": settings.ehr_client_id or f"(choose one; set {ENV_PREFIX}EHR_CLIENT_ID)",
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "scope": settings.ehr_scope,
        "notification_endpoint_base": f"{base}/notifications/",
    }
    if settings.ehr_private_key_file is None and settings.ehr_private_key is None:
        backend["token_endpoint_auth_signing_alg"] = (
            f"(no key yet: `fhir-bridge keys generate --alg ES384 --out secrets/ehr.pem`, "
            f"then set {ENV_PREFIX}EHR_PRIVATE_KEY_FILE)"
        )
    else:
        key = load_signing_key(settings)
        backend["token_endpoint_auth_signing_alg"] = key.alg
        backend["kid"] = key.kid
    panel: dict[str, object] = {
        "client_type": "staff panel (SMART App Launch: EHR launch and standalone launch)",
        "client_id": settings.smart_client_id,
        "launch_uri": f"{base}{LAUNCH_PATH}",
        "standalone_launch_url": f"{base}{STANDALONE_PATH} (clinic-wide replies waiting)",
        "redirect_uri": f"{base}{CALLBACK_PATH}",
        "token_endpoint_auth_method": (
            "client_secret_basic"
            if settings.smart_client_secret is not None
            else "none (public client, PKCE S256)"
        ),
        "scope": settings.smart_scope,
        "standalone_scope": settings.smart_standalone_scope,
        "pkce": "S256 (required)",
        "user_types": "practitioners only (fhirUser Practitioner or PractitionerRole)",
        "embedding": "iframe from the EHR's origin (CSP frame-ancestors); HTTPS in production",
    }
    return {"backend_services": backend, "staff_panel": panel}


def _registration(args: argparse.Namespace) -> int:
    details = registration_details(get_settings())
    if args.json:
        print(json.dumps(details, indent=2))
        return 0
    titles = {
        "backend_services": "1. Backend service (fhir-bridge itself, no user)",
        "staff_panel": "2. Staff panel (launched from the EHR by staff)",
    }
    blocks = []
    for name, fields in details.items():
        width = max(len(field) for field in fields)
        lines = [titles[name]] + [f"   {k:<{width}}  {v}" for k, v in fields.items()]
        blocks.append("\n".join(lines))
    print("Register two clients with the EHR:\n\n" + "\n\n".join(blocks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
