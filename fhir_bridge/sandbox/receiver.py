"""A tiny loopback HTTP endpoint that records notifications the fake EHR delivers."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


class ReceiverTimeoutError(Exception):
    """Fewer notifications arrived than a test waited for."""


@dataclass(frozen=True)
class ReceivedRequest:
    """One HTTP request as the receiver saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class NotificationReceiver:
    """Context manager serving on 127.0.0.1:{free port}; answers `status_code` to everything
    (after answering `failing_status` to the first `fail_first` requests)."""

    def __init__(
        self, status_code: int = 200, *, fail_first: int = 0, failing_status: int = 503
    ) -> None:
        self.status_code = status_code
        self.fail_first = fail_first
        self.failing_status = failing_status
        self._requests: list[ReceivedRequest] = []
        self._condition = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL to put in `Subscription.channel.endpoint`."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/notify"

    def __enter__(self) -> NotificationReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Everything received so far."""
        with self._condition:
            return list(self._requests)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Block until at least `count` requests arrived."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self._requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ReceiverTimeoutError(
                        f"expected {count} notifications, got {len(self._requests)}"
                    )
                self._condition.wait(remaining)
            return list(self._requests)

    def _record(self, request: ReceivedRequest) -> int:
        """Keep one request; returns how many were received so far (this one included)."""
        with self._condition:
            self._requests.append(request)
            self._condition.notify_all()
            return len(self._requests)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                received = receiver._record(
                    ReceivedRequest(self.command, self.path, dict(self.headers.items()), body)
                )
                failing = received <= receiver.fail_first
                self.send_response(receiver.failing_status if failing else receiver.status_code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = _handle
            do_PUT = _handle

            def log_message(self, format: str, *args: Any) -> None:
                """Silence per-request logging (paths may carry resource ids only, but be quiet)."""

        return Handler
