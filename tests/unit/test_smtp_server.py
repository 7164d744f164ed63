"""Tests for mailwright.smtp.server: the sans-IO server session driven with bytes."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwright.smtp import replies
from mailwright.smtp.replies import Reply
from mailwright.smtp.server import (
    NEED_DATA,
    AuthAttempt,
    Closed,
    Hello,
    MailFrom,
    MessageReceived,
    ProtocolError,
    Quit,
    RcptTo,
    ServerSession,
    SessionSettings,
    SessionUsageError,
    StartTLS,
    State,
)
from mailwright.smtp.server_events import DECISION_EVENTS, Event

REPLY_LINE = re.compile(rb"[2-5][0-9][0-9][ -][^\r\n]*\r\n")
Decide = Callable[[Event], Reply | None]


def accept_all(event: Event) -> Reply | None:
    """The default decision: the session's positive reply."""
    return None


class Client:
    """Drives a ServerSession as an adapter would, recording events."""

    def __init__(self, decide: Decide = accept_all, **overrides: Any) -> None:
        self.session = ServerSession(SessionSettings("mx.example", **overrides))
        self.decide = decide
        self.events: list[Event] = []
        self.session.greet()
        self.greeting = self.session.data_to_send()

    def send(self, data: bytes) -> bytes:
        """Give ``data`` to the session, answer every decision, return what it wrote."""
        self.session.receive_data(data)
        self.pump()
        return self.session.data_to_send()

    def pump(self) -> None:
        """Take events until the session needs data or is closed."""
        while True:
            event = self.session.next_event()
            if event is NEED_DATA:
                return
            self.events.append(event)
            if isinstance(event, Closed):
                return
            if isinstance(event, DECISION_EVENTS):
                self.session.respond(event, self.decide(event))

    def of_type(self, kind: type) -> list[Any]:
        """The recorded events of one type."""
        return [event for event in self.events if isinstance(event, kind)]


def codes(output: bytes) -> list[str]:
    """The final line of each reply as "code status" (or just the code)."""
    found = []
    for line in output.split(b"\r\n"):
        if len(line) >= 4 and line[3:4] == b" ":
            parts = line.decode().split(" ")
            status = parts[1] if len(parts) > 1 and re.fullmatch(r"\d\.\d+\.\d+", parts[1]) else ""
            found.append(f"{parts[0]} {status}".strip())
    return found


def ehlo_client(**overrides: Any) -> Client:
    """A client that has said EHLO."""
    client = Client(**overrides)
    client.send(b"EHLO client.example\r\n")
    return client


def transaction(client: Client) -> bytes:
    """Open a transaction with one recipient; return the replies."""
    return client.send(b"MAIL FROM:<s@a.example>\r\nRCPT TO:<r@b.example>\r\n")


def plain(user: str, password: str, authzid: str = "") -> str:
    """An AUTH PLAIN response."""
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


class TestGreetingAndHello:
    def test_greeting_is_220_with_hostname(self) -> None:
        """greet() queues 220 naming the host."""
        client = Client()

        assert client.greeting == b"220 mx.example ESMTP mailwright\r\n"

    def test_greet_twice_is_a_usage_error(self) -> None:
        """greet() may be called once."""
        client = Client()

        with pytest.raises(SessionUsageError):
            client.session.greet()

    def test_refusal_greeting_accepts_only_quit(self) -> None:
        """After a 554 greeting every command but QUIT gets 503 (RFC 5321 §3.1)."""
        session = ServerSession(SessionSettings("mx.example"))
        session.greet(replies.SERVICE_UNAVAILABLE)
        session.receive_data(b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nQUIT\r\n")

        events = [session.next_event() for _ in range(4)]

        assert session.data_to_send() == (
            b"554 Service not available\r\n503 Service refused, only QUIT is accepted\r\n"
            b"503 Service refused, only QUIT is accepted\r\n221 Bye\r\n"
        )
        assert isinstance(events[2], Quit)
        assert isinstance(events[3], Closed)

    def test_ehlo_lists_extensions(self) -> None:
        """EHLO advertises every enabled extension, AUTH only where allowed."""
        client = Client(auth_allowed=True, max_message_size=1000)

        out = client.send(b"EHLO client.example\r\n")

        assert out == (
            b"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n"
            b"250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-BINARYMIME\r\n"
            b"250-DSN\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250 HELP\r\n"
        )
        assert client.of_type(Hello) == [Hello("EHLO", "client.example")]

    def test_ehlo_hides_auth_before_tls_when_not_allowed(self) -> None:
        """With auth_allowed false and no TLS, AUTH is not offered."""
        out = Client().send(b"EHLO c\r\n")

        assert b"AUTH" not in out
        assert b"STARTTLS" in out

    def test_ehlo_over_tls_offers_auth_and_not_starttls(self) -> None:
        """Inside TLS, STARTTLS disappears and AUTH appears."""
        out = Client(tls_active=True).send(b"EHLO c\r\n")

        assert b"STARTTLS" not in out
        assert b"AUTH PLAIN LOGIN" in out

    def test_disabled_extensions_are_not_advertised(self) -> None:
        """Switching extensions off removes their keywords."""
        out = Client(
            pipelining=False, chunking=False, dsn=False, smtputf8=False, eightbitmime=False
        ).send(b"EHLO c\r\n")

        for keyword in (b"PIPELINING", b"CHUNKING", b"DSN", b"SMTPUTF8", b"8BITMIME"):
            assert keyword not in out

    def test_helo_gets_plain_250_and_no_enhanced_codes(self) -> None:
        """After HELO replies carry no enhanced status codes (RFC 2034 §3)."""
        client = Client()

        assert client.send(b"HELO c\r\n") == b"250 mx.example\r\n"
        assert client.send(b"NOOP\r\n") == b"250 OK\r\n"

    def test_enhanced_codes_after_ehlo(self) -> None:
        """After EHLO replies carry enhanced status codes."""
        client = ehlo_client()

        assert client.send(b"NOOP\r\n") == b"250 2.0.0 OK\r\n"

    def test_ehlo_without_argument_gets_501(self) -> None:
        """EHLO needs a domain or address literal."""
        assert codes(Client().send(b"EHLO\r\n")) == ["501"]

    def test_rejected_hello_keeps_session_unhelloed(self) -> None:
        """A negative reply to Hello is sent and MAIL still needs a hello."""
        client = Client(decide=lambda event: Reply(550, "5.7.1", "go away"))

        out = client.send(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\n")

        assert out == b"550 go away\r\n503 Send EHLO or HELO first\r\n"


class TestCommandErrors:
    @pytest.mark.parametrize(
        ("line", "expected"),
        [
            (b"FOO\r\n", "500 5.5.2"),
            (b"NO\0OP\r\n", "500 5.5.2"),
            (b"NOOP\nRSET\r\n", "500 5.5.2"),
            (b"NOOP\rX\r\n", "500 5.5.2"),
            (b"\xff\xfe\r\n", "500 5.5.2"),
            (b"\r\n", "500 5.5.2"),
            (b"RCPT TO:<a@b.example>\r\n", "503 5.5.1"),
            (b"DATA\r\n", "503 5.5.1"),
            (b"MAIL FROM:a@b.example\r\n", "501 5.1.7"),
            (b"MAIL FROM:<bad address>\r\n", "501 5.1.7"),
            (b"MAIL FROM:<a@b.example> BOGUS=1\r\n", "555 5.5.4"),
            (b"MAIL TO:<a@b.example>\r\n", "501 5.5.4"),
            (b"MAIL FROM:<a@b.example> SIZE=99999999999\r\n", "552 5.3.4"),
            (b"MAIL FROM:<j\xc3\xb6rg@b.example>\r\n", "553 5.6.7"),
            (b"VRFY\r\n", "501 5.5.4"),
            (b"VRFY someone\r\n", "252 2.5.0"),
            (b"EXPN list\r\n", "502 5.5.1"),
            (b"HELP\r\n", "214 2.0.0"),
            (b"NOOP\r\n", "250 2.0.0"),
            (b"RSET\r\n", "250 2.0.0"),
            (b"AUTH PLAIN\r\n", "538 5.7.11"),
            (b"STARTTLS now\r\n", "501 5.5.4"),
            (b"BDAT x\r\n", "501 5.5.4"),
            (b"BDAT 1 LAST extra\r\n", "501 5.5.4"),
        ],
    )
    def test_each_error_gets_its_reply(self, line: bytes, expected: str) -> None:
        """Every malformed or out-of-sequence command gets its precise reply."""
        client = ehlo_client()

        assert codes(client.send(line)) == [expected]

    def test_commands_before_hello_get_503(self) -> None:
        """MAIL, RCPT, DATA, AUTH and STARTTLS before EHLO get 503 5.5.1."""
        client = Client()

        out = client.send(b"MAIL FROM:<a@b.example>\r\nSTARTTLS\r\nAUTH PLAIN\r\nDATA\r\n")

        assert out.count(b"503 Send EHLO or HELO first\r\n") == 4

    def test_protocol_errors_are_reported_as_events(self) -> None:
        """Each error the session answers itself also yields a ProtocolError event."""
        client = ehlo_client()

        client.send(b"FOO\r\n")

        [error] = client.of_type(ProtocolError)
        assert error.reply is replies.SYNTAX_ERROR
        assert "FOO" in error.detail

    def test_too_long_command_line_gets_line_too_long(self) -> None:
        """A line over max_command_line is answered 500 and skipped; the next works."""
        client = ehlo_client(max_command_line=100)

        out = client.send(b"NOOP " + b"x" * 200 + b"\r\nNOOP\r\n")

        assert out == b"500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n"

    def test_endless_command_line_is_answered_before_it_ends(self) -> None:
        """A line without CRLF over the limit is answered at once and not buffered."""
        client = ehlo_client(max_command_line=100)

        out = client.send(b"x" * 150)
        out += client.send(b"y" * 500)
        out += client.send(b"\r\nNOOP\r\n")

        assert out == b"500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n"
        assert len(client.session._buffer) == 0

    def test_too_many_errors_close_with_421(self) -> None:
        """Past max_errors the session answers 421 4.7.0 and closes."""
        client = ehlo_client(max_errors=3)

        out = client.send(b"FOO\r\n" * 5)

        assert codes(out) == ["500 5.5.2"] * 3 + ["421 4.7.0"]
        assert isinstance(client.events[-1], Closed)
        assert client.session.state is State.CLOSED

    def test_eof_closes_the_session(self) -> None:
        """receive_data(b"") means the client went away: Closed."""
        client = ehlo_client()

        client.send(b"")

        assert isinstance(client.events[-1], Closed)


class TestTransaction:
    def test_full_transaction_yields_message_with_envelope(self) -> None:
        """MAIL, RCPT, DATA produce MessageReceived with content and envelope."""
        client = ehlo_client()

        out = client.send(
            b"MAIL FROM:<s@a.example> RET=HDRS ENVID=e1\r\n"
            b"RCPT TO:<r@b.example> NOTIFY=FAILURE ORCPT=rfc822;r@b.example\r\n"
            b"DATA\r\n"
        )
        out += client.send(b"Subject: hi\r\n\r\nbody\r\n.\r\n")

        assert codes(out) == ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0"]
        [message] = client.of_type(MessageReceived)
        assert message.content == b"Subject: hi\r\n\r\nbody\r\n"
        envelope = message.envelope
        assert envelope.sender == "s@a.example"
        assert [r.address for r in envelope.recipients] == ["r@b.example"]
        assert envelope.recipients[0].notify == ("FAILURE",)
        assert envelope.recipients[0].orcpt == "rfc822;r@b.example"
        assert (envelope.ret, envelope.envid, envelope.client_name) == (
            "HDRS",
            "e1",
            "client.example",
        )

    def test_pipelined_group_is_answered_in_one_output(self) -> None:
        """MAIL, RCPT, RCPT, DATA sent at once get four replies in one write (RFC 2920)."""
        client = ehlo_client()

        out = client.send(
            b"MAIL FROM:<s@a.example>\r\nRCPT TO:<r1@b.example>\r\n"
            b"RCPT TO:<r2@b.example>\r\nDATA\r\n"
        )

        assert codes(out) == ["250 2.1.0", "250 2.1.5", "250 2.1.5", "354"]

    def test_message_and_next_commands_in_one_read(self) -> None:
        """Commands pipelined after the end of data are processed after the message."""
        client = ehlo_client()
        transaction(client)

        out = client.send(b"DATA\r\n")
        out += client.send(b"x\r\n.\r\nMAIL FROM:<s2@a.example>\r\nQUIT\r\n")

        assert codes(out) == ["354", "250 2.0.0", "250 2.1.0", "221 2.0.0"]
        assert isinstance(client.events[-1], Closed)

    def test_dot_stuffed_lines_are_unstuffed(self) -> None:
        """Lines starting with a dot lose it in the stored content."""
        client = ehlo_client()
        transaction(client)

        client.send(b"DATA\r\n..hidden\r\n.\r\n")

        [message] = client.of_type(MessageReceived)
        assert message.content == b".hidden\r\n"

    def test_rejected_mail_leaves_no_transaction(self) -> None:
        """A negative reply to MailFrom means RCPT gets 503."""

        def decide(event: Event) -> Reply | None:
            return replies.RELAY_DENIED if isinstance(event, MailFrom) else None

        client = ehlo_client(decide=decide)

        out = transaction(client)

        assert codes(out) == ["550 5.7.1", "503 5.5.1"]

    def test_rejected_recipient_is_not_added(self) -> None:
        """A negative reply to RcptTo keeps the recipient out; DATA then gets 554."""

        def decide(event: Event) -> Reply | None:
            return replies.RELAY_DENIED if isinstance(event, RcptTo) else None

        client = ehlo_client(decide=decide)
        transaction(client)

        assert codes(client.send(b"DATA\r\n")) == ["554 5.5.1"]

    def test_data_without_recipients_gets_554(self) -> None:
        """DATA after MAIL but no accepted RCPT gets 554 5.5.1 (RFC 2920 §3)."""
        client = ehlo_client()

        out = client.send(b"MAIL FROM:<s@a.example>\r\nDATA\r\n")

        assert codes(out) == ["250 2.1.0", "554 5.5.1"]

    def test_nested_mail_gets_503(self) -> None:
        """A second MAIL inside a transaction gets 503 5.5.1."""
        client = ehlo_client()
        transaction(client)

        assert client.send(b"MAIL FROM:<x@a.example>\r\n") == (
            b"503 5.5.1 Sender already given, RSET first\r\n"
        )

    def test_size_over_limit_gets_552_and_no_transaction(self) -> None:
        """SIZE= over the limit is refused with 552 5.3.4 before any event."""
        client = ehlo_client(max_message_size=1000)

        out = client.send(b"MAIL FROM:<s@a.example> SIZE=1001\r\nRCPT TO:<r@b.example>\r\n")

        assert codes(out) == ["552 5.3.4", "503 5.5.1"]
        assert client.of_type(MailFrom) == []

    def test_recipient_limit_gets_452_and_is_no_error(self) -> None:
        """Recipients over max_recipients get 452 4.5.3 and do not count as errors."""
        client = ehlo_client(max_recipients=2, max_errors=1)
        client.send(b"MAIL FROM:<s@a.example>\r\n")

        out = client.send(b"".join(b"RCPT TO:<r%d@b.example>\r\n" % n for n in range(5)))

        assert codes(out) == ["250 2.1.5", "250 2.1.5"] + ["452 4.5.3"] * 3
        assert client.session.error_count == 0

    def test_oversize_data_is_refused_after_the_end(self) -> None:
        """DATA over the limit is read to its end and answered 552 5.3.4."""
        client = ehlo_client(max_message_size=100)
        transaction(client)

        out = client.send(b"DATA\r\n" + b"x" * 60 + b"\r\n" + b"y" * 60 + b"\r\n.\r\nNOOP\r\n")

        assert codes(out) == ["354", "552 5.3.4", "250 2.0.0"]
        assert client.of_type(MessageReceived) == []

    def test_rset_clears_the_transaction(self) -> None:
        """RSET forgets MAIL and RCPT."""
        client = ehlo_client()
        transaction(client)

        out = client.send(b"RSET\r\nDATA\r\n")

        assert codes(out) == ["250 2.0.0", "503 5.5.1"]

    def test_ehlo_resets_the_transaction(self) -> None:
        """A new EHLO ends the open transaction (RFC 5321 §4.1.4)."""
        client = ehlo_client()
        transaction(client)

        out = client.send(b"EHLO again\r\nDATA\r\n")

        assert codes(out)[-1] == "503 5.5.1"

    def test_message_reply_comes_from_the_adapter(self) -> None:
        """The adapter's reply to MessageReceived is sent and the transaction ends."""

        def decide(event: Event) -> Reply | None:
            return replies.SPOOL_FULL if isinstance(event, MessageReceived) else None

        client = ehlo_client(decide=decide)
        transaction(client)

        out = client.send(b"DATA\r\nx\r\n.\r\nRCPT TO:<r@b.example>\r\n")

        assert codes(out) == ["354", "452 4.3.1", "503 5.5.1"]

    def test_utf8_transaction(self) -> None:
        """With SMTPUTF8 non-ASCII addresses pass and the envelope records it."""
        client = ehlo_client()

        client.send(
            "MAIL FROM:<jörg@bücher.example> SMTPUTF8\r\nRCPT TO:<δ@π.example>\r\n".encode()
        )
        client.send(b"DATA\r\nx\r\n.\r\n")

        [message] = client.of_type(MessageReceived)
        assert message.envelope.smtputf8 is True
        assert message.envelope.recipients[0].address == "δ@π.example"

    def test_quit_replies_221_and_closes(self) -> None:
        """QUIT gets 221, then the Quit and Closed events."""
        client = ehlo_client()

        out = client.send(b"QUIT\r\nNOOP\r\n")

        assert out == b"221 2.0.0 Bye\r\n"
        assert isinstance(client.events[-2], Quit)
        assert isinstance(client.events[-1], Closed)


SMUGGLING_ENDINGS = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r", b"\n.\r"]


@pytest.mark.parametrize("ending", SMUGGLING_ENDINGS)
def test_smtp_smuggling_bare_end_of_data_variants_are_content(ending: bytes) -> None:
    """A smuggled second message behind a bare end-of-data variant is never executed."""
    client = ehlo_client()
    transaction(client)

    out = client.send(
        b"DATA\r\nSubject: one\r\n\r\nhello" + ending + b"MAIL FROM:<evil@x.example>\r\n"
        b"RCPT TO:<victim@y.example>\r\nDATA\r\nSubject: smuggled\r\n\r\nboo\r\n.\r\n"
    )

    assert codes(out) == ["354", "550 5.6.11"]
    assert [event.address for event in client.of_type(MailFrom)] == ["s@a.example"]
    assert client.of_type(MessageReceived) == []


@pytest.mark.parametrize("ending", SMUGGLING_ENDINGS)
def test_smtp_smuggling_normalize_mode_stores_one_message(ending: bytes) -> None:
    """In normalize mode the smuggling attempt becomes part of one stored message."""
    client = ehlo_client(bare_line_endings="normalize")
    transaction(client)

    client.send(b"DATA\r\nhello" + ending + b"MAIL FROM:<evil@x.example>\r\n.\r\n")

    [message] = client.of_type(MessageReceived)
    assert b"MAIL FROM:<evil@x.example>" in message.content
    assert len(client.of_type(MailFrom)) == 1


class TestBdat:
    def test_chunks_make_a_message(self) -> None:
        """BDAT chunks are acknowledged and LAST yields the message (RFC 3030)."""
        client = ehlo_client()
        transaction(client)

        out = client.send(b"BDAT 7\r\nhello\r\nBDAT 7 LAST\r\nworld\r\n")

        assert codes(out) == ["250 2.0.0", "250 2.0.0"]
        [message] = client.of_type(MessageReceived)
        assert message.content == b"hello\r\nworld\r\n"

    def test_chunk_may_arrive_in_pieces_and_hold_command_text(self) -> None:
        """Chunk octets are never read as commands, however they arrive."""
        client = ehlo_client()
        transaction(client)

        client.send(b"BDAT 17 LAST\r\nQUIT\r\n")
        client.send(b"\r\n.\r\nRSE")
        out = client.send(b"T\r\nNOOP\r\n")

        [message] = client.of_type(MessageReceived)
        assert message.content == b"QUIT\r\n\r\n.\r\nRSET\r\n"
        assert client.of_type(Quit) == []
        assert codes(out) == ["250 2.0.0", "250 2.0.0"]

    def test_bdat_zero_last_ends_the_message(self) -> None:
        """BDAT 0 LAST ends a chunked message."""
        client = ehlo_client()
        transaction(client)

        client.send(b"BDAT 4\r\nab\r\n")
        client.send(b"BDAT 0 LAST\r\n")

        [message] = client.of_type(MessageReceived)
        assert message.content == b"ab\r\n"

    def test_refused_bdat_still_swallows_its_octets(self) -> None:
        """BDAT without MAIL consumes its chunk, then answers 503 (RFC 3030 §2)."""
        client = ehlo_client()

        out = client.send(b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n")

        assert codes(out) == ["503 5.5.1", "250 2.0.0"]
        assert client.of_type(Quit) == []

    def test_oversize_chunks_get_552_and_end_the_transaction(self) -> None:
        """Chunks over the limit get 552 5.3.4; later chunks get 503."""
        client = ehlo_client(max_message_size=10)
        transaction(client)

        out = client.send(b"BDAT 20\r\n" + b"x" * 20 + b"BDAT 2 LAST\r\nab")

        assert codes(out) == ["552 5.3.4", "503 5.5.1"]

    def test_bdat_bare_lf_is_refused(self) -> None:
        """Bare LF in non-binary BDAT content is refused with 550 5.6.11."""
        client = ehlo_client()
        transaction(client)

        out = client.send(b"BDAT 4 LAST\r\na\nb\n")

        assert codes(out) == ["550 5.6.11"]

    def test_binarymime_requires_bdat(self) -> None:
        """DATA in a BODY=BINARYMIME transaction gets 503; BDAT carries any octets."""
        client = ehlo_client()
        client.send(b"MAIL FROM:<s@a.example> BODY=BINARYMIME\r\nRCPT TO:<r@b.example>\r\n")

        assert codes(client.send(b"DATA\r\n")) == ["503 5.5.1"]
        client.send(b"BDAT 3 LAST\r\n\0\n\r")
        [message] = client.of_type(MessageReceived)
        assert message.content == b"\0\n\r"
        assert message.envelope.body == "BINARYMIME"

    def test_data_between_chunks_gets_503(self) -> None:
        """DATA after a BDAT chunk is out of sequence."""
        client = ehlo_client()
        transaction(client)

        out = client.send(b"BDAT 1\r\nxDATA\r\n")

        assert codes(out) == ["250 2.0.0", "503 5.5.1"]

    def test_bdat_when_chunking_is_off_gets_502(self) -> None:
        """Without CHUNKING, BDAT is not implemented but its octets are still swallowed."""
        client = ehlo_client(chunking=False)
        transaction(client)

        out = client.send(b"BDAT 6\r\nNOOP\r\nNOOP\r\n")

        assert codes(out) == ["502 5.5.1", "250 2.0.0"]


class TestStartTls:
    def test_starttls_discards_pipelined_plaintext_command_injection(self) -> None:
        """Commands pipelined behind STARTTLS are dropped, not run inside TLS (CVE-2011-0411)."""
        client = ehlo_client()

        out = client.send(b"STARTTLS\r\nMAIL FROM:<evil@x.example>\r\n")
        client.session.receive_data(b"RCPT TO:<injected@x.example>\r\n")
        client.session.tls_started()
        out += client.send(b"MAIL FROM:<s@a.example>\r\n")

        assert codes(out) == ["220 2.0.0", "503"]
        assert client.of_type(MailFrom) == []

    def test_tls_started_resets_all_state(self) -> None:
        """After TLS the client must say EHLO again; AUTH state and helo are forgotten."""
        client = ehlo_client(auth_allowed=True)
        client.send(f"AUTH PLAIN {plain('u', 'p')}\r\n".encode())
        client.send(b"STARTTLS\r\n")

        client.session.tls_started()

        assert client.session.state is State.GREETED
        assert client.session.auth_user is None
        assert client.session.hello_name is None
        assert client.session.tls_active

    def test_refused_starttls_keeps_pipelined_commands(self) -> None:
        """When the adapter answers 454, buffered commands are still served."""

        def decide(event: Event) -> Reply | None:
            return replies.TLS_UNAVAILABLE if isinstance(event, StartTLS) else None

        client = ehlo_client(decide=decide)

        out = client.send(b"STARTTLS\r\nNOOP\r\n")

        assert codes(out) == ["454 4.7.0", "250 2.0.0"]

    def test_starttls_inside_tls_gets_503(self) -> None:
        """A second STARTTLS is refused."""
        client = ehlo_client(tls_active=True)

        assert codes(client.send(b"STARTTLS\r\n")) == ["503 5.5.1"]

    def test_starttls_not_offered_gets_502(self) -> None:
        """STARTTLS when not offered is not implemented."""
        client = ehlo_client(offer_starttls=False)

        assert codes(client.send(b"STARTTLS\r\n")) == ["502 5.5.1"]

    def test_starttls_in_transaction_gets_503(self) -> None:
        """STARTTLS inside a mail transaction is out of sequence."""
        client = ehlo_client()
        transaction(client)

        assert codes(client.send(b"STARTTLS\r\n")) == ["503 5.5.1"]

    def test_tls_started_without_starttls_is_a_usage_error(self) -> None:
        """tls_started() is only legal after an accepted STARTTLS."""
        with pytest.raises(SessionUsageError):
            ehlo_client().session.tls_started()


class TestAuth:
    def test_plain_with_initial_response(self) -> None:
        """AUTH PLAIN with an initial response yields the credentials at once."""
        client = ehlo_client(auth_allowed=True)

        out = client.send(f"AUTH PLAIN {plain('user', 'secret', 'admin')}\r\n".encode())

        assert codes(out) == ["235 2.7.0"]
        assert client.of_type(AuthAttempt) == [AuthAttempt("PLAIN", "admin", "user", "secret")]
        assert client.session.auth_user == "user"

    def test_plain_with_continuation(self) -> None:
        """AUTH PLAIN without initial response gets 334 and reads the next line."""
        client = ehlo_client(auth_allowed=True)

        out = client.send(b"AUTH PLAIN\r\n")
        out += client.send(f"{plain('user', 'pw')}\r\n".encode())

        assert out == b"334 \r\n235 2.7.0 Authentication succeeded\r\n"

    def test_login_asks_for_user_and_password(self) -> None:
        """AUTH LOGIN sends the Username: and Password: challenges."""
        client = ehlo_client(auth_allowed=True)

        out = client.send(b"AUTH LOGIN\r\n")
        out += client.send(base64.b64encode(b"user") + b"\r\n")
        out += client.send(base64.b64encode(b"pw") + b"\r\n")

        assert out == (
            b"334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication succeeded\r\n"
        )
        assert client.of_type(AuthAttempt) == [AuthAttempt("LOGIN", "", "user", "pw")]

    def test_login_with_initial_user_name(self) -> None:
        """AUTH LOGIN with an initial response skips the Username: challenge."""
        client = ehlo_client(auth_allowed=True)

        out = client.send(b"AUTH LOGIN " + base64.b64encode(b"user") + b"\r\n")

        assert out == b"334 UGFzc3dvcmQ6\r\n"

    def test_star_cancels(self) -> None:
        """A "*" response cancels with 501 5.0.0 and is no error."""
        client = ehlo_client(auth_allowed=True, max_errors=0)

        out = client.send(b"AUTH LOGIN\r\n*\r\nNOOP\r\n")

        assert codes(out) == ["334", "501 5.0.0", "250 2.0.0"]

    @pytest.mark.parametrize(
        "line",
        [b"AUTH PLAIN !!!\r\n", b"AUTH PLAIN\r\n\xff\r\n", b"AUTH PLAIN\r\nnot base64\r\n"],
    )
    def test_bad_base64_gets_501(self, line: bytes) -> None:
        """An undecodable response gets 501 5.5.2."""
        client = ehlo_client(auth_allowed=True)

        assert codes(client.send(line))[-1] == "501 5.5.2"
        assert client.session.state is State.READY

    def test_malformed_plain_gets_501(self) -> None:
        """A PLAIN response without two NULs is malformed."""
        client = ehlo_client(auth_allowed=True)
        response = base64.b64encode(b"user-and-password").decode()

        out = client.send(f"AUTH PLAIN {response}\r\n".encode())

        assert out == b"501 5.5.2 Malformed authentication response\r\n"

    def test_unknown_mechanism_gets_504(self) -> None:
        """A mechanism not offered gets 504 5.5.4."""
        client = ehlo_client(auth_allowed=True)

        assert codes(client.send(b"AUTH CRAM-MD5\r\n")) == ["504 5.5.4"]

    def test_failed_credentials_get_the_adapter_reply(self) -> None:
        """When the adapter refuses, its reply is sent and no user is set."""

        def decide(event: Event) -> Reply | None:
            return replies.AUTH_FAILED if isinstance(event, AuthAttempt) else None

        client = ehlo_client(auth_allowed=True, decide=decide)

        out = client.send(f"AUTH PLAIN {plain('u', 'wrong')}\r\n".encode())

        assert codes(out) == ["535 5.7.8"]
        assert client.session.auth_user is None

    def test_second_auth_gets_503(self) -> None:
        """AUTH after a successful AUTH is refused."""
        client = ehlo_client(auth_allowed=True)
        client.send(f"AUTH PLAIN {plain('u', 'p')}\r\n".encode())

        assert codes(client.send(b"AUTH PLAIN\r\n")) == ["503 5.5.1"]

    def test_auth_required_refuses_mail_with_530(self) -> None:
        """On submission, MAIL before AUTH gets 530 5.7.0; after AUTH it works."""
        client = ehlo_client(auth_allowed=True, auth_required=True)

        out = client.send(b"MAIL FROM:<s@a.example>\r\n")
        client.send(f"AUTH PLAIN {plain('u', 'p')}\r\n".encode())
        out += client.send(b"MAIL FROM:<s@a.example>\r\n")

        assert codes(out) == ["530 5.7.0", "250 2.1.0"]
        [message_from] = client.of_type(MailFrom)
        assert message_from.address == "s@a.example"

    def test_auth_without_mechanisms_gets_502(self) -> None:
        """With no mechanisms configured, AUTH is not implemented."""
        client = ehlo_client(auth_mechanisms=(), offer_starttls=False)

        assert codes(client.send(b"AUTH PLAIN\r\n")) == ["502 5.5.1"]

    def test_auth_after_helo_is_not_implemented(self) -> None:
        """AUTH is an ESMTP extension: after plain HELO it gets 502 and no AuthAttempt."""
        client = Client(auth_allowed=True)
        client.send(b"HELO client.example\r\n")

        out = client.send(f"AUTH PLAIN {plain('u', 'p')}\r\n".encode())

        assert out.startswith(b"502 ")
        assert client.of_type(AuthAttempt) == []
        assert client.session.auth_user is None

    def test_password_is_not_in_the_event_repr(self) -> None:
        """AuthAttempt's repr leaves the password out, so it cannot leak into logs."""
        assert "hunter2" not in repr(AuthAttempt("PLAIN", "", "user", "hunter2"))


class TestContract:
    def test_next_event_before_respond_is_a_usage_error(self) -> None:
        """A decision event must be answered before the next event."""
        session = ServerSession(SessionSettings("mx.example"))
        session.greet()
        session.receive_data(b"EHLO c\r\nNOOP\r\n")
        session.next_event()

        with pytest.raises(SessionUsageError):
            session.next_event()

    def test_respond_to_another_event_is_a_usage_error(self) -> None:
        """respond() must be given the very event that awaits an answer."""
        session = ServerSession(SessionSettings("mx.example"))
        session.greet()
        session.receive_data(b"EHLO c\r\n")
        session.next_event()

        with pytest.raises(SessionUsageError):
            session.respond(Hello("EHLO", "c"), None)

    def test_close_sends_last_reply_and_closes(self) -> None:
        """close(TIMEOUT) queues 421 4.4.2 and the session reports Closed."""
        client = ehlo_client()

        client.session.close(replies.TIMEOUT)

        assert client.session.data_to_send() == b"421 4.4.2 Timeout, closing connection\r\n"
        assert isinstance(client.session.next_event(), Closed)

    def test_reading_content_is_true_during_data(self) -> None:
        """The adapter can tell when to use its data timeout."""
        client = ehlo_client()
        transaction(client)

        client.send(b"DATA\r\npartial")

        assert client.session.reading_content
        assert client.session.state is State.DATA


def assert_valid_replies(output: bytes) -> None:
    """Every octet written is part of a well-formed reply line."""
    assert REPLY_LINE.sub(b"", output) == b""


commands = st.sampled_from(
    [
        b"EHLO c\r\n", b"HELO c\r\n", b"MAIL FROM:<a@b.example>\r\n", b"RCPT TO:<r@b.example>\r\n",
        b"DATA\r\n", b"BDAT 3\r\n", b"BDAT 2 LAST\r\n", b"RSET\r\n", b"NOOP\r\n", b".\r\n",
        b"AUTH PLAIN\r\n", b"AUTH LOGIN\r\n", b"STARTTLS\r\n", b"*\r\n", b"\r\n", b"\n.\n",
        b"QUIT\r\n", b"VRFY x\r\n",
    ]
)  # fmt: skip


@settings(max_examples=300)
@given(st.lists(st.one_of(commands, st.binary(max_size=30)), max_size=30))
def test_arbitrary_input_never_raises_and_replies_are_valid(chunks: list[bytes]) -> None:
    """Any byte sequence, in any split, yields only well-formed replies and no exception."""
    client = Client(auth_allowed=True, max_errors=50, max_command_line=64, max_message_size=50)
    output = client.greeting

    for chunk in chunks:
        if client.session.state is State.TLS:
            client.session.tls_started()
        output += client.send(chunk)

    assert_valid_replies(output)


verbs = st.sampled_from(
    ["EHLO", "HELO", "MAIL FROM:", "RCPT TO:", "BDAT", "AUTH", "DATA", "VRFY", "NOOP", "RSET"]
)
arguments = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20
)


@settings(max_examples=400)
@given(st.lists(st.tuples(verbs, arguments), max_size=12))
def test_any_unicode_argument_never_raises(lines: list[tuple[str, str]]) -> None:
    """Commands with arbitrary Unicode arguments (digits like ² included) get replies, no crash."""
    client = Client(auth_allowed=True, max_errors=50)
    output = client.greeting
    client.send(b"EHLO c\r\n")

    for verb, argument in lines:
        output += client.send(f"{verb} {argument}\r\n".encode())

    assert_valid_replies(output)


def test_bdat_size_in_other_scripts_digits_is_a_syntax_error() -> None:
    """RFC 3030 sizes are ASCII digits: "²" and Arabic-Indic "٣" get 501, not a crash."""
    client = ehlo_client()
    transaction(client)

    superscript = client.send("BDAT ²\r\n".encode())
    arabic = client.send("BDAT ٣ LAST\r\n".encode())

    assert superscript.startswith(b"501 5.5.4")
    assert arabic.startswith(b"501 5.5.4")


@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"")), max_size=20))
def test_data_content_round_trips_through_dot_stuffing(lines: list[bytes]) -> None:
    """Any LF-free lines sent dot-stuffed through DATA arrive exactly as they were."""
    lines = [line.replace(b"\n", b"") for line in lines]
    content = b"".join(line + b"\r\n" for line in lines)
    stuffed = b"".join(
        (b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines
    )
    client = ehlo_client()
    transaction(client)

    client.send(b"DATA\r\n" + stuffed + b".\r\n")

    [message] = client.of_type(MessageReceived)
    assert message.content == content
