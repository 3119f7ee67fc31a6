"""``fhir-bridge sandbox``, and the development EHR that ``fhir-bridge run`` starts on its own.

``fhir-bridge sandbox`` runs the development EHR on 127.0.0.1 with the sample patients
(:mod:`fhir_bridge.sandbox.samples`) until Ctrl-C, for trying fhir-bridge (or another SMART
app) against something that behaves like an EHR. ``fhir-bridge run`` without
``FHIR_BRIDGE_EHR_BASE_URL`` does the same in a child process, points the service at it,
creates the Subscriptions and loads the samples, so the first messages appear in the
outbox within a minute or two.

The console lines here are narration for a person at a terminal (``print``), not logs;
they carry ids and local times of made-up patients only.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from fhir_bridge.sandbox.process import DEV_TOKEN, EhrServer, EhrServerError
from fhir_bridge.sandbox.samples import PRACTITIONER_ID, LoadedSamples, load_samples
from fhir_bridge.settings import ENV_PREFIX, Settings, SettingsError, get_settings

API_READY_TIMEOUT_SECONDS = 120.0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``fhir-bridge sandbox`` to the main command line."""
    cmd = subparsers.add_parser(
        "sandbox",
        help="run the development EHR with sample patients (no real data, 127.0.0.1 only)",
        description=(
            "Start the development EHR (an in-memory FHIR R4 server with Subscriptions and "
            "SMART) on 127.0.0.1, load three sample patients (an appointment, a refill due, "
            "a recent discharge) and print its base URL. Ctrl-C stops it. 'fhir-bridge run' "
            "starts it by itself when FHIR_BRIDGE_EHR_BASE_URL is unset."
        ),
    )
    cmd.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"port to listen on (default: {ENV_PREFIX}SANDBOX_PORT, 8090)",
    )
    cmd.add_argument(
        "--no-samples", action="store_true", help="start empty, without the sample patients"
    )
    cmd.set_defaults(func=sandbox_command)


def sandbox_command(args: argparse.Namespace) -> int:
    """Run the development EHR in the foreground until Ctrl-C or SIGTERM."""
    settings = get_settings()
    server = start_server(args.port or settings.sandbox_port)
    stopping = threading.Event()

    def _stop(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        if args.no_samples:
            print(f"sandbox EHR at {server.base_url} (empty)", flush=True)
        else:
            loaded = load_samples(server, datetime.now(UTC))
            print(describe_samples(server, loaded), flush=True)
            print_launch_link(server, settings.public_base_url, loaded)
        print(
            f"static bearer token: {server.static_token}  "
            f"(FHIR_BRIDGE_EHR_BASE_URL={server.base_url} FHIR_BRIDGE_EHR_AUTH=static "
            f"FHIR_BRIDGE_EHR_STATIC_TOKEN={server.static_token}); Ctrl-C stops",
            flush=True,
        )
        while not stopping.wait(0.5):
            if not server.running:
                print("sandbox EHR stopped unexpectedly", flush=True)
                return 1
        return 0
    finally:
        server.stop()


def start_server(port: int) -> EhrServer:
    """Start the development EHR on ``127.0.0.1:port`` or say, in one line, why not."""
    server = EhrServer(port=port)
    try:
        server.start()
    except EhrServerError:
        raise SettingsError(
            f"the development EHR could not start on 127.0.0.1:{port} (is the port in use?); "
            f"set {ENV_PREFIX}SANDBOX_PORT to a free port"
        ) from None
    return server


def describe_samples(server: EhrServer, loaded: LoadedSamples) -> str:
    """``sandbox EHR at … with 3 sample patients`` and where their clock stands."""
    local = loaded.appointment_start_local
    return (
        f"sandbox EHR at {server.base_url} with {len(loaded.patient_ids)} sample patients "
        f"(time zone {loaded.place.zone}, where it is daytime now; appointment "
        f"Appointment/{loaded.appointment_id} at {local:%H:%M} local, a refill due, "
        "a discharge this morning)"
    )


def print_launch_link(server: EhrServer, public_base_url: str, loaded: LoadedSamples) -> str | None:
    """Create an EHR-launch context for the first sample patient and print the panel's link."""
    patient = loaded.patient_ids[0]
    try:
        response = httpx.post(
            f"{server.admin_url}/launch",
            json={
                "patient": patient,
                "fhirUser": f"Practitioner/{PRACTITIONER_ID}",
            },
            timeout=10.0,
        )
        response.raise_for_status()
        launch = str(response.json()["launch"])
    except (httpx.HTTPError, KeyError, ValueError):
        print("staff panel: the sandbox did not create a launch context", flush=True)
        return None
    url = str(
        httpx.URL(
            f"{public_base_url.rstrip('/')}/smart/launch",
            params={"iss": server.base_url, "launch": launch},
        )
    )
    print(f"staff panel (SMART EHR launch as Dr. Kim, Patient/{patient}): {url}", flush=True)
    return url


# --------------------------------------------------------------------------------------
# fhir-bridge run without an EHR
# --------------------------------------------------------------------------------------


@dataclass
class RunSandbox:
    """The development EHR a ``run`` started; :meth:`stop` ends it with ``run``."""

    server: EhrServer
    thread: threading.Thread | None = None

    def stop(self) -> None:
        self.server.stop()


def start_for_run() -> RunSandbox:
    """Start the sandbox and point this process (and the children it starts) at it.

    Sets ``FHIR_BRIDGE_EHR_BASE_URL``, the static development token and, unless given,
    ``FHIR_BRIDGE_PUBLIC_BASE_URL`` (the API's own loopback address, where the sandbox
    delivers notifications) in the environment, then rebuilds the settings.
    """
    settings = get_settings()
    server = start_server(settings.sandbox_port)
    os.environ[f"{ENV_PREFIX}EHR_BASE_URL"] = server.base_url
    os.environ[f"{ENV_PREFIX}EHR_AUTH"] = "static"
    os.environ[f"{ENV_PREFIX}EHR_STATIC_TOKEN"] = DEV_TOKEN
    os.environ.setdefault(f"{ENV_PREFIX}PUBLIC_BASE_URL", f"http://127.0.0.1:{settings.port}")
    get_settings.cache_clear()
    print(f"fhir-bridge: no EHR configured; started the sandbox EHR at {server.base_url}")
    return RunSandbox(server)


def set_up_in_background(sandbox: RunSandbox, settings: Settings) -> None:
    """Once the API answers: create the Subscriptions, load the samples, print the link."""
    thread = threading.Thread(
        target=_set_up, args=(sandbox.server, settings), name="sandbox-setup", daemon=True
    )
    sandbox.thread = thread
    thread.start()


def _set_up(server: EhrServer, settings: Settings) -> None:
    api = f"http://127.0.0.1:{settings.port}"
    if not _wait_until_ready(f"{api}/ready"):
        print(f"fhir-bridge: the API at {api} did not answer; sandbox samples not loaded")
        return
    try:
        created = _create_subscriptions()
        print(
            "fhir-bridge: created Subscriptions for "
            + ", ".join(f"{type_} ({status})" for type_, status in created),
            flush=True,
        )
        # New patient ids on every start: the database remembers what earlier runs sent.
        loaded = load_samples(server, datetime.now(UTC), run_id=secrets.token_hex(3))
        print(f"fhir-bridge: {describe_samples(server, loaded)}", flush=True)
        print_launch_link(server, settings.public_base_url, loaded)
        print(
            f"fhir-bridge: messages go to {settings.outbox_dir}/*.jsonl (the development "
            "outbox); the EHR's Communications show what was sent or withheld",
            flush=True,
        )
    except Exception as exc:  # a console helper: say what failed, keep the service running
        print(f"fhir-bridge: setting up the sandbox failed ({type(exc).__name__})", flush=True)


def _create_subscriptions() -> list[tuple[str, str]]:
    """What ``fhir-bridge subscriptions create`` does, on this process's runtime."""
    from fhir_bridge import jobs
    from fhir_bridge.runtime import get_runtime
    from fhir_bridge.settings import SUBSCRIBED_TYPES
    from fhir_bridge.sync.subscriptions import ensure_subscriptions

    rt = get_runtime()
    rows = ensure_subscriptions(
        rt.sessions, rt.ehr, jobs.subscription_plan(rt), SUBSCRIBED_TYPES, rt.clock()
    )
    return [(str(row.resource_type), str(row.status)) for row in rows]


def _wait_until_ready(url: str) -> bool:
    deadline = time.monotonic() + API_READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return False
