"""A tiny HTTP server that records every POST: stands in for our own webhook endpoints.

Status callbacks and inbound SMS from the fake Twilio land here, so tests can check what
Twilio would send us (parameters, URL, X-Twilio-Signature) over real HTTP.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from fastapi import FastAPI, Request
from fastapi.responses import Response

from tests.support.fake_twilio import ThreadedServer


@dataclass(frozen=True)
class Webhook:
    """One webhook as received by the :class:`WebhookSink`."""

    url: str
    params: list[tuple[str, str]]
    signature: str | None

    def param(self, name: str) -> str | None:
        return next((value for key, value in self.params if key == name), None)


class WebhookSink:
    """A tiny HTTP server that records every POST (our status-callback/inbound endpoint)."""

    def __init__(self, response_status: int = 200) -> None:
        self.response_status = response_status
        self.received: list[Webhook] = []
        self._arrived = threading.Condition()
        app = FastAPI()

        @app.post("/{path:path}")
        async def record(path: str, request: Request) -> Response:
            form = await request.form()
            webhook = Webhook(
                url=str(request.url),
                params=[(k, str(v)) for k, v in form.multi_items()],
                signature=request.headers.get("x-twilio-signature"),
            )
            with self._arrived:
                self.received.append(webhook)
                self._arrived.notify_all()
            return Response(status_code=self.response_status)

        self._server = ThreadedServer(app)
        self.base_url = self._server.base_url

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Webhook]:
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)

    def __enter__(self) -> Self:
        self._server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.stop()
