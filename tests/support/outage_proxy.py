"""An EHR outage without losing the EHR: a proxy in front of the fake EHR with three modes.

* ``up``: every request is forwarded unchanged;
* ``unavailable``: every request is answered ``503`` with ``Retry-After`` (an overloaded EHR
  or one in maintenance), nothing reaches the EHR;
* ``down``: the listening socket is closed, so connections are refused, as when the EHR
  host is gone; back ``up`` it listens on the same port again.

The fake EHR keeps its in-memory data (and keeps sending notifications) throughout.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

UP, UNAVAILABLE, DOWN = "up", "unavailable", "down"
_HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "content-encoding"})


class OutageProxy:
    def __init__(self, upstream: str = "", *, retry_after_seconds: int = 2) -> None:
        self.upstream = upstream.rstrip("/")
        self.retry_after_seconds = retry_after_seconds
        self.mode = UP
        self.answered: Counter[int] = Counter()
        """Status codes answered so far (503s in ``unavailable`` included)."""
        self._lock = threading.Lock()
        self._server = self._listen(0)
        self.port = int(self._server.server_address[1])
        self._thread = self._serve()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _listen(self, port: int) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        server.daemon_threads = True
        return server

    def _serve(self) -> threading.Thread:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        return thread

    def unavailable(self) -> None:
        self.mode = UNAVAILABLE

    def down(self) -> None:
        """Stop listening: new connections are refused."""
        if self.mode == DOWN:
            return
        self.mode = DOWN
        self._server.shutdown()
        self._server.server_close()

    def up(self) -> None:
        """Listen again on the same port and forward everything."""
        if self.mode == DOWN:
            self._server = self._listen(self.port)
            self._thread = self._serve()
        self.mode = UP

    def _count(self, status: int) -> None:
        with self._lock:
            self.answered[status] += 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: one request per connection, so no kept-alive connection outlives `down`.

            def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                proxy._count(status)

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.mode == DOWN:  # accepted just before going down: drop it unanswered
                    self.close_connection = True
                    return
                if proxy.mode != UP:
                    self._reply(
                        503,
                        [
                            ("Retry-After", str(proxy.retry_after_seconds)),
                            ("Content-Type", "application/fhir+json"),
                        ],
                        b'{"resourceType":"OperationOutcome","issue":[{"severity":"error",'
                        b'"code":"transient","diagnostics":"service unavailable"}]}',
                    )
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection")
                }
                upstream = httpx.request(
                    self.command,
                    proxy.upstream + self.path,
                    content=body,
                    headers=headers,
                    timeout=30,
                )
                self._reply(
                    upstream.status_code,
                    [(k, v) for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS],
                    upstream.content,
                )

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler

    def close(self) -> None:
        if self.mode != DOWN:
            self._server.shutdown()
            self._server.server_close()
        self.mode = DOWN


@contextmanager
def outage_proxy(upstream: str = "") -> Iterator[OutageProxy]:
    """``upstream`` may be set later (``proxy.upstream = ...``), before the first request."""
    proxy = OutageProxy(upstream)
    try:
        yield proxy
    finally:
        proxy.close()
