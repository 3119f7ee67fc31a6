"""A local stand-in for Twilio's Messages API, plus a webhook sink, for integration tests.

Runs a real HTTP server (FastAPI + uvicorn in a background thread, 127.0.0.1, free port) so
the adapter's real httpx code path is exercised: basic auth, form encoding, JSON parsing,
timeouts. It speaks the subset of the 2010-04-01 API the adapter uses (create, list with
``To``/``From``/``DateSent``/``DateSent<``/``DateSent>`` filters, newest first, and paging,
fetch), injects failures on demand, and behaves like Twilio afterwards: each message moves
queued → sent (``date_sent`` set) → delivered (or undelivered/failed with ErrorCode) whether
or not a StatusCallback was given, and with one it POSTs the signed status callbacks. It can
send signed inbound-SMS webhooks (received by
:class:`tests.channels.webhook_sink.WebhookSink` in our tests).

Knobs for crash tests: ``latency`` stores the message, then delays the create response (a
worker killed meanwhile has texted the patient without learning the SID); ``hold_queued``
leaves new messages ``queued`` with no ``date_sent`` (Twilio's own queue is backed up).
Every list query is recorded in ``list_requests``.
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from channels.twilio_signature import compute_signature

ACCOUNT_SID = "AC" + "3f1b2c4d5e6f708192a3b4c5d6e7f801"
AUTH_TOKEN = "9c2e4f6a8b0d1e3f5a7c9e1b3d5f7a9c"
API_PREFIX = "/2010-04-01/Accounts"
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _rfc2822(moment: datetime) -> str:
    return moment.strftime("%a, %d %b %Y %H:%M:%S +0000")


def _error(status: int, code: int, message: str) -> JSONResponse:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return JSONResponse(body, status_code=status)


class ThreadedServer:
    """Run an ASGI app with uvicorn in a daemon thread on a pre-bound 127.0.0.1 socket."""

    def __init__(self, app: FastAPI) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Accepted sockets inherit NODELAY; without it Nagle + delayed ACK add ~40 ms to
        # every keep-alive response (uvicorn writes headers and body separately).
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("test HTTP server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


@dataclass
class _Failure:
    status: int
    retry_after: float | None = None


@dataclass
class FakeTwilio:
    """Fake Twilio account. Use as a context manager; ``base_url`` goes to the adapter."""

    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    callback_delay: float = 0.005
    latency: float = 0.0
    unsubscribed_numbers: set[str] = field(default_factory=set)
    invalid_numbers: set[str] = field(default_factory=set)
    landline_numbers: set[str] = field(default_factory=set)
    outcomes: dict[str, tuple[str, int]] = field(default_factory=dict)
    hold_queued: bool = False
    create_requests: list[dict[str, str]] = field(default_factory=list)
    list_requests: list[dict[str, str]] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    callbacks: list[tuple[str, int]] = field(default_factory=list)
    _failures: list[_Failure] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _callbacks_done: threading.Condition = field(default_factory=threading.Condition)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _server: ThreadedServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "FakeTwilio is not running"
        return self._server.base_url

    def __enter__(self) -> Self:
        self._server = ThreadedServer(self._build_app())
        self._server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def fail_next(self, count: int, status: int = 500, retry_after: float | None = None) -> None:
        """Answer the next ``count`` create requests with ``status`` (429 or 5xx)."""
        with self._lock:
            self._failures.extend(_Failure(status, retry_after) for _ in range(count))

    def set_outcome(self, to: str, status: str, error_code: int) -> None:
        """Make messages to ``to`` end ``undelivered``/``failed`` with this ErrorCode."""
        self.outcomes[to] = (status, error_code)

    def wait_for_callbacks(self, count: int, timeout: float = 5.0) -> list[tuple[str, int]]:
        """Block until ``count`` status callbacks were POSTed; return (status, http code)."""
        with self._callbacks_done:
            self._callbacks_done.wait_for(lambda: len(self.callbacks) >= count, timeout)
            return list(self.callbacks)

    def send_inbound(self, url: str, *, from_number: str, to: str, body: str) -> int:
        """POST a signed inbound-SMS webhook (as Twilio does for a reply) to ``url``."""
        sid = "SM" + uuid.uuid4().hex
        params = {
            "ToCountry": "US",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "SmsSid": sid,
            "SmsStatus": "received",
            "Body": body,
            "To": to,
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": from_number,
            "ApiVersion": "2010-04-01",
        }
        signature = compute_signature(self.auth_token, url, params)
        response = httpx.post(
            url, data=params, headers={"X-Twilio-Signature": signature}, timeout=5.0
        )
        return response.status_code

    def _build_app(self) -> FastAPI:
        app = FastAPI()
        messages_path = API_PREFIX + "/{account_sid}/Messages"

        @app.post(messages_path + ".json")
        async def create_message(account_sid: str, request: Request) -> Response:
            return await self._create(account_sid, request)

        @app.get(messages_path + ".json")
        async def list_messages(account_sid: str, request: Request) -> Response:
            return self._authorised(account_sid, request) or self._list(request)

        @app.get(API_PREFIX + "/{account_sid}.json")
        async def fetch_account(account_sid: str, request: Request) -> Response:
            denied = self._authorised(account_sid, request)
            body = {"sid": account_sid, "status": "active", "type": "Full"}
            return denied or JSONResponse(body)

        @app.get(messages_path + "/{sid}.json")
        async def fetch_message(account_sid: str, sid: str, request: Request) -> Response:
            denied = self._authorised(account_sid, request)
            if denied is not None:
                return denied
            resource = self.messages.get(sid)
            if resource is None:
                return _error(
                    404, 20404, f"The requested resource {request.url.path} was not found"
                )
            return JSONResponse(resource)

        return app

    def _authorised(self, account_sid: str, request: Request) -> Response | None:
        expected = f"{self.account_sid}:{self.auth_token}".encode()
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if (
            scheme.lower() != "basic"
            or base64.b64decode(encoded or "") != expected
            or account_sid != self.account_sid
        ):
            return _error(401, 20003, "Authenticate")
        return None

    async def _create(self, account_sid: str, request: Request) -> Response:
        denied = self._authorised(account_sid, request)
        if denied is not None:
            return denied
        form = {key: str(value) for key, value in (await request.form()).items()}
        with self._lock:
            self.create_requests.append(form)
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            response = _error(failure.status, 20000 + failure.status, "Injected failure")
            if failure.retry_after is not None:
                response.headers["Retry-After"] = str(failure.retry_after)
            return response
        rejection = self._validate(form)
        if rejection is not None:
            return rejection
        resource = self._store(form)
        if not self.hold_queued:
            task = asyncio.create_task(self._progress(resource, form.get("StatusCallback")))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self.latency:
            await asyncio.sleep(self.latency)
        return JSONResponse(resource, status_code=201)

    def _validate(self, form: dict[str, str]) -> Response | None:
        to = form.get("To")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not form.get("Body"):
            return _error(400, 21602, "Message body is required.")
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return _error(400, 21603, "A 'From' phone number is required.")
        if to in self.invalid_numbers or not _E164.match(to):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if to in self.landline_numbers:
            return _error(400, 21614, f"'To' number {to} is not a valid mobile number")
        if to in self.unsubscribed_numbers:
            return _error(400, 21610, "Attempt to send to unsubscribed recipient")
        return None

    def _store(self, form: dict[str, str]) -> dict[str, Any]:
        now = _rfc2822(datetime.now(UTC))
        sid = "SM" + uuid.uuid4().hex
        body = form["Body"]
        resource: dict[str, Any] = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": str(1 + len(body) // 160),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if form.get("MessagingServiceSid") else "queued",
            "subresource_uris": {
                "media": f"{API_PREFIX}/{self.account_sid}/Messages/{sid}/Media.json"
            },
            "to": form["To"],
            "uri": f"{API_PREFIX}/{self.account_sid}/Messages/{sid}.json",
            "_sequence": len(self.messages),
        }
        with self._lock:
            self.messages[sid] = resource
        return {k: v for k, v in resource.items() if not k.startswith("_")}

    async def _progress(self, resource: dict[str, Any], url: str | None) -> None:
        """Move the message through its statuses; POST each as a signed callback to ``url``."""
        final_status, error_code = self.outcomes.get(resource["to"], ("delivered", 0))
        sequence = ["queued", "sent", final_status] if final_status != "failed" else ["failed"]
        async with httpx.AsyncClient(timeout=5.0) as client:
            for status in sequence:
                await asyncio.sleep(self.callback_delay)
                stored = self.messages[resource["sid"]]
                stored["status"] = status
                stored["date_updated"] = _rfc2822(datetime.now(UTC))
                if status == "sent":
                    stored["date_sent"] = stored["date_updated"]
                params = {
                    "AccountSid": self.account_sid,
                    "ApiVersion": "2010-04-01",
                    "From": resource["from"] or "",
                    "MessageSid": resource["sid"],
                    "MessageStatus": status,
                    "SmsSid": resource["sid"],
                    "SmsStatus": status,
                    "To": resource["to"],
                }
                if status in ("undelivered", "failed"):
                    params["ErrorCode"] = str(error_code)
                    stored["error_code"] = error_code
                if url is None:
                    continue
                signature = compute_signature(self.auth_token, url, params)
                headers = {"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"}
                try:
                    reply = await client.post(url, data=params, headers=headers)
                    outcome = reply.status_code
                except httpx.HTTPError:
                    outcome = 0
                with self._callbacks_done:
                    self.callbacks.append((status, outcome))
                    self._callbacks_done.notify_all()

    def _list(self, request: Request) -> Response:
        query = request.query_params
        with self._lock:
            self.list_requests.append(dict(query.items()))
        page_size = int(query.get("PageSize", "50"))
        page = int(query.get("Page", "0"))
        selected = [m for m in self.messages.values() if _matches_filters(m, query)]
        selected.sort(key=lambda m: m["_sequence"], reverse=True)
        chunk = selected[page * page_size : (page + 1) * page_size]
        base = f"{API_PREFIX}/{self.account_sid}/Messages.json"
        filters = [(k, v) for k, v in query.multi_items() if k not in ("Page", "PageToken")]

        def page_uri(number: int) -> str:
            return str(httpx.URL(base, params=[*filters, ("Page", str(number))]))

        has_next = (page + 1) * page_size < len(selected)
        return JSONResponse(
            {
                "messages": [{k: v for k, v in m.items() if not k.startswith("_")} for m in chunk],
                "start": page * page_size,
                "end": page * page_size + max(0, len(chunk) - 1),
                "page": page,
                "page_size": page_size,
                "uri": page_uri(page),
                "first_page_uri": page_uri(0),
                "previous_page_uri": page_uri(page - 1) if page > 0 else None,
                "next_page_uri": page_uri(page + 1) if has_next else None,
            }
        )


def _matches_filters(message: dict[str, Any], query: Any) -> bool:
    if "To" in query and message["to"] != query["To"]:
        return False
    if "From" in query and message["from"] != query["From"]:
        return False
    sent = message["date_sent"]
    sent_day = (
        datetime.strptime(sent, "%a, %d %b %Y %H:%M:%S %z").date().isoformat() if sent else None
    )
    for name, keep in (
        ("DateSent", lambda day, bound: day == bound),
        ("DateSent<", lambda day, bound: day <= bound),
        ("DateSent>", lambda day, bound: day >= bound),
    ):
        if name in query and (sent_day is None or not keep(sent_day, query[name])):
            return False
    return True
