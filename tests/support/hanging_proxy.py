"""An EHR that hangs: a proxy in front of the fake EHR holding chosen requests until released.

Requests whose ``METHOD /path`` matches ``hang_on`` wait (as a real EHR does under load)
until :meth:`HangingProxy.release`; every other request is forwarded unchanged. Tests use
it to prove no database lock is held while a worker waits on the EHR.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

# Never hang a test for good: a held request is answered after this long anyway.
HOLD_LIMIT_SECONDS = 60.0


class HangingProxy:
    def __init__(self, upstream: str, hang_on: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.hang_on = re.compile(hang_on)
        self.holding = threading.Event()
        self._released = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def release(self) -> None:
        self._released.set()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                if proxy.hang_on.search(f"{self.command} {self.path}"):
                    proxy.holding.set()
                    proxy._released.wait(HOLD_LIMIT_SECONDS)
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
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
                self.send_response(upstream.status_code)
                for key, value in upstream.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(upstream.content)))
                self.end_headers()
                self.wfile.write(upstream.content)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def hanging_proxy(upstream: str, hang_on: str) -> Iterator[HangingProxy]:
    proxy = HangingProxy(upstream, hang_on)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()
