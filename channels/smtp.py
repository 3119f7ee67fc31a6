"""Email delivery through any SMTP relay (Postfix, SES/SendGrid SMTP endpoints, Mailpit).

SMTP is the lowest common denominator every hospital mail team can give us, so email goes
through plain :mod:`smtplib`. Server replies are mapped onto the channel contract: 4xx and
connection problems are transient, a refused recipient is a permanent bad address, a failed
login is a permanent rejection. Server reply text is never put into errors or logs because
relays echo the recipient address back.

**Never lost, at most one copy.** Every email carries a ``Message-ID`` derived from our
message id and the sender's domain (``<{message_id}@{domain of FROM}>``), the same on every
attempt. SMTP cannot be asked what it delivered, so after a crash mid-send (a row left in
``sending``) the message is sent again with that same Message-ID instead of being written
off: receiving systems that suppress duplicates (Gmail, Cyrus ``duplicatesuppression``,
Sieve ``duplicate``, ``formail -D``) keep one copy, and with any other the patient gets a
second identical email rather than none. The adapter tries once per call; retrying is the
delivery loop's job.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from email import policy
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Literal

from channels.base import (
    ChannelAdapter,
    ListUnsubscribe,
    OutboundMessage,
    PermanentChannelError,
    SendReceipt,
    TransientChannelError,
)

logger = logging.getLogger(__name__)

SmtpSecurity = Literal["none", "starttls", "tls"]

MESSAGE_ID_DOMAIN = "fhir-bridge.invalid"
"""Right-hand side of the Message-ID when the sender address has no usable domain."""
BRIDGE_ID_HEADER = "X-FHIR-Bridge-Message-Id"
LIST_UNSUBSCRIBE_HEADER = "List-Unsubscribe"
LIST_UNSUBSCRIBE_POST_HEADER = "List-Unsubscribe-Post"
ONE_CLICK = "List-Unsubscribe=One-Click"
_NOT_DOT_ATOM = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")
_URI_UNSAFE = re.compile(r"[\s<>,\"]")
_DOMAIN = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
# A signed unsubscribe URL is one long word: folded at the usual 78 columns, Python would
# turn it into RFC 2047 encoded-words, which mail clients do not decode in List-Unsubscribe.
# 998 is RFC 5322's hard line limit, so nothing long enough to matter needs folding.
_POLICY = policy.default.clone(max_line_length=998)


def message_id_header(message_id: str, domain: str = MESSAGE_ID_DOMAIN) -> str:
    """Return the RFC 5322 Message-ID we use for ``message_id``: ``<{message_id}@{domain}>``.

    Deterministic, so a resent email carries the same Message-ID and receiving systems
    collapse the duplicate. Characters outside dot-atom are escaped as ``=XX``.
    """
    left = _NOT_DOT_ATOM.sub(lambda match: f"={ord(match.group()):02X}", message_id)
    left = re.sub(r"\.{2,}", ".", left).strip(".") or "empty"
    return f"<{left}@{domain}>"


def sender_domain(from_address: str) -> str:
    """The domain of the sender address (``"Clinic <a@b.org>"`` → ``b.org``), lower-cased.

    Falls back to :data:`MESSAGE_ID_DOMAIN` when the address has no valid DNS domain.
    """
    _name, address = parseaddr(from_address)
    _local, at, domain = address.rpartition("@")
    domain = domain.strip().lower().rstrip(".")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return MESSAGE_ID_DOMAIN
    if not at or not domain or len(domain) > 253 or not _DOMAIN.match(domain):
        return MESSAGE_ID_DOMAIN
    return domain


class SmtpEmailAdapter(ChannelAdapter):
    """Send multipart/alternative (text + optional HTML) email through an SMTP relay."""

    provider = "smtp"
    channel = "email"
    resend_is_safe = True

    def __init__(
        self,
        *,
        host: str,
        port: int,
        from_address: str,
        security: SmtpSecurity = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Configure the relay; ``ssl_context`` overrides the system trust store (private CA)."""
        if security not in ("none", "starttls", "tls"):
            raise ValueError(f"unknown SMTP security mode {security!r}")
        self.host = host
        self.port = port
        self.from_address = from_address
        self.security: SmtpSecurity = security
        self.username = username
        self.password = password
        self.timeout = timeout
        self.ssl_context = ssl_context

    def send(self, message: OutboundMessage) -> SendReceipt:
        """Deliver one email in one SMTP session; the receipt's id is the Message-ID.

        A 4xx reply, timeout or broken connection raises :class:`TransientChannelError`
        (the delivery loop resends later, with the same Message-ID).
        """
        if message.channel != self.channel:
            raise PermanentChannelError("channel-mismatch", reason="rejected")
        if message.list_unsubscribe is None:
            logger.warning(
                "email without an unsubscribe link refused message_id=%s", message.message_id
            )
            raise PermanentChannelError(
                "smtp-no-unsubscribe", reason="rejected", detail="no List-Unsubscribe link"
            )
        email = self.build_email(message)
        try:
            with self._connect() as connection:
                self._secure_and_login(connection)
                connection.send_message(email)
        except smtplib.SMTPRecipientsRefused as refused:
            raise _recipient_refused_error(refused) from None
        except smtplib.SMTPAuthenticationError as auth_error:
            logger.warning("smtp login rejected message_id=%s", message.message_id)
            raise PermanentChannelError(
                f"smtp-{auth_error.smtp_code}", reason="rejected", detail="authentication failed"
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise TransientChannelError(
                "smtp-unsupported", detail="server lacks a required extension (STARTTLS/AUTH)"
            ) from None
        except smtplib.SMTPResponseException as response_error:
            raise _reply_error(response_error.smtp_code) from None
        except ssl.SSLError as tls_error:
            raise TransientChannelError("smtp-tls", detail=type(tls_error).__name__) from None
        except (smtplib.SMTPException, OSError) as connection_error:
            raise TransientChannelError(
                "smtp-connection", detail=type(connection_error).__name__
            ) from None
        logger.info("smtp accepted message_id=%s", message.message_id)
        return SendReceipt(
            provider=self.provider, provider_message_id=email["Message-ID"], status="sent"
        )

    def build_email(self, message: OutboundMessage) -> EmailMessage:
        """Build the MIME message: text part always, HTML alternative when provided.

        With ``list_unsubscribe`` the email carries ``List-Unsubscribe`` (the signed HTTPS
        link, plus the mailbox when configured) and ``List-Unsubscribe-Post`` (RFC 8058
        one-click).
        """
        email = EmailMessage(policy=_POLICY)
        try:
            email["To"] = _single_address(message.to)
        except (ValueError, IndexError, HeaderParseError):
            raise PermanentChannelError("smtp-bad-address", reason="invalid-address") from None
        email["From"] = self.from_address
        email["Subject"] = " ".join((message.subject or "").split())
        email["Date"] = formatdate(localtime=False, usegmt=True)
        email["Message-ID"] = message_id_header(
            message.message_id, sender_domain(self.from_address)
        )
        email[BRIDGE_ID_HEADER] = message.message_id
        links = message.list_unsubscribe
        if links is not None:
            email[LIST_UNSUBSCRIBE_HEADER] = list_unsubscribe_header(links)
            email[LIST_UNSUBSCRIBE_POST_HEADER] = ONE_CLICK
        email.set_content(message.text)
        if message.html:
            email.add_alternative(message.html, subtype="html")
        return email

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self._tls_context()
            )
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)

    def _secure_and_login(self, connection: smtplib.SMTP) -> None:
        connection.ehlo()
        if self.security == "starttls":
            connection.starttls(context=self._tls_context())
            connection.ehlo()
        if self.username is not None:
            connection.login(self.username, self.password or "")

    def _tls_context(self) -> ssl.SSLContext:
        return self.ssl_context or ssl.create_default_context()


def list_unsubscribe_header(links: ListUnsubscribe) -> str:
    """The RFC 2369 header value: the HTTPS link first, then the optional mailbox."""
    if _URI_UNSAFE.search(links.url) or not links.url.lower().startswith(("https://", "http://")):
        raise PermanentChannelError("smtp-bad-unsubscribe", reason="rejected")
    parts = [f"<{links.url}>"]
    if links.mailto:
        try:
            mailbox = _single_address(links.mailto)
        except (ValueError, IndexError, HeaderParseError):
            raise PermanentChannelError("smtp-bad-unsubscribe", reason="rejected") from None
        parts.append(f"<mailto:{mailbox}?subject=unsubscribe>")
    return ", ".join(parts)


def _single_address(raw: str) -> str:
    """Validate that ``raw`` is exactly one addr-spec (blocks header injection)."""
    if "\n" in raw or "\r" in raw or "," in raw:
        raise ValueError("not a single address")
    address = Address(addr_spec=raw.strip())
    if not address.username or not address.domain:
        raise ValueError("address needs a local part and a domain")
    return str(address)


def _recipient_refused_error(refused: smtplib.SMTPRecipientsRefused) -> Exception:
    codes = [code for code, _reply in refused.recipients.values()]
    code = codes[0] if codes else 550
    if 400 <= code < 500:
        return TransientChannelError(f"smtp-{code}", detail="recipient temporarily refused")
    return PermanentChannelError(
        f"smtp-{code}", reason="invalid-address", detail="recipient refused"
    )


def _reply_error(code: int) -> Exception:
    if 400 <= code < 500 or code < 0:
        return TransientChannelError(f"smtp-{code}", detail="temporary server reply")
    return PermanentChannelError(f"smtp-{code}", reason="rejected", detail="server refused")
