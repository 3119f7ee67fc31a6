"""`EhrServer`: start the development EHR as a real subprocess on loopback and drive it.

Used by ``fhir-bridge sandbox``, by ``fhir-bridge run`` when no EHR is configured, and by
the tests (each on a free port).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from fhir_bridge.sandbox.auth import DEFAULT_SCOPE

# The folder holding the ``fhir_bridge`` package, so the child finds it even uninstalled.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 5.0
_START_ATTEMPTS = 3
DEV_TOKEN = "dev-token"  # noqa: S105  (the sandbox's static development token)


class EhrServerError(Exception):
    """The fake EHR could not be started or answered a helper call with an error."""


class EhrRequestError(EhrServerError):
    """A helper request got a non-2xx answer; `outcome` is the OperationOutcome (no PHI)."""

    def __init__(self, status_code: int, outcome: Any) -> None:
        super().__init__(f"fake EHR answered HTTP {status_code}")
        self.status_code = status_code
        self.outcome = outcome


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class EhrServer:
    """Context manager owning one fake EHR process; helpers use the static token."""

    def __init__(
        self,
        *,
        fhir_version: str = "R4",
        static_token: str = DEV_TOKEN,
        supports_events: bool = True,
        max_delivery_failures: int = 3,
        port: int = 0,
        supports_subscriptions: bool = True,
        builtin_topics: bool = True,
    ) -> None:
        """``port=0`` picks a free loopback port (retrying on a race); otherwise that one."""
        self.fhir_version = fhir_version
        self.static_token = static_token
        self.supports_events = supports_events
        self.max_delivery_failures = max_delivery_failures
        self.supports_subscriptions = supports_subscriptions
        self.builtin_topics = builtin_topics
        self.requested_port = port
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._client: httpx.Client | None = None

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:{port}`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """FHIR base URL."""
        return f"{self.origin}/fhir"

    @property
    def admin_url(self) -> str:
        """Admin API base URL."""
        return f"{self.origin}/_admin"

    @property
    def token_url(self) -> str:
        """SMART Backend Services token endpoint."""
        return f"{self.origin}/auth/token"

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> EhrServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Launch the process on a free port and wait until `/fhir/metadata` answers."""
        attempts = _START_ATTEMPTS if self.requested_port == 0 else 1
        for _ in range(attempts):
            self.port = self.requested_port or _free_port()
            self._launch()
            if self._wait_until_ready():
                self._client = httpx.Client(
                    timeout=10.0, headers={"Authorization": f"Bearer {self.static_token}"}
                )
                return
            self._terminate()
        raise EhrServerError(
            f"the development EHR did not start on 127.0.0.1:{self.port}: " + self._log_tail()
        )

    def stop(self) -> None:
        """Terminate the process (kill if it lingers) and release resources."""
        if self._client is not None:
            self._client.close()
            self._client = None
        self._terminate()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _launch(self) -> None:
        command = [
            sys.executable,
            "-m",
            "fhir_bridge.sandbox",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--fhir-version",
            self.fhir_version,
            "--static-token",
            self.static_token,
            "--max-delivery-failures",
            str(self.max_delivery_failures),
            "--supports-events" if self.supports_events else "--no-supports-events",
            "--supports-subscriptions"
            if self.supports_subscriptions
            else "--no-supports-subscriptions",
            "--builtin-topics" if self.builtin_topics else "--no-builtin-topics",
        ]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH", "")])
        )
        if self._log_file is None:
            # Kept open for the process lifetime (closed in stop()), so no `with` block.
            self._log_file = tempfile.TemporaryFile()  # noqa: SIM115
        self._process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=self._log_file,
        )

    def _wait_until_ready(self) -> bool:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            try:
                response = httpx.get(f"{self.base_url}/metadata", timeout=1.0)
                if response.status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        return False

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def _log_tail(self) -> str:
        if self._log_file is None:
            return ""
        self._log_file.seek(0)
        return self._log_file.read()[-2000:].decode(errors="replace")

    def _http(self) -> httpx.Client:
        if self._client is None:
            raise EhrServerError("fake EHR is not running")
        return self._client

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self._http().request(method, url, **kwargs)
        if not response.is_success:
            try:
                outcome = response.json()
            except ValueError:
                outcome = None
            raise EhrRequestError(response.status_code, outcome)
        return response.json() if response.content else None

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        """POST a resource; returns it with server-assigned id and meta."""
        result: dict[str, Any] = self._call(
            "POST", f"{self.base_url}/{resource['resourceType']}", json=resource
        )
        return result

    def update(self, resource: dict[str, Any]) -> dict[str, Any]:
        """PUT a resource (update-or-create by its id)."""
        url = f"{self.base_url}/{resource['resourceType']}/{resource['id']}"
        result: dict[str, Any] = self._call("PUT", url, json=resource)
        return result

    def read(self, type_: str, id_: str) -> dict[str, Any]:
        """GET the current version of a resource."""
        result: dict[str, Any] = self._call("GET", f"{self.base_url}/{type_}/{id_}")
        return result

    def search(self, type_: str, **params: str | list[str]) -> dict[str, Any]:
        """GET a searchset Bundle (first page); list values repeat the parameter."""
        result: dict[str, Any] = self._call("GET", f"{self.base_url}/{type_}", params=params)
        return result

    def set_chaos(self, **options: Any) -> None:
        """Configure duplicate/drop/reorder_window/drop_next/duplicate_all/seed/heartbeat_delay/
        latency (seconds each FHIR request waits before it is answered)."""
        self._call("POST", f"{self.admin_url}/chaos", json=options)

    def settings(self, **options: Any) -> None:
        """Change `supports_events`, `max_delivery_failures`, `delivery_retries`,
        `retry_backoff_seconds`, `token_lifetime` or `system_search` at runtime."""
        self._call("POST", f"{self.admin_url}/settings", json=options)

    def deliveries(self) -> list[dict[str, Any]]:
        """Every notification attempt so far, oldest first."""
        result: list[dict[str, Any]] = self._call("GET", f"{self.admin_url}/deliveries")
        return result

    def register_client(
        self, client_id: str, jwks: dict[str, Any], scope: str = DEFAULT_SCOPE
    ) -> None:
        """Register a SMART Backend Services client by its public JWKS."""
        body = {"client_id": client_id, "jwks": jwks, "scope": scope}
        self._call("POST", f"{self.admin_url}/clients", json=body)

    def force_error(self, subscription_id: str) -> None:
        """Put a Subscription into `error` immediately."""
        self._call("POST", f"{self.admin_url}/subscriptions/{subscription_id}/error")

    def simulate_restart(self) -> None:
        """As after an EHR restart: data kept, but Subscriptions get no heartbeats and no
        notifications until each is re-requested (PUT), which starts a new handshake."""
        self._call("POST", f"{self.admin_url}/restart")

    def flush(self) -> None:
        """Deliver notifications held back by `reorder_window`."""
        self._call("POST", f"{self.admin_url}/flush")

    def stats(self) -> dict[str, Any]:
        """Tokens issued, requests by interaction, delivery counters, settings, chaos."""
        result: dict[str, Any] = self._call("GET", f"{self.admin_url}/stats")
        return result

    def reset(self) -> None:
        """Clear all resources, subscriptions, clients, tokens, chaos and counters."""
        self._call("POST", f"{self.admin_url}/reset")
