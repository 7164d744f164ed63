"""The client engine talking to the server engine in memory, no sockets involved."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwright.envelope import Recipient
from mailwright.smtp import server_events
from mailwright.smtp.client import (
    BINARYMIME_UNSUPPORTED,
    NEED_DATA,
    ClientSession,
    Closed,
    Ehlo,
    Event,
    Greeting,
    TlsRefused,
    TransactionDone,
)
from mailwright.smtp.replies import (
    BARE_LINE_ENDING,
    MAIL_FIRST,
    MESSAGE_ACCEPTED,
    MESSAGE_TOO_BIG,
    RECIPIENT_OK,
    RELAY_DENIED,
    SENDER_OK,
    TLS_UNAVAILABLE,
    TOO_MANY_CONNECTIONS,
    TOO_MANY_RECIPIENTS,
    Reply,
)
from mailwright.smtp.server import ServerSession, State
from mailwright.smtp.server_settings import SessionSettings

UNKNOWN_USER = Reply(550, "5.1.1", "No such user")
NO_CHUNKING = SessionSettings("mx.example.net", chunking=False)


@dataclass
class Wire:
    """Client and server engines joined in memory.

    The server accepts everything but the recipients in ``refuse`` and the
    events whose type ``decisions`` answers; a 421 there is not a respond()
    but the adapter ending the session with that reply (``ServerSession.close``).
    """

    settings: SessionSettings = field(default_factory=lambda: SessionSettings("mx.example.net"))
    refuse: set[str] = field(default_factory=set)
    decisions: dict[type[server_events.Event], Reply] = field(default_factory=dict)
    client: ClientSession = field(default_factory=lambda: ClientSession("client.example"))
    received: list[server_events.MessageReceived] = field(default_factory=list)
    server_errors: list[server_events.ProtocolError] = field(default_factory=list)
    client_writes: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.server = ServerSession(self.settings)
        self.server.greet()

    def run(self) -> list[Event]:
        """Shuttle bytes both ways until neither side has anything to say."""
        events: list[Event] = []
        while True:
            replies = self.server.data_to_send()
            if replies:
                self.client.receive_data(replies)
            while (event := self.client.next_event()) is not NEED_DATA:
                events.append(event)

            commands = self.client.data_to_send()
            if commands:
                self.client_writes.append(commands)
                self.server.receive_data(commands)
                self._serve()
            elif not replies:
                return events

    def _serve(self) -> None:
        """Answer every server event: accept, except for recipients in ``refuse``."""
        while True:
            event = self.server.next_event()
            if event is server_events.NEED_DATA or isinstance(
                event, server_events.Quit | server_events.Closed
            ):
                return
            if isinstance(event, server_events.ProtocolError):
                self.server_errors.append(event)
                continue
            reply = self.decisions.get(type(event))
            if isinstance(event, server_events.RcptTo) and event.address in self.refuse:
                reply = UNKNOWN_USER
            if isinstance(event, server_events.MessageReceived):
                self.received.append(event)
            if reply is not None and reply.code == 421:
                self.server.close(reply)
                return
            self.server.respond(event, reply)

    def hello(self) -> list[Event]:
        """Greeting and EHLO."""
        events = self.run()
        self.client.ehlo()
        return events + self.run()

    def send(self, content: bytes, *recipients: str, **options: Any) -> TransactionDone:
        """One transaction from s@example.com; returns its outcome."""
        self.client.send_message(
            "s@example.com",
            [Recipient(address) for address in recipients],
            content,
            **options,
        )
        (done,) = [event for event in self.run() if isinstance(event, TransactionDone)]
        return done


def test_plain_message_arrives_with_its_envelope() -> None:
    """Without pipelining, a message reaches the server engine with content and envelope."""
    wire = Wire(SessionSettings("mx.example.net", pipelining=False))
    hello = wire.hello()

    result = wire.send(b"Subject: hi\r\n\r\nHello\r\n", "a@example.org", "b@example.org")

    assert isinstance(hello[0], Greeting)
    assert isinstance(hello[1], Ehlo)
    assert "PIPELINING" not in hello[1].extensions
    assert result.final_replies == [MESSAGE_ACCEPTED, MESSAGE_ACCEPTED]
    (message,) = wire.received
    assert message.content == b"Subject: hi\r\n\r\nHello\r\n"
    assert message.envelope.sender == "s@example.com"
    assert [r.address for r in message.envelope.recipients] == ["a@example.org", "b@example.org"]
    assert wire.server_errors == []


def test_pipelined_transaction_takes_two_writes() -> None:
    """With PIPELINING but no CHUNKING the client writes the commands once, the body once."""
    wire = Wire(NO_CHUNKING)
    wire.hello()
    writes_before = len(wire.client_writes)

    result = wire.send(b"x\r\n", "a@example.org", "b@example.org", "c@example.org")

    group, body = wire.client_writes[writes_before:]
    assert group.count(b"RCPT TO:") == 3
    assert group.endswith(b"DATA\r\n")
    assert body == b"x\r\n.\r\n"
    assert [reply.code for reply in result.final_replies] == [250, 250, 250]


def test_many_messages_on_one_session() -> None:
    """Fifty messages go through one session, each arriving intact."""
    wire = Wire()
    wire.hello()

    results = [wire.send(b"Subject: %d\r\n\r\nbody\r\n" % n, "a@example.org") for n in range(50)]

    assert all(result.final_replies == [MESSAGE_ACCEPTED] for result in results)
    assert [m.content for m in wire.received] == [
        b"Subject: %d\r\n\r\nbody\r\n" % n for n in range(50)
    ]


def test_refused_recipients_and_the_rset_that_follows() -> None:
    """A refused recipient keeps its refusal; after a transaction with none accepted, RSET
    lets the next message through on the same session."""
    wire = Wire(refuse={"nobody@example.org"})
    wire.hello()

    mixed = wire.send(b"one\r\n", "nobody@example.org", "a@example.org")
    none_accepted = wire.send(b"two\r\n", "nobody@example.org")
    after = wire.send(b"three\r\n", "a@example.org")

    assert mixed.final_replies == [UNKNOWN_USER, MESSAGE_ACCEPTED]
    assert none_accepted.final_replies == [UNKNOWN_USER]
    assert after.final_replies == [MESSAGE_ACCEPTED]
    assert [m.content for m in wire.received] == [b"one\r\n", b"three\r\n"]
    assert [[r.address for r in m.envelope.recipients] for m in wire.received] == [
        ["a@example.org"],
        ["a@example.org"],
    ]
    assert any(write.startswith(b"RSET\r\n") for write in wire.client_writes)
    assert [error.reply.code for error in wire.server_errors] == [554]  # the pipelined DATA


def test_parameters_reach_the_server() -> None:
    """SMTPUTF8, BODY=8BITMIME and the DSN parameters arrive in the server's envelope."""
    wire = Wire()
    wire.hello()
    recipient = Recipient("josé@example.org", ("SUCCESS", "FAILURE"), "rfc822;jose@example.org")

    wire.client.send_message(
        "s@example.com", [recipient], "Subject: olé\r\n\r\n".encode(), envid="E1", ret="HDRS"
    )
    wire.run()

    (message,) = wire.received
    envelope = message.envelope
    assert envelope.smtputf8
    assert envelope.body == "8BITMIME"
    assert (envelope.envid, envelope.ret) == ("E1", "HDRS")
    assert envelope.recipients == [recipient]


def test_message_larger_than_the_servers_size_never_leaves() -> None:
    """The server's SIZE limit makes the client refuse the message without a MAIL command."""
    wire = Wire(SessionSettings("mx.example.net", max_message_size=100))
    wire.hello()
    writes_before = len(wire.client_writes)

    result = wire.send(b"x" * 200 + b"\r\n", "a@example.org")

    assert result.final_replies == [MESSAGE_TOO_BIG]
    assert len(wire.client_writes) == writes_before


def test_bare_line_feeds_are_sent_as_crlf() -> None:
    """Content with bare LF is normalised by the client, so the strict server accepts it."""
    wire = Wire()
    wire.hello()

    result = wire.send(b"a\nb\r\n.\nc", "a@example.org")

    assert result.final_replies == [MESSAGE_ACCEPTED]
    assert wire.received[0].content == b"a\r\nb\r\n.\r\nc\r\n"


def test_quit_closes_the_session() -> None:
    """QUIT is answered with 221 and the client reports Closed."""
    wire = Wire()
    wire.hello()

    wire.client.quit()
    events = wire.run()

    assert len(events) == 1
    assert isinstance(events[0], Closed)
    assert events[0].reply is not None
    assert events[0].reply.code == 221


TRICKY_LINES = st.lists(
    st.one_of(
        st.sampled_from([b"", b".", b"..", b".x", b"x.", b" .", b"From x", b"\xc3\xa9"]),
        st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    ),
    max_size=30,
)


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
@settings(max_examples=60)
@given(lines=TRICKY_LINES)
def test_tricky_content_round_trips(chunking: bool, lines: list[bytes]) -> None:
    """Whatever lines the content holds, the server engine receives exactly them."""
    content = b"".join(line + b"\r\n" for line in lines)
    wire = Wire(SessionSettings("mx.example.net", chunking=chunking))
    wire.hello()

    result = wire.send(content, "a@example.org")

    assert result.final_replies == [MESSAGE_ACCEPTED]
    assert wire.received[0].content == content


# --- CHUNKING (RFC 3030) ------------------------------------------------------------

DOTTED = b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nafter the lone dot\r\n"
BINARY = b"\x00\x01 binary\nbare LF\rbare CR\r\n\xff\xfe\x00"


def test_bdat_round_trip_needs_one_write_and_no_stuffing() -> None:
    """With CHUNKING and PIPELINING the whole transaction is one write; dotted lines arrive."""
    wire = Wire()
    hello = wire.hello()
    writes_before = len(wire.client_writes)

    result = wire.send(DOTTED, "a@example.org", "b@example.org")

    (write,) = wire.client_writes[writes_before:]
    assert isinstance(hello[1], Ehlo)
    assert "CHUNKING" in hello[1].extensions
    assert write.endswith(b"BDAT %d LAST\r\n" % len(DOTTED) + DOTTED)
    assert b"DATA" not in write
    assert result.rcpt_replies == [RECIPIENT_OK, RECIPIENT_OK]
    assert result.final_replies == [MESSAGE_ACCEPTED, MESSAGE_ACCEPTED]
    (message,) = wire.received
    assert message.content == DOTTED
    assert message.envelope.body == "7BIT"
    assert wire.client.is_ready
    assert wire.server.state is State.READY
    assert wire.server_errors == []


def test_bdat_without_pipelining_waits_for_the_last_rcpt_reply() -> None:
    """Without PIPELINING the chunk goes in its own write, after the RCPT replies."""
    wire = Wire(SessionSettings("mx.example.net", pipelining=False))
    wire.hello()
    writes_before = len(wire.client_writes)

    result = wire.send(DOTTED, "a@example.org", "b@example.org")

    writes = wire.client_writes[writes_before:]
    assert [write.split(b" ")[0] for write in writes] == [b"MAIL", b"RCPT", b"RCPT", b"BDAT"]
    assert writes[-1] == b"BDAT %d LAST\r\n" % len(DOTTED) + DOTTED
    assert result.final_replies == [MESSAGE_ACCEPTED, MESSAGE_ACCEPTED]
    assert wire.received[0].content == DOTTED
    assert wire.server.state is State.READY


def test_binarymime_content_arrives_byte_identical() -> None:
    """Binary content with NUL, bare LF and bare CR crosses BDAT untouched (RFC 3030 §3)."""
    wire = Wire()
    wire.hello()
    writes_before = len(wire.client_writes)

    result = wire.send(BINARY, "a@example.org", binary=True)

    (write,) = wire.client_writes[writes_before:]
    assert write.startswith(b"MAIL FROM:<s@example.com> SIZE=%d BODY=BINARYMIME\r\n" % len(BINARY))
    assert result.final_replies == [MESSAGE_ACCEPTED]
    (message,) = wire.received
    assert message.content == BINARY
    assert message.envelope.body == "BINARYMIME"
    assert wire.server_errors == []


def test_binarymime_content_for_a_server_without_chunking_never_leaves() -> None:
    """Binary content is refused locally when the server cannot take BDAT."""
    wire = Wire(NO_CHUNKING)
    wire.hello()
    writes_before = len(wire.client_writes)

    result = wire.send(BINARY, "a@example.org", binary=True)

    assert result.final_replies == [BINARYMIME_UNSUPPORTED]
    assert len(wire.client_writes) == writes_before
    assert wire.received == []
    assert wire.client.is_ready


def test_data_is_used_when_the_server_turns_chunking_off() -> None:
    """A server without CHUNKING gets DATA, dot-stuffed, and receives the same content."""
    wire = Wire(NO_CHUNKING)
    hello = wire.hello()
    writes_before = len(wire.client_writes)

    result = wire.send(DOTTED, "a@example.org")

    group, body = wire.client_writes[writes_before:]
    assert isinstance(hello[1], Ehlo)
    assert "CHUNKING" not in hello[1].extensions
    assert group.endswith(b"DATA\r\n")
    assert b"BDAT" not in group
    assert b"\r\n...two dots\r\n" in body
    assert result.data_reply == MESSAGE_ACCEPTED
    assert result.final_replies == [MESSAGE_ACCEPTED]
    assert wire.received[0].content == DOTTED
    assert wire.server.state is State.READY


# --- Refusals crossing the engines ---------------------------------------------------


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lockstep"])
def test_mail_refused_by_a_decision_settles_every_recipient(pipelining: bool) -> None:
    """A 550 5.7.1 to MAIL is every recipient's outcome; the server reads no message."""
    wire = Wire(
        SessionSettings("mx.example.net", pipelining=pipelining),
        decisions={server_events.MailFrom: RELAY_DENIED},
    )
    wire.hello()

    result = wire.send(b"x\r\n", "a@example.org", "b@example.org")

    assert result.mail_reply == RELAY_DENIED
    assert result.final_replies == [RELAY_DENIED, RELAY_DENIED]
    assert (result.final_replies[0].code, result.final_replies[0].status) == (550, "5.7.1")
    if pipelining:  # the RCPTs and the chunk were in flight: each is a sequence error
        assert result.rcpt_replies == [MAIL_FIRST, MAIL_FIRST]
        assert result.data_reply == MAIL_FIRST
        assert [error.reply for error in wire.server_errors] == [MAIL_FIRST] * 3
    else:
        assert result.data_reply is None
        assert wire.server_errors == []
    assert wire.received == []
    assert wire.client.is_ready
    assert wire.server.state is State.READY


def test_recipient_past_the_limit_gets_452_and_the_others_the_message() -> None:
    """The recipient past max_recipients is refused with 452 4.5.3; the rest get the message."""
    wire = Wire(SessionSettings("mx.example.net", max_recipients=2))
    wire.hello()

    result = wire.send(b"x\r\n", "a@example.org", "b@example.org", "c@example.org")

    assert result.rcpt_replies == [RECIPIENT_OK, RECIPIENT_OK, TOO_MANY_RECIPIENTS]
    assert result.final_replies == [MESSAGE_ACCEPTED, MESSAGE_ACCEPTED, TOO_MANY_RECIPIENTS]
    assert (TOO_MANY_RECIPIENTS.code, TOO_MANY_RECIPIENTS.status) == (452, "4.5.3")
    assert [r.address for r in wire.received[0].envelope.recipients] == [
        "a@example.org",
        "b@example.org",
    ]
    assert wire.client.is_ready
    assert wire.server.state is State.READY


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
def test_message_grown_past_the_size_limit_is_refused_at_its_end(chunking: bool) -> None:
    """Content under SIZE that grows past it (bare LFs made CRLF) gets 552 5.3.4 at the end."""
    wire = Wire(SessionSettings("mx.example.net", max_message_size=100, chunking=chunking))
    wire.hello()
    content = b"x\n" * 50  # 100 octets as stored, 150 on the wire

    refused = wire.send(content, "a@example.org", "b@example.org")
    after = wire.send(b"small\r\n", "a@example.org")

    assert refused.rcpt_replies == [RECIPIENT_OK, RECIPIENT_OK]
    assert refused.data_reply == MESSAGE_TOO_BIG
    assert refused.final_replies == [MESSAGE_TOO_BIG, MESSAGE_TOO_BIG]
    assert (MESSAGE_TOO_BIG.code, MESSAGE_TOO_BIG.status) == (552, "5.3.4")
    assert after.final_replies == [MESSAGE_ACCEPTED]
    assert [m.content for m in wire.received] == [b"small\r\n"]
    assert wire.client.is_ready
    assert wire.server.state is State.READY


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
def test_bare_line_feed_past_a_false_crlf_check_gets_550_5_6_11(chunking: bool) -> None:
    """Content wrongly flagged crlf_checked reaches the strict server, which answers 5.6.11."""
    wire = Wire(SessionSettings("mx.example.net", chunking=chunking))
    wire.hello()

    result = wire.send(b"a\nb\r\n", "a@example.org", crlf_checked=True)

    assert result.rcpt_replies == [RECIPIENT_OK]
    assert result.final_replies == [BARE_LINE_ENDING]
    assert (BARE_LINE_ENDING.code, BARE_LINE_ENDING.status) == (550, "5.6.11")
    assert wire.received == []
    assert wire.client.is_ready
    assert wire.server.state is State.READY


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
def test_421_mid_session_settles_the_transaction_and_closes_both(chunking: bool) -> None:
    """A server closing with 421 4.7.0 during a second transaction settles it and ends both."""
    wire = Wire(SessionSettings("mx.example.net", chunking=chunking))
    wire.hello()
    first = wire.send(b"one\r\n", "a@example.org")
    wire.decisions[server_events.RcptTo] = TOO_MANY_CONNECTIONS

    wire.client.send_message("s@example.com", [Recipient("a@example.org")], b"two\r\n")
    events = wire.run()

    assert first.final_replies == [MESSAGE_ACCEPTED]
    done, closed = events
    assert isinstance(done, TransactionDone)
    assert done.mail_reply == SENDER_OK
    assert done.final_replies == [TOO_MANY_CONNECTIONS]
    assert (TOO_MANY_CONNECTIONS.code, TOO_MANY_CONNECTIONS.status) == (421, "4.7.0")
    assert closed == Closed(TOO_MANY_CONNECTIONS)
    assert [m.content for m in wire.received] == [b"one\r\n"]
    assert wire.client.is_closed
    assert wire.server.state is State.CLOSED


def test_starttls_refused_with_454_leaves_a_plain_session_that_works() -> None:
    """A server without TLS answers STARTTLS with 454 4.7.0; the client gets TlsRefused."""
    wire = Wire(decisions={server_events.StartTLS: TLS_UNAVAILABLE})
    hello = wire.hello()

    wire.client.starttls()
    events = wire.run()
    after = wire.send(b"x\r\n", "a@example.org")

    assert isinstance(hello[1], Ehlo)
    assert "STARTTLS" in hello[1].extensions
    assert events == [TlsRefused(TLS_UNAVAILABLE)]
    assert (TLS_UNAVAILABLE.code, TLS_UNAVAILABLE.status) == (454, "4.7.0")
    assert after.final_replies == [MESSAGE_ACCEPTED]
    assert wire.client.is_ready
    assert wire.server.state is State.READY
    assert not wire.server.tls_active
