"""Integration tests for mailwright.server: real SMTP clients against SmtpListener on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from tests.certs import client_context_trusting, make_self_signed, server_context

from mailwright.server import ConnectionInfo, SmtpListener, new_event_loop
from mailwright.smtp import replies
from mailwright.smtp.replies import Reply
from mailwright.smtp.server import (
    AuthAttempt,
    Hello,
    MailFrom,
    MessageReceived,
    RcptTo,
    SessionSettings,
)

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
WAIT = 10.0  # bound on every wait, so a bug fails the test instead of hanging it
MESSAGE = b"From: a@sender.example\r\nTo: r@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"


@dataclass
class MemoryHandler:
    """A SessionHandler keeping messages in memory; recipients starting "reject" are refused."""

    users: dict[str, str] = field(default_factory=lambda: {"alice": "s3cret"})
    messages: list[tuple[ConnectionInfo, MessageReceived]] = field(default_factory=list)
    disconnected: list[ConnectionInfo] = field(default_factory=list)
    greeting: Reply | None = None
    fail_next_message: bool = False

    async def on_connect(self, info: ConnectionInfo) -> Reply | None:
        return self.greeting

    async def on_hello(self, info: ConnectionInfo, event: Hello) -> Reply | None:
        return None

    async def on_auth(self, info: ConnectionInfo, event: AuthAttempt) -> bool:
        return self.users.get(event.username) == event.password

    async def on_mail(self, info: ConnectionInfo, event: MailFrom) -> Reply | None:
        return None

    async def on_rcpt(self, info: ConnectionInfo, event: RcptTo) -> Reply | None:
        return replies.RELAY_DENIED if event.address.startswith("reject") else None

    async def on_message(self, info: ConnectionInfo, event: MessageReceived) -> Reply:
        if self.fail_next_message:
            self.fail_next_message = False
            raise RuntimeError("spool exploded")
        self.messages.append((info, event))
        return replies.MESSAGE_ACCEPTED

    async def on_disconnect(self, info: ConnectionInfo) -> None:
        self.disconnected.append(info)


StartListener = Callable[..., Awaitable[SmtpListener]]


@pytest.fixture
async def start_listener() -> AsyncIterator[StartListener]:
    """Start SmtpListeners on a free loopback port; stop them after the test."""
    started: list[SmtpListener] = []

    async def start(
        handler: MemoryHandler | None = None,
        settings: SessionSettings | None = None,
        tls_context: ssl.SSLContext | None = None,
        **limits: Any,
    ) -> SmtpListener:
        listener = SmtpListener(
            "test",
            "mx",
            HOST,
            0,
            handler or MemoryHandler(),
            settings or SessionSettings("mx.test"),
            tls_context,
            **limits,
        )
        await listener.start()
        started.append(listener)
        return listener

    yield start
    for listener in started:
        await listener.stop(grace=2.0)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for localhost / 127.0.0.1."""
    return make_self_signed(tmp_path / "tls")


class RawClient:
    """A line-level SMTP client on asyncio streams, for what libraries will not send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, source: str | None = None) -> RawClient:
        local = (source, 0) if source else None
        reader, writer = await asyncio.open_connection(HOST, port, local_addr=local)
        return cls(reader, writer)

    async def reply(self) -> bytes:
        """One complete (possibly multi-line) reply; b"" at EOF."""
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), WAIT)
            if not line:
                return b"".join(lines)
            lines.append(line)
            if line[3:4] != b"-":
                return b"".join(lines)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def command(self, data: bytes) -> bytes:
        await self.send(data)
        return await self.reply()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


@pytest.fixture
async def raw_clients() -> AsyncIterator[Callable[..., Awaitable[RawClient]]]:
    """Open RawClients that are closed after the test."""
    clients: list[RawClient] = []

    async def connect(port: int, source: str | None = None) -> RawClient:
        client = await RawClient.connect(port, source)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        await client.close()


def smtplib_send(port: int, recipients: list[str], content: bytes = MESSAGE) -> dict[str, Any]:
    """Send one message with the standard library's client; return refused recipients."""
    with smtplib.SMTP(HOST, port, timeout=WAIT) as client:
        refused = client.sendmail("a@sender.example", recipients, content)
        return dict(refused)


async def test_smtplib_delivers_a_message(start_listener: StartListener) -> None:
    """A message sent with smtplib reaches on_message with its envelope filled in."""
    handler = MemoryHandler()
    listener = await start_listener(handler)

    refused = await asyncio.to_thread(smtplib_send, listener.port, ["r@example.test"])

    assert refused == {}
    [(info, message)] = handler.messages
    assert message.content == MESSAGE
    assert message.envelope.sender == "a@sender.example"
    assert message.envelope.client_ip == "127.0.0.1"
    assert message.envelope.listener == "mx"
    assert message.envelope.received_at > 0
    assert info.helo_name
    assert listener.statistics().messages_accepted == 1


async def test_aiosmtplib_delivers_utf8_and_dot_lines(start_listener: StartListener) -> None:
    """aiosmtplib's message with a dot line and an SMTPUTF8 address arrives intact."""
    handler = MemoryHandler()
    listener = await start_listener(handler)
    message = EmailMessage()
    message["From"] = "jörg@sender.example"
    message["To"] = "r@example.test"
    message["Subject"] = "dots"
    message.set_content("line\n.\n..two\n")

    await aiosmtplib.send(message, hostname=HOST, port=listener.port, timeout=WAIT)

    [(_, received)] = handler.messages
    assert received.envelope.smtputf8
    assert received.envelope.sender == "jörg@sender.example"
    assert b"\r\n.\r\n..two\r\n" in received.content


async def test_pipelined_group_is_answered_in_order(
    start_listener: StartListener, raw_clients: Callable[..., Awaitable[RawClient]]
) -> None:
    """MAIL, RCPT, RCPT, DATA in one write get four replies in order (RFC 2920)."""
    handler = MemoryHandler()
    listener = await start_listener(handler)
    client = await raw_clients(listener.port)
    await client.reply()
    await client.command(b"EHLO pipe.example\r\n")

    await client.send(
        b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<r1@example.test>\r\n"
        b"RCPT TO:<reject@example.test>\r\nDATA\r\n"
    )
    answers = [await client.reply() for _ in range(4)]
    final = await client.command(b"body\r\n.\r\nQUIT\r\n")

    assert [answer[:3] for answer in answers] == [b"250", b"250", b"550", b"354"]
    assert final.startswith(b"250 2.0.0")
    assert await client.reply() == b"221 2.0.0 Bye\r\n"
    [(_, message)] = handler.messages
    assert [r.address for r in message.envelope.recipients] == ["r1@example.test"]


async def test_starttls_then_auth_with_smtplib(
    start_listener: StartListener, certificate: tuple[Path, Path]
) -> None:
    """smtplib upgrades with STARTTLS, authenticates and sends; the handler sees TLS."""
    cert, key = certificate
    handler = MemoryHandler()
    listener = await start_listener(handler, tls_context=server_context(cert, key))

    def run() -> None:
        with smtplib.SMTP(HOST, listener.port, timeout=WAIT) as client:
            client.ehlo()
            assert client.has_extn("starttls")
            client.starttls(context=client_context_trusting(cert))
            client.ehlo()
            assert not client.has_extn("starttls")
            client.login("alice", "s3cret")
            client.sendmail("a@sender.example", ["r@example.test"], MESSAGE)

    await asyncio.to_thread(run)

    [(info, message)] = handler.messages
    assert info.tls_active
    assert info.auth_user == "alice"
    assert message.envelope.auth_user == "alice"


async def test_starttls_discards_plaintext_injected_behind_it(
    start_listener: StartListener, certificate: tuple[Path, Path]
) -> None:
    """A command pipelined in plaintext behind STARTTLS is not run after the handshake."""
    cert, key = certificate
    handler = MemoryHandler()
    listener = await start_listener(handler, tls_context=server_context(cert, key))
    client = await RawClient.connect(listener.port)
    try:
        await client.reply()
        await client.command(b"EHLO c\r\n")

        ready = await client.command(b"STARTTLS\r\nMAIL FROM:<evil@x.example>\r\n")
        await client.writer.start_tls(client_context_trusting(cert))
        after = await client.command(b"EHLO c\r\n")
        mail = await client.command(b"MAIL FROM:<good@x.example>\r\n")
    finally:
        await client.close()

    assert ready.startswith(b"220 2.0.0")
    assert after.startswith(b"250-mx.test")
    assert mail.startswith(b"250 2.1.0")


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_auth_on_loopback_without_tls(start_listener: StartListener, mechanism: str) -> None:
    """On loopback AUTH is offered in plaintext; good credentials pass, bad get 535."""
    listener = await start_listener()

    def run() -> tuple[int, int]:
        with smtplib.SMTP(HOST, listener.port, timeout=WAIT) as client:
            client.ehlo()
            client.user, client.password = "alice", "wrong"
            method = client.auth_plain if mechanism == "PLAIN" else client.auth_login
            try:
                client.auth(mechanism, method)
            except smtplib.SMTPAuthenticationError as error:
                bad = error.smtp_code
            client.password = "s3cret"
            good, _ = client.auth(mechanism, method)
            return bad, good

    bad, good = await asyncio.to_thread(run)

    assert (bad, good) == (535, 235)


async def test_auth_password_is_never_logged(
    start_listener: StartListener, caplog: pytest.LogCaptureFixture
) -> None:
    """The smtpd.auth log names the user and result but never the password."""
    caplog.set_level(logging.DEBUG, logger="mailwright.smtpd")
    listener = await start_listener()

    def run() -> None:
        with smtplib.SMTP(HOST, listener.port, timeout=WAIT) as client:
            client.login("alice", "s3cret")

    await asyncio.to_thread(run)

    assert "s3cret" not in caplog.text
    assert "smtpd.auth" in caplog.text
    assert "user=alice" in caplog.text


async def test_size_limit(start_listener: StartListener) -> None:
    """A message over the limit gets 552 5.3.4, by SIZE= and by its real size."""
    listener = await start_listener(settings=SessionSettings("mx.test", max_message_size=1000))
    big = MESSAGE + b"x" * 2000 + b"\r\n"

    def run() -> tuple[int, int]:
        with smtplib.SMTP(HOST, listener.port, timeout=WAIT) as client:
            client.ehlo()
            declared, _ = client.mail("a@sender.example", ["SIZE=5000"])
            client.rset()
            client.mail("a@sender.example")
            client.rcpt("r@example.test")
            actual, _ = client.data(big)
            return declared, actual

    assert await asyncio.to_thread(run) == (552, 552)


async def test_recipient_limit(start_listener: StartListener) -> None:
    """Recipients over the limit get 452 4.5.3; the message goes to the others."""
    handler = MemoryHandler()
    listener = await start_listener(handler, settings=SessionSettings("mx.test", max_recipients=2))

    refused = await asyncio.to_thread(
        smtplib_send, listener.port, ["r1@example.test", "r2@example.test", "r3@example.test"]
    )

    assert refused == {"r3@example.test": (452, b"4.5.3 Too many recipients")}
    [(_, message)] = handler.messages
    assert len(message.envelope.recipients) == 2


async def test_total_connection_limit(
    start_listener: StartListener, raw_clients: Callable[..., Awaitable[RawClient]]
) -> None:
    """Past max_connections a new client gets 421 4.7.0 and is closed."""
    listener = await start_listener(max_connections=1)
    first = await raw_clients(listener.port)
    assert (await first.reply()).startswith(b"220")

    second = await raw_clients(listener.port)

    assert await second.reply() == b"421 4.7.0 Too many connections, try again later\r\n"
    assert await second.reply() == b""
    assert (await first.command(b"NOOP\r\n")).startswith(b"250")
    assert listener.statistics().connections_refused == 1


async def test_per_ip_connection_limit(
    start_listener: StartListener, raw_clients: Callable[..., Awaitable[RawClient]]
) -> None:
    """Past max_connections_per_ip a second client from one address is refused, others not."""
    listener = await start_listener(max_connections_per_ip=1)
    first = await raw_clients(listener.port, "127.0.0.1")
    assert (await first.reply()).startswith(b"220")

    same_ip = await raw_clients(listener.port, "127.0.0.1")
    other_ip = await raw_clients(listener.port, "127.0.0.2")

    assert (await same_ip.reply()).startswith(b"421 4.7.0 ")
    assert (await other_ip.reply()).startswith(b"220 ")


async def test_command_timeout_closes_with_421(
    start_listener: StartListener,
    raw_clients: Callable[..., Awaitable[RawClient]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client silent past command_timeout gets 421 4.4.2, is disconnected, and it is logged."""
    caplog.set_level(logging.INFO, logger="mailwright.smtpd")
    listener = await start_listener(command_timeout=0.2)
    client = await raw_clients(listener.port)
    await client.reply()
    await client.command(b"EHLO c\r\n")

    timeout_reply = await client.reply()

    assert timeout_reply == b"421 4.4.2 Timeout, closing connection\r\n"
    assert await client.reply() == b""
    for _ in range(100):  # the server logs the end after closing its side
        if "smtpd.disconnect" in caplog.text:
            break
        await asyncio.sleep(0.01)
    assert "reason=timeout" in caplog.text


async def test_a_client_trickling_a_command_is_cut_off_at_the_command_timeout(
    start_listener: StartListener, raw_clients: Callable[..., Awaitable[RawClient]]
) -> None:
    """One byte every 0.1 s never completes a command: 421 once command_timeout is up."""
    listener = await start_listener(command_timeout=0.5)
    client = await raw_clients(listener.port)
    await client.reply()
    loop = asyncio.get_running_loop()

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            for byte in b"NOOP " + b"x" * 100:
                await client.send(bytes([byte]))
                await asyncio.sleep(0.1)

    started = loop.time()
    sender = asyncio.create_task(trickle())
    answer = await client.reply()
    elapsed = loop.time() - started
    sender.cancel()

    assert answer == b"421 Timeout, closing connection\r\n"  # no EHLO: no enhanced code
    assert 0.5 <= elapsed < 2.0


async def test_a_client_going_silent_in_data_gets_the_data_timeout(
    start_listener: StartListener, raw_clients: Callable[..., Awaitable[RawClient]]
) -> None:
    """Content that stops arriving ends with 421 4.4.2 after data_timeout; nothing is stored."""
    handler = MemoryHandler()
    listener = await start_listener(handler, command_timeout=30, data_timeout=0.3)
    client = await raw_clients(listener.port)
    await client.reply()
    await client.command(b"EHLO c.example\r\n")
    await client.command(b"MAIL FROM:<a@sender.example>\r\n")
    await client.command(b"RCPT TO:<r@example.test>\r\n")
    assert (await client.command(b"DATA\r\n")).startswith(b"354")

    await client.send(b"Subject: half a message\r\n")
    answer = await client.reply()

    assert answer == b"421 4.4.2 Timeout, closing connection\r\n"
    assert await client.reply() == b""
    assert handler.messages == []


async def test_too_many_errors_close_the_session_and_others_go_on(
    start_listener: StartListener, raw_clients: Callable[..., Awaitable[RawClient]]
) -> None:
    """After max_errors bad commands the next one gets 421 4.7.0 and the socket closes."""
    listener = await start_listener(settings=SessionSettings("mx.test", max_errors=3))
    noisy = await raw_clients(listener.port)
    quiet = await raw_clients(listener.port)
    await noisy.reply()
    await quiet.reply()
    await noisy.command(b"EHLO noisy.example\r\n")

    answers = [await noisy.command(b"BOGUS\r\n") for _ in range(4)]

    assert [a[:9] for a in answers[:3]] == [b"500 5.5.2"] * 3
    assert answers[3].startswith(b"421 4.7.0")
    assert await noisy.reply() == b""
    assert (await quiet.command(b"NOOP\r\n")).startswith(b"250")


MALFORMED = [
    (b"FOO BAR\r\n", b"500 5.5.2"),
    (b"MAIL FROM:<not an address>\r\n", b"501 5.1.7"),
    (b"MAIL FROM:<a@b.example> WHAT=1\r\n", b"555 5.5.4"),
    (b"RCPT TO:<r@example.test>\r\n", b"503 5.5.1"),
    (b"NO\x00OP\r\n", b"500 5.5.2"),
    (b"NOOP " + b"x" * 3000 + b"\r\n", b"500 5.5.2 Line too long"),
    (b"\xff\xfe\xfd\r\n", b"500 5.5.2"),
    (b"DATA\r\n", b"503 5.5.1"),
    (b"MAIL FROM:<a@b.example>\r\n", b"250 2.1.0"),
    (b"RCPT TO:<@>\r\n", b"501 5.1.3"),
    ("RCPT TO:<jörg@example.test>\r\n".encode(), b"553 5.6.7"),
    (b"DATA\r\n", b"554 5.5.1"),
    (b"BDAT nonsense\r\n", b"501 5.5.4"),
    ("BDAT ²\r\n".encode(), b"501 5.5.4"),
    (b"BDAT 99999999999999999999\r\n", b"501 5.5.4"),
    (b"BDAT 3 LAST extra\r\n", b"501 5.5.4"),
    (b"MAIL FROM:<a@b.example>\r\n", b"503 5.5.1"),
    (b"RSET\r\n", b"250 2.0.0"),
    (b"MAIL FROM:<a@b.example> SIZE=99999999999\r\n", b"552 5.3.4"),
    (b"MAIL FROM:<a@b.example> SIZE=\xb2\r\n", b"500 5.5.2"),
    ("MAIL FROM:<a@b.example> SIZE=²\r\n".encode(), b"501 5.5.4"),
    (b"VRFY root\r\n", b"252 2.5.0"),
    (b"EXPN staff\r\n", b"502 5.5.1"),
]


async def test_malformed_input_corpus_while_another_client_is_served(
    start_listener: StartListener, raw_clients: Callable[..., Awaitable[RawClient]]
) -> None:
    """Each bad command gets its code, and a concurrent client keeps sending mail."""
    handler = MemoryHandler()
    listener = await start_listener(handler, settings=SessionSettings("mx.test", max_errors=100))
    bad = await raw_clients(listener.port)
    await bad.reply()
    await bad.command(b"EHLO bad.example\r\n")

    async def good_client() -> None:
        for number in range(5):
            message = EmailMessage()
            message["From"] = "a@sender.example"
            message["To"] = f"r{number}@example.test"
            message.set_content("fine")
            await aiosmtplib.send(message, hostname=HOST, port=listener.port, timeout=WAIT)

    good = asyncio.create_task(good_client())
    answers = [await bad.command(line) for line, _ in MALFORMED]
    await asyncio.wait_for(good, WAIT)

    for (line, expected), answer in zip(MALFORMED, answers, strict=True):
        assert answer.startswith(expected), (line[:40], answer)
    assert len(handler.messages) == 5


async def test_bad_content_is_refused_after_its_end_and_nul_passes_intact(
    start_listener: StartListener, raw_clients: Callable[..., Awaitable[RawClient]]
) -> None:
    """An overlong DATA line fails the message with 500 5.5.2; a NUL octet is kept as sent."""
    handler = MemoryHandler()
    listener = await start_listener(handler, settings=SessionSettings("mx.test"))
    client = await raw_clients(listener.port)
    await client.reply()
    await client.command(b"EHLO c.example\r\n")
    envelope = b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<r@example.test>\r\nDATA\r\n"

    await client.send(envelope)
    [await client.reply() for _ in range(3)]
    long_line = await client.command(b"Subject: x\r\n\r\n" + b"y" * 9000 + b"\r\n.\r\n")
    await client.send(envelope)
    [await client.reply() for _ in range(3)]
    with_nul = await client.command(b"Subject: x\r\n\r\nnul\x00byte\r\n.\r\n")

    assert long_line.startswith(b"500 5.5.2")
    assert with_nul.startswith(b"250")
    [(_, message)] = handler.messages
    assert message.content.endswith(b"nul\x00byte\r\n")


async def test_slow_client_delivers_byte_by_byte(
    start_listener: StartListener, raw_clients: Callable[..., Awaitable[RawClient]]
) -> None:
    """A client dribbling commands and data in tiny pieces is served correctly."""
    handler = MemoryHandler()
    listener = await start_listener(handler)
    client = await raw_clients(listener.port)
    await client.reply()
    wire = b"HELO slow.example\r\nMAIL FROM:<a@sender.example>\r\nRCPT TO:<r@example.test>\r\n"

    for start in range(0, len(wire), 3):
        await client.send(wire[start : start + 3])
        await asyncio.sleep(0.001)
    replies_so_far = [await client.reply() for _ in range(3)]
    assert (await client.command(b"DATA\r\n")).startswith(b"354")
    body = MESSAGE + b"..dot\r\n.\r\n"
    for start in range(0, len(body), 2):
        await client.send(body[start : start + 2])
    final = await client.reply()

    assert [reply[:3] for reply in replies_so_far] == [b"250"] * 3
    assert final == b"250 Message accepted\r\n"
    [(_, message)] = handler.messages
    assert message.content == MESSAGE + b".dot\r\n"


async def test_failing_handler_gets_451_and_session_goes_on(
    start_listener: StartListener,
) -> None:
    """When on_message raises, the client gets 451 4.3.0 and may try again."""
    handler = MemoryHandler(fail_next_message=True)
    listener = await start_listener(handler)

    def run() -> int:
        with smtplib.SMTP(HOST, listener.port, timeout=WAIT) as client:
            try:
                client.sendmail("a@sender.example", ["r@example.test"], MESSAGE)
            except smtplib.SMTPDataError as error:
                code = error.smtp_code
            client.sendmail("a@sender.example", ["r@example.test"], MESSAGE)
            return code

    assert await asyncio.to_thread(run) == 451
    assert len(handler.messages) == 1
    assert listener.statistics().messages_refused == 1


async def test_greeting_refusal_from_on_connect(
    start_listener: StartListener, raw_clients: Callable[..., Awaitable[RawClient]]
) -> None:
    """on_connect returning 554 refuses the session; only QUIT is then accepted."""
    listener = await start_listener(MemoryHandler(greeting=replies.SERVICE_UNAVAILABLE))
    client = await raw_clients(listener.port)

    greeting = await client.reply()
    ehlo = await client.command(b"EHLO c\r\n")
    bye = await client.command(b"QUIT\r\n")

    assert greeting == b"554 Service not available\r\n"
    assert ehlo.startswith(b"503")
    assert bye.startswith(b"221")


async def test_stop_sends_421_to_idle_clients(
    start_listener: StartListener, raw_clients: Callable[..., Awaitable[RawClient]]
) -> None:
    """stop() answers idle sessions 421 4.3.2, then closes them and reports disconnect."""
    handler = MemoryHandler()
    listener = await start_listener(handler)
    client = await raw_clients(listener.port)
    await client.reply()
    await client.command(b"EHLO c\r\n")

    await listener.stop(grace=2.0)

    assert await client.reply() == b"421 4.3.2 Service shutting down\r\n"
    assert await client.reply() == b""
    assert len(handler.disconnected) == 1
    assert listener.statistics().connections_current == 0


async def test_statistics_and_logs_count_connections(
    start_listener: StartListener, caplog: pytest.LogCaptureFixture
) -> None:
    """statistics() counts connections; connect and a plain disconnect are logged (DEBUG)."""
    caplog.set_level(logging.DEBUG, logger="mailwright.smtpd")
    listener = await start_listener()

    await asyncio.to_thread(smtplib_send, listener.port, ["r@example.test"])
    await asyncio.to_thread(smtplib_send, listener.port, ["r@example.test"])
    for _ in range(100):  # the server side may still be closing the second connection
        if listener.statistics().connections_current == 0:
            break
        await asyncio.sleep(0.01)

    stats = listener.statistics()
    assert (stats.connections_total, stats.connections_current) == (2, 0)
    assert stats.messages_accepted == 2
    assert caplog.text.count("smtpd.connect session=") == 2
    assert caplog.text.count("smtpd.disconnect session=") == 2
    assert caplog.text.count("reason=quit messages=1 errors=0") == 2


def test_listener_serves_starttls_and_auth_on_uvloop(certificate: tuple[Path, Path]) -> None:
    """On the production loop (uvloop via new_event_loop) STARTTLS, AUTH and a message work."""
    cert, key = certificate
    handler = MemoryHandler()

    async def scenario() -> type:
        listener = SmtpListener(
            "test", "submission", HOST, 0, handler, SessionSettings("mx.test"),
            server_context(cert, key),
        )  # fmt: skip
        await listener.start()

        def run() -> None:
            with smtplib.SMTP(HOST, listener.port, timeout=WAIT) as client:
                client.starttls(context=client_context_trusting(cert))
                client.login("alice", "s3cret")
                client.sendmail("a@sender.example", ["r@example.test"], MESSAGE)

        try:
            await asyncio.to_thread(run)
        finally:
            await listener.stop(grace=2.0)
        return type(asyncio.get_running_loop())

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        loop_type = runner.run(scenario())

    assert loop_type.__module__.startswith("uvloop")
    [(info, message)] = handler.messages
    assert (info.tls_active, info.auth_user) == (True, "alice")
    assert message.envelope.listener == "submission"
