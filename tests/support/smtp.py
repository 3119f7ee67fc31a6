"""A real SMTP server on 127.0.0.1 for tests (aiosmtpd), with TLS, AUTH and failure knobs.

Tests talk to an actual socket so that smtplib's real behaviour (EHLO, STARTTLS, AUTH,
reply codes) is exercised, rather than a mock that agrees with whatever the adapter does.

**Delivery by Message-ID.** Like real mail systems with duplicate suppression (Gmail, Cyrus
``duplicatesuppression``, Sieve ``duplicate``), the server puts a message in the mailbox
(``messages``) once per ``Message-ID``: a second transaction carrying a Message-ID already
delivered is accepted (250) and recorded in ``received`` but not delivered again. So
``received`` is every accepted SMTP transaction and ``messages`` what the recipients see;
``message_ids()`` reports the Message-ID of every transaction. ``suppress_duplicates=False``
turns the suppression off.

**Stalling.** ``stall_data()`` makes the next DATA hang after the message was received and
before the reply, until ``release()`` or the client goes away (the window in which a sender
killed mid-send cannot know whether the message went out). By default the server has
already queued (delivered) the message when it stalls, the RFC 1047 duplicate case;
``deliver=False`` drops it instead (a lost connection before the reply).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TlsMode = Literal["none", "starttls", "tls"]


def free_port() -> int:
    """Ask the kernel for a currently unused TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class SelfSignedCertificate:
    """A throwaway certificate for 127.0.0.1/localhost, written to ``directory``."""

    cert_path: Path
    key_path: Path
    cert_pem: bytes

    @classmethod
    def generate(cls, directory: Path) -> SelfSignedCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
        cert_path = directory / "smtp-cert.pem"
        key_path = directory / "smtp-key.pem"
        cert_path.write_bytes(cert_pem)
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cls(cert_path=cert_path, key_path=key_path, cert_pem=cert_pem)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only this certificate (hostname checked)."""
        return ssl.create_default_context(cadata=self.cert_pem.decode("ascii"))


class _RecordingHandler:
    """aiosmtpd handler: stores messages, refuses configured recipients, injects 421s."""

    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    async def handle_RCPT(
        self,
        smtp: SMTPProtocol,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self._server.take_transient_failure():
            return "421 4.3.2 Service not available, closing transmission channel"
        if address.lower() in self._server.rejected_recipients:
            return "550 5.1.1 Recipient address rejected: user unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, smtp: SMTPProtocol, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        stall = self._server.take_stall()
        if stall is not None and stall.deliver:
            self._server.record(parsed, envelope)  # queued; the reply is what hangs
        if stall is not None:
            while not stall.released.is_set():
                await asyncio.sleep(0.05)
            if not stall.deliver:
                return "451 4.3.0 Stalled transaction dropped"
            return "250 2.0.0 OK: queued"
        self._server.record(parsed, envelope)
        return "250 2.0.0 OK: queued"


@dataclass
class _Stall:
    deliver: bool
    armed: bool = True
    entered: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


class SmtpServer:
    """Context manager running an aiosmtpd server on 127.0.0.1 at a free port.

    ``tls``: "none", "starttls" (STARTTLS offered and required) or "tls" (implicit TLS).
    ``username``/``password``: require AUTH PLAIN/LOGIN with these credentials.
    ``rejected_recipients``: addresses answered with 550 at RCPT.
    ``fail_next(n)``: answer the next ``n`` RCPT commands with 421.
    ``suppress_duplicates``: deliver each Message-ID to the mailbox once (the default).
    ``stall_data()`` / ``release()``: hang the next DATA until released.
    """

    def __init__(
        self,
        *,
        tls: TlsMode = "none",
        username: str | None = None,
        password: str | None = None,
        rejected_recipients: tuple[str, ...] = (),
        suppress_duplicates: bool = True,
    ) -> None:
        self.tls: TlsMode = tls
        self.username = username
        self.password = password
        self.rejected_recipients = {address.lower() for address in rejected_recipients}
        self.host = "127.0.0.1"
        self.port = 0
        self.suppress_duplicates = suppress_duplicates
        self.messages: list[EmailMessage] = []
        self.received: list[EmailMessage] = []
        self._stall: _Stall | None = None
        self.envelopes: list[tuple[str | None, list[str]]] = []
        self.authenticated_logins: list[str] = []
        self._transient_failures = 0
        self._lock = threading.Lock()
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._certificate: SelfSignedCertificate | None = None
        self._controller: Controller | None = None

    def fail_next(self, count: int) -> None:
        """Answer the next ``count`` recipients with 421 (service not available)."""
        with self._lock:
            self._transient_failures = count

    def take_transient_failure(self) -> bool:
        with self._lock:
            if self._transient_failures <= 0:
                return False
            self._transient_failures -= 1
            return True

    def stall_data(self, *, deliver: bool = True) -> None:
        """Hang the next DATA before replying, until :meth:`release`."""
        with self._lock:
            self._stall = _Stall(deliver=deliver)

    def wait_until_stalled(self, timeout: float) -> bool:
        """Whether a DATA is hanging (waits up to ``timeout`` seconds)."""
        stall = self._stall
        return stall is not None and stall.entered.wait(timeout)

    def release(self) -> None:
        """Let a stalled DATA finish (deliver or drop it, as armed)."""
        stall = self._stall
        if stall is not None:
            stall.released.set()

    def take_stall(self) -> _Stall | None:
        with self._lock:
            stall = self._stall
            if stall is None or not stall.armed:
                return None
            stall.armed = False
        stall.entered.set()
        return stall

    def message_ids(self, to: str | None = None) -> list[str]:
        """Message-IDs of all accepted transactions (duplicates included), optionally to ``to``."""
        with self._lock:
            received = list(self.received)
        return [
            str(message["Message-ID"])
            for message in received
            if to is None or to.lower() in str(message["To"]).lower()
        ]

    def record(self, message: EmailMessage, envelope: Envelope) -> None:
        with self._lock:
            self.received.append(message)
            message_id = message["Message-ID"]
            delivered = {str(m["Message-ID"]) for m in self.messages}
            if self.suppress_duplicates and message_id is not None and message_id in delivered:
                return
            self.messages.append(message)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))

    def client_ssl_context(self) -> ssl.SSLContext:
        """An SSL context for clients that trusts this server's self-signed certificate."""
        if self._certificate is None:
            raise RuntimeError("this server was started without TLS")
        return self._certificate.client_context()

    def __enter__(self) -> SmtpServer:
        controller_options: dict[str, Any] = {}
        if self.tls != "none":
            self._tempdir = tempfile.TemporaryDirectory(prefix="smtp-tls-")
            self._certificate = SelfSignedCertificate.generate(Path(self._tempdir.name))
            server_context = self._certificate.server_context()
            if self.tls == "starttls":
                controller_options.update(tls_context=server_context, require_starttls=True)
            else:
                controller_options["ssl_context"] = server_context
        if self.username is not None:
            controller_options.update(
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=self.tls != "none",
            )
        self.port = free_port()
        self._controller = Controller(
            _RecordingHandler(self),
            hostname=self.host,
            port=self.port,
            server_hostname="smtp.test.local",
            **controller_options,
        )
        self._controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def _authenticate(
        self,
        server: SMTPProtocol,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        valid = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        if valid:
            with self._lock:
                self.authenticated_logins.append(str(self.username))
        return AuthResult(success=valid, handled=False)
