"""The client engine talking to the server engine in memory, no sockets involved."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mailwright.envelope import Recipient
from mailwright.smtp import server_events
from mailwright.smtp.client import (
    NEED_DATA,
    ClientSession,
    Closed,
    Ehlo,
    Event,
    Greeting,
    TransactionDone,
)
from mailwright.smtp.replies import MESSAGE_ACCEPTED, MESSAGE_TOO_BIG, Reply
from mailwright.smtp.server import ServerSession
from mailwright.smtp.server_settings import SessionSettings

UNKNOWN_USER = Reply(550, "5.1.1", "No such user")


@dataclass
class Wire:
    """Client and server engines joined in memory; the server accepts all but ``refuse``."""

    settings: SessionSettings = field(default_factory=lambda: SessionSettings("mx.example.net"))
    refuse: set[str] = field(default_factory=set)
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
            reply = None
            if isinstance(event, server_events.RcptTo) and event.address in self.refuse:
                reply = UNKNOWN_USER
            if isinstance(event, server_events.MessageReceived):
                self.received.append(event)
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
    """With PIPELINING the client writes the command group once and the body once."""
    wire = Wire()
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


@settings(max_examples=60)
@given(TRICKY_LINES)
def test_tricky_content_round_trips(lines: list[bytes]) -> None:
    """Whatever lines the content holds, the server engine receives exactly them."""
    content = b"".join(line + b"\r\n" for line in lines)
    wire = Wire()
    wire.hello()

    result = wire.send(content, "a@example.org")

    assert result.final_replies == [MESSAGE_ACCEPTED]
    assert wire.received[0].content == content
