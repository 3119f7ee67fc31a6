"""SmtpEmailAdapter against a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

from dataclasses import replace

import pytest

from channels.base import (
    ListUnsubscribe,
    OutboundMessage,
    PermanentChannelError,
    TransientChannelError,
)
from channels.smtp import (
    BRIDGE_ID_HEADER,
    MESSAGE_ID_DOMAIN,
    SmtpEmailAdapter,
    message_id_header,
    sender_domain,
)
from tests.support.smtp import SmtpServer, free_port

FROM_ADDRESS = "Riverside Clinic <no-reply@riverside-clinic.example.org>"
UNSUBSCRIBE_URL = (
    "https://bridge.riverside-clinic.example.org/unsubscribe/email/"
    "ImNvbW0tN2YzYzJhOTEi.aS8Xqw.3mJQ0Zp9oT1wU5yV7xR2sN4bC6dE8fG0hK"
)
UNSUBSCRIBE = ListUnsubscribe(url=UNSUBSCRIBE_URL)


def appointment_reminder(
    message_id: str = "comm-7f3c2a91", to: str = "jordan.rivera@example.net"
) -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id,
        channel="email",
        to=to,
        subject="Reminder: your appointment on 2 December",
        text="You have an appointment on Tue 2 Dec at 09:30. Reply or call to reschedule.",
        html="<p>You have an appointment on <b>Tue 2 Dec at 09:30</b>.</p>",
        list_unsubscribe=UNSUBSCRIBE,
    )


def adapter_for(server: SmtpServer, **overrides: object) -> SmtpEmailAdapter:
    options: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "from_address": FROM_ADDRESS,
        "security": "none",
        "timeout": 5.0,
    }
    options.update(overrides)
    return SmtpEmailAdapter(**options)  # type: ignore[arg-type]


def test_plain_smtp_delivers_to_the_recipient() -> None:
    with SmtpServer() as server:
        receipt = adapter_for(server).send(appointment_reminder())

    assert receipt.provider == "smtp"
    assert receipt.status == "sent"
    assert server.envelopes == [
        ("no-reply@riverside-clinic.example.org", ["jordan.rivera@example.net"])
    ]


def test_email_is_multipart_alternative_with_text_and_html() -> None:
    with SmtpServer() as server:
        adapter_for(server).send(appointment_reminder())

    received = server.messages[0]
    assert received.get_content_type() == "multipart/alternative"
    text_part = received.get_body(preferencelist=("plain",))
    html_part = received.get_body(preferencelist=("html",))
    assert text_part is not None and "Tue 2 Dec at 09:30" in text_part.get_content()
    assert html_part is not None and "<b>Tue 2 Dec at 09:30</b>" in html_part.get_content()


def test_text_only_message_is_sent_as_single_plain_part() -> None:
    message = OutboundMessage(
        message_id="comm-1",
        channel="email",
        to="pat@example.net",
        text="Hello",
        subject="Hi",
        list_unsubscribe=UNSUBSCRIBE,
    )
    with SmtpServer() as server:
        adapter_for(server).send(message)

    assert server.messages[0].get_content_type() == "text/plain"


def test_message_id_is_our_id_at_the_sender_domain_on_every_attempt() -> None:
    with SmtpServer() as server:
        adapter = adapter_for(server)
        first = adapter.send(appointment_reminder("comm-7f3c2a91"))
        again = adapter.send(appointment_reminder("comm-7f3c2a91"))

    expected = "<comm-7f3c2a91@riverside-clinic.example.org>"
    assert first.provider_message_id == again.provider_message_id == expected
    assert server.message_ids() == [expected, expected]
    assert server.received[0][BRIDGE_ID_HEADER] == "comm-7f3c2a91"


def test_a_resent_email_reaches_the_mailbox_once_because_the_message_id_repeats() -> None:
    with SmtpServer() as server:
        adapter = adapter_for(server)
        adapter.send(appointment_reminder("comm-7f3c2a91"))
        adapter.send(appointment_reminder("comm-7f3c2a91"))
        adapter.send(appointment_reminder("comm-5e2b1d04"))

    assert len(server.received) == 3
    assert [str(m["Message-ID"]) for m in server.messages] == [
        "<comm-7f3c2a91@riverside-clinic.example.org>",
        "<comm-5e2b1d04@riverside-clinic.example.org>",
    ]


def test_a_send_interrupted_while_the_server_holds_the_data_is_resent_with_the_same_id() -> None:
    with SmtpServer() as server:
        server.stall_data()
        with pytest.raises(TransientChannelError) as error:
            adapter_for(server, timeout=0.5).send(appointment_reminder("comm-7f3c2a91"))
        server.release()
        adapter_for(server).send(appointment_reminder("comm-7f3c2a91"))

    assert error.value.code == "smtp-connection"
    assert set(server.message_ids()) == {"<comm-7f3c2a91@riverside-clinic.example.org>"}
    assert len(server.messages) == 1


def test_a_send_whose_data_the_server_dropped_is_delivered_by_the_resend() -> None:
    with SmtpServer() as server:
        server.stall_data(deliver=False)
        with pytest.raises(TransientChannelError):
            adapter_for(server, timeout=0.5).send(appointment_reminder("comm-7f3c2a91"))
        server.release()
        adapter_for(server).send(appointment_reminder("comm-7f3c2a91"))

    assert [str(m["Message-ID"]) for m in server.messages] == [
        "<comm-7f3c2a91@riverside-clinic.example.org>"
    ]


@pytest.mark.parametrize(
    ("message_id", "expected"),
    [
        pytest.param("0b6f1c7e-5d2a-4c1b", "<0b6f1c7e-5d2a-4c1b@clinic.example>", id="uuid-like"),
        pytest.param("a b<c>@d", "<a=20b=3Cc=3E=40d@clinic.example>", id="unsafe-chars-escaped"),
        pytest.param("..x..y.", "<x.y@clinic.example>", id="dots-collapsed"),
    ],
)
def test_message_id_header_is_a_valid_msg_id(message_id: str, expected: str) -> None:
    assert message_id_header(message_id, "clinic.example") == expected


@pytest.mark.parametrize(
    ("from_address", "expected"),
    [
        pytest.param(FROM_ADDRESS, "riverside-clinic.example.org", id="display-name"),
        pytest.param("recordatorios@Clínica.example", "xn--clnica-4va.example", id="idn"),
        pytest.param("no-reply", MESSAGE_ID_DOMAIN, id="no-domain"),
        pytest.param("x@bad_domain!", MESSAGE_ID_DOMAIN, id="invalid-domain"),
    ],
)
def test_message_id_domain_is_the_sender_domain(from_address: str, expected: str) -> None:
    assert sender_domain(from_address) == expected


def test_starttls_is_used_when_configured() -> None:
    with SmtpServer(tls="starttls") as server:
        adapter = adapter_for(server, security="starttls", ssl_context=server.client_ssl_context())
        receipt = adapter.send(appointment_reminder())

    assert receipt.status == "sent"
    assert len(server.messages) == 1


def test_plaintext_send_to_a_server_requiring_starttls_is_rejected_by_server() -> None:
    with SmtpServer(tls="starttls") as server, pytest.raises(PermanentChannelError) as error:
        adapter_for(server, security="none").send(appointment_reminder())

    assert error.value.code == "smtp-530"
    assert server.messages == []


def test_untrusted_certificate_is_a_transient_tls_error() -> None:
    with SmtpServer(tls="starttls") as server, pytest.raises(TransientChannelError) as error:
        adapter_for(server, security="starttls").send(appointment_reminder())

    assert error.value.code == "smtp-tls"


def test_implicit_tls_delivers() -> None:
    with SmtpServer(tls="tls") as server:
        adapter = adapter_for(server, security="tls", ssl_context=server.client_ssl_context())
        adapter.send(appointment_reminder())

    assert len(server.messages) == 1


def test_auth_with_valid_credentials_delivers() -> None:
    with SmtpServer(tls="starttls", username="bridge", password="s3cret") as server:
        adapter = adapter_for(
            server,
            security="starttls",
            ssl_context=server.client_ssl_context(),
            username="bridge",
            password="s3cret",
        )
        adapter.send(appointment_reminder())

    assert server.authenticated_logins == ["bridge"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_auth_failure_is_permanent_rejected() -> None:
    with SmtpServer(username="bridge", password="s3cret") as server:
        adapter = adapter_for(server, username="bridge", password="wrong")
        with pytest.raises(PermanentChannelError) as error:
            adapter.send(appointment_reminder())

    assert error.value.reason == "rejected"
    assert error.value.code == "smtp-535"


def test_refused_recipient_is_permanent_invalid_address() -> None:
    with (
        SmtpServer(rejected_recipients=("gone@example.net",)) as server,
        pytest.raises(PermanentChannelError) as error,
    ):
        adapter_for(server).send(appointment_reminder(to="gone@example.net"))

    assert error.value.reason == "invalid-address"
    assert error.value.code == "smtp-550"


def test_refusal_messages_do_not_leak_the_address() -> None:
    with (
        SmtpServer(rejected_recipients=("gone@example.net",)) as server,
        pytest.raises(PermanentChannelError) as error,
    ):
        adapter_for(server).send(appointment_reminder(to="gone@example.net"))

    assert "gone@example.net" not in str(error.value)


def test_421_is_transient_and_a_later_retry_succeeds() -> None:
    with SmtpServer() as server:
        server.fail_next(1)
        adapter = adapter_for(server)
        with pytest.raises(TransientChannelError) as error:
            adapter.send(appointment_reminder())
        adapter.send(appointment_reminder())

    assert error.value.code == "smtp-421"
    assert len(server.messages) == 1
    assert len(server.received) == 1


def test_connection_refused_is_transient() -> None:
    adapter = SmtpEmailAdapter(
        host="127.0.0.1", port=free_port(), from_address=FROM_ADDRESS, security="none"
    )

    with pytest.raises(TransientChannelError) as error:
        adapter.send(appointment_reminder())

    assert error.value.code == "smtp-connection"


@pytest.mark.parametrize(
    "bad_address",
    [
        pytest.param("not-an-email", id="no-at-sign"),
        pytest.param("pat@example.net\r\nBcc: x@evil.example", id="header-injection"),
        pytest.param("a@example.net, b@example.net", id="two-addresses"),
    ],
)
def test_malformed_address_is_permanent_without_contacting_server(bad_address: str) -> None:
    adapter = SmtpEmailAdapter(
        host="127.0.0.1", port=free_port(), from_address=FROM_ADDRESS, security="none"
    )

    with pytest.raises(PermanentChannelError) as error:
        adapter.send(appointment_reminder(to=bad_address))

    assert error.value.reason == "invalid-address"


def test_every_email_names_the_one_click_unsubscribe_link() -> None:
    with SmtpServer() as server:
        adapter_for(server).send(appointment_reminder())

    received = server.messages[0]
    assert received["List-Unsubscribe"] == f"<{UNSUBSCRIBE_URL}>"
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_unsubscribe_header_is_not_folded_into_encoded_words() -> None:
    with SmtpServer() as server:
        adapter_for(server).send(appointment_reminder())

    as_sent = dict(server.messages[0].raw_items())["List-Unsubscribe"]
    assert " ".join(str(as_sent).split()) == f"<{UNSUBSCRIBE_URL}>"


def test_a_configured_mailbox_is_offered_after_the_link() -> None:
    message = replace(
        appointment_reminder(),
        list_unsubscribe=ListUnsubscribe(
            url=UNSUBSCRIBE_URL, mailto="unsubscribe@riverside-clinic.example.org"
        ),
    )
    with SmtpServer() as server:
        adapter_for(server).send(message)

    mailbox = "<mailto:unsubscribe@riverside-clinic.example.org?subject=unsubscribe>"
    assert server.messages[0]["List-Unsubscribe"] == f"<{UNSUBSCRIBE_URL}>, {mailbox}"


def test_a_body_closed_with_the_link_reaches_the_recipient_with_it() -> None:
    message = appointment_reminder()
    closed = replace(
        message,
        text=UNSUBSCRIBE.close_text(message.text),
        html=UNSUBSCRIBE.close_html(f"<!DOCTYPE html><html><body>{message.html}</body></html>"),
    )
    with SmtpServer() as server:
        adapter_for(server).send(closed)

    received = server.messages[0]
    text_part = received.get_body(preferencelist=("plain",))
    html_part = received.get_body(preferencelist=("html",))
    assert text_part is not None and text_part.get_content().rstrip().endswith(UNSUBSCRIBE_URL)
    assert html_part is not None
    content = html_part.get_content()
    assert content.index(f'<a href="{UNSUBSCRIBE_URL}">') < content.index("</body>")


def test_an_email_without_an_unsubscribe_link_is_refused_and_not_sent() -> None:
    with SmtpServer() as server, pytest.raises(PermanentChannelError) as refused:
        adapter_for(server).send(replace(appointment_reminder(), list_unsubscribe=None))

    assert (refused.value.code, refused.value.reason) == ("smtp-no-unsubscribe", "rejected")
    assert server.messages == []
