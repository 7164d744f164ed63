"""SmtpConnection against real peers on loopback: Postfix smtp-sink and a small TLS peer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.certs import client_context_trusting, make_self_signed, server_context
from tests.peers import SmtpSink, free_port

from mailwright.delivery.smtp import (
    ClientTimeouts,
    ConnectFailed,
    ConnectionLost,
    ResponseTimeout,
    SmtpConnection,
    TlsHandshakeFailed,
    TlsUnavailable,
)
from mailwright.envelope import Recipient
from mailwright.errors import DeliveryError

pytestmark = [pytest.mark.integration, pytest.mark.postfix]

RECIPIENTS = [Recipient("a@example.org"), Recipient("b@example.org")]
CONTENT = b"Subject: test\r\n\r\n.leading dot\r\n.\r\nlast line\r\n"
FAST = ClientTimeouts(connect=2.0, greeting=2.0, command=2.0, data_end=2.0, quit=1.0)


@pytest.fixture
def sink() -> Iterator[Callable[..., SmtpSink]]:
    """Start smtp-sink with the given flags on a free port; stopped after the test.

    The dumps live outside pytest's private tmp_path: run as root, smtp-sink
    writes them as nobody, who must be able to reach the directory.
    """
    base = Path(tempfile.mkdtemp(prefix="mailwright-sink-"))
    base.chmod(0o755)
    started: list[SmtpSink] = []

    def start(*flags: str) -> SmtpSink:
        started.append(SmtpSink(base / f"sink{len(started)}", extra=list(flags)).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()
    shutil.rmtree(base, ignore_errors=True)


def dumps(server: SmtpSink) -> list[str]:
    """smtp-sink's raw dump of each transaction (LF lines), oldest first."""
    files = sorted(server.dump.iterdir(), key=lambda path: path.stat().st_mtime_ns)
    return [path.read_text() for path in files]


async def connect(port: int, *, timeouts: ClientTimeouts = FAST, **options: Any) -> SmtpConnection:
    """Open a connection to 127.0.0.1:``port`` with short timeouts."""
    return await SmtpConnection.open(
        "127.0.0.1", port, helo_name="client.example", timeouts=timeouts, **options
    )


# --- smtp-sink ------------------------------------------------------------------------


async def test_pipelined_message_arrives_unstuffed_with_its_parameters(
    sink: Callable[..., SmtpSink],
) -> None:
    """A pipelined delivery reaches smtp-sink intact, with DSN and BODY parameters."""
    server = sink()
    connection = await connect(server.port)
    recipient = Recipient("a@example.org", ("SUCCESS", "FAILURE"), "rfc822;a@example.org")

    result = await connection.deliver(
        "s@example.com", [recipient], CONTENT + "é\r\n".encode(), envid="ENV1", ret="HDRS"
    )
    await connection.close()

    assert [reply.code for reply in result.final_replies] == [250]
    assert "PIPELINING" in connection.extensions
    (dump,) = dumps(server)
    assert "X-Mail-Args: <s@example.com> BODY=8BITMIME RET=HDRS ENVID=ENV1\n" in dump
    assert (
        "X-Rcpt-Args: <a@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@example.org\n" in dump
    )
    assert dump.endswith("Subject: test\n\n.leading dot\n.\nlast line\né\n\n")


async def test_without_pipelining_each_command_is_its_own_write(
    sink: Callable[..., SmtpSink], caplog: pytest.LogCaptureFixture
) -> None:
    """Against a server without PIPELINING, MAIL and each RCPT go out one by one."""
    server = sink("-p")
    caplog.set_level(logging.DEBUG, logger="mailwright.delivery")
    connection = await connect(server.port)

    result = await connection.deliver("s@example.com", RECIPIENTS, CONTENT)
    await connection.close()

    writes = [r.getMessage() for r in caplog.records if "dir=>" in r.getMessage()]
    assert [reply.code for reply in result.final_replies] == [250, 250]
    assert any("MAIL FROM" in w and "RCPT TO" not in w for w in writes)
    assert sum("RCPT TO" in w for w in writes) == 2
    assert len(dumps(server)) == 1


async def test_lmtp_gives_each_recipient_a_reply(sink: Callable[..., SmtpSink]) -> None:
    """Over LMTP every accepted recipient gets its own end-of-data reply."""
    server = sink("-L")
    connection = await connect(server.port, lmtp=True)

    result = await connection.deliver("s@example.com", RECIPIENTS, CONTENT)
    await connection.close()

    assert [reply.code for reply in result.final_replies] == [250, 250]
    assert "X-Client-Proto: LMTP" in dumps(server)[0]


async def test_many_messages_share_one_connection(sink: Callable[..., SmtpSink]) -> None:
    """Twenty messages go over one connection, which stays reusable throughout."""
    server = sink()
    connection = await connect(server.port)

    codes = []
    for number in range(20):
        content = b"Subject: %d\r\n\r\nbody\r\n" % number
        result = await connection.deliver("s@example.com", RECIPIENTS[:1], content)
        codes.append(result.final_replies[0].code)
        assert connection.reusable
    await connection.close()

    assert codes == [250] * 20
    assert len(dumps(server)) == 20
    assert not connection.reusable


@pytest.mark.parametrize(("flag", "code", "transient"), [("-r", 450, True), ("-f", 500, False)])
async def test_refused_recipients_get_the_servers_reply(
    sink: Callable[..., SmtpSink], flag: str, code: int, transient: bool
) -> None:
    """RCPT refusals come back per recipient and the connection stays usable."""
    server = sink(flag, "RCPT")
    connection = await connect(server.port)

    first = await connection.deliver("s@example.com", RECIPIENTS, CONTENT)
    second = await connection.deliver("s@example.com", RECIPIENTS[:1], CONTENT)
    reusable = connection.reusable
    await connection.close()

    assert [reply.code for reply in first.final_replies] == [code, code]
    assert first.final_replies[0].is_transient is transient
    assert [reply.code for reply in second.final_replies] == [code]
    assert reusable
    assert not any("last line" in dump for dump in dumps(server))  # no content went out


async def test_refused_end_of_data_settles_every_recipient(sink: Callable[..., SmtpSink]) -> None:
    """A 5xx after the final dot is every accepted recipient's outcome."""
    server = sink("-f", ".")
    connection = await connect(server.port)

    result = await connection.deliver("s@example.com", RECIPIENTS, CONTENT)
    await connection.close()

    assert [reply.code for reply in result.final_replies] == [500, 500]
    assert result.rcpt_replies[0].code == 250


@pytest.mark.parametrize(("flag", "code"), [("-Q", 421), ("-q", 451)])
async def test_session_dying_at_mail_is_a_lost_connection_without_partial(
    sink: Callable[..., SmtpSink], flag: str, code: int
) -> None:
    """A 421 or a hang-up as the first answer raises ConnectionLost with no partial outcome."""
    server = sink(flag, "MAIL")
    connection = await connect(server.port)

    with pytest.raises(ConnectionLost) as caught:
        await connection.deliver("s@example.com", RECIPIENTS, CONTENT)
    reusable = connection.reusable
    await connection.close()

    assert caught.value.reply.code == code
    assert caught.value.reply.is_transient
    assert caught.value.partial is None
    assert not reusable


async def test_peer_hanging_up_after_the_dot_is_a_lost_connection(
    sink: Callable[..., SmtpSink],
) -> None:
    """A disconnect instead of the end-of-data reply raises ConnectionLost with 4.4.2."""
    server = sink("-q", ".")
    connection = await connect(server.port)

    with pytest.raises(ConnectionLost) as caught:
        await connection.deliver("s@example.com", RECIPIENTS, CONTENT)
    await connection.close()

    assert caught.value.reply.status == "4.4.2"
    assert caught.value.partial is not None
    assert [reply.code for reply in caught.value.partial.final_replies] == [451, 451]
    assert not connection.reusable


async def test_connection_refused_is_a_transient_connect_failure() -> None:
    """Nothing listening gives ConnectFailed carrying 451 4.4.1 naming the host."""
    port = free_port()

    with pytest.raises(ConnectFailed) as caught:
        await connect(port)

    assert isinstance(caught.value, DeliveryError)
    assert caught.value.reply.code == 451
    assert caught.value.reply.status == "4.4.1"
    assert f"refused by 127.0.0.1:{port}" in caught.value.reply.text


async def test_silent_peer_times_out_waiting_for_the_greeting() -> None:
    """A peer that accepts the connection but never speaks raises ResponseTimeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        timeouts = ClientTimeouts(connect=2.0, greeting=0.2, quit=0.2)

        with pytest.raises(ResponseTimeout) as caught:
            await connect(port, timeouts=timeouts)

    assert caught.value.reply.is_transient
    assert "greeting" in str(caught.value)


async def test_required_tls_without_starttls_is_refused(sink: Callable[..., SmtpSink]) -> None:
    """tls="required" against a peer without STARTTLS raises TlsUnavailable."""
    server = sink()

    with pytest.raises(TlsUnavailable) as caught:
        await connect(server.port, tls="required")

    assert caught.value.reply.is_transient


# --- STARTTLS against a scripted peer ---------------------------------------------------


@dataclass
class TlsPeer:
    """A scripted SMTP server offering STARTTLS; it records what it receives."""

    context: ssl.SSLContext
    hellos: list[bool] = field(default_factory=list)  # whether each EHLO came over TLS
    messages: list[tuple[bool, bytes]] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection; STARTTLS upgrades it in place."""
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        tls = False
        writer.write(b"220 tls-peer ESMTP\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    self.hellos.append(tls)
                    offer = b"" if tls else b"250-STARTTLS\r\n"
                    writer.write(b"250-tls-peer\r\n250-PIPELINING\r\n" + offer + b"250 DSN\r\n")
                elif verb == b"STAR":
                    writer.write(b"220 2.0.0 Ready to start TLS\r\n")
                    await writer.drain()
                    await writer.start_tls(self.context)
                    tls = True
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    await writer.drain()
                    self.messages.append((tls, await reader.readuntil(b"\r\n.\r\n")))
                    writer.write(b"250 2.0.0 queued\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 bye\r\n")
                    break
                else:
                    writer.write(b"250 2.0.0 ok\r\n")
                await writer.drain()
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for localhost and 127.0.0.1."""
    return make_self_signed(tmp_path / "tls")


@pytest.fixture
async def tls_peer(certificate: tuple[Path, Path]) -> AsyncIterator[tuple[TlsPeer, int]]:
    """The scripted STARTTLS peer listening on a free loopback port."""
    peer = TlsPeer(server_context(*certificate))
    server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield peer, port
    server.close()
    await server.wait_closed()
    if peer.tasks:
        await asyncio.wait(peer.tasks, timeout=2.0)


async def test_opportunistic_starttls_encrypts_without_verifying(
    tls_peer: tuple[TlsPeer, int],
) -> None:
    """With no context the self-signed peer is accepted, EHLO is repeated inside TLS."""
    peer, port = tls_peer
    connection = await connect(port)

    result = await connection.deliver("s@example.com", RECIPIENTS, CONTENT)
    active = connection.tls_active
    await connection.close()

    assert active
    assert peer.hellos == [False, True]
    assert "STARTTLS" not in connection.extensions
    assert [reply.code for reply in result.final_replies] == [250, 250]
    assert peer.messages == [
        (True, b"Subject: test\r\n\r\n..leading dot\r\n..\r\nlast line\r\n.\r\n")
    ]


async def test_trusting_context_verifies_the_peer(
    tls_peer: tuple[TlsPeer, int], certificate: tuple[Path, Path]
) -> None:
    """A caller's context that trusts the certificate completes the handshake."""
    _, port = tls_peer
    context = client_context_trusting(certificate[0])

    connection = await connect(port, tls="required", tls_context=context)
    active = connection.tls_active
    await connection.close()

    assert active


async def test_failed_handshake_raises_and_plain_retry_works(
    tls_peer: tuple[TlsPeer, int],
) -> None:
    """A handshake the client rejects raises TlsHandshakeFailed; tls="none" then delivers."""
    peer, port = tls_peer
    verifying = ssl.create_default_context()  # does not trust the self-signed certificate

    with pytest.raises(TlsHandshakeFailed) as caught:
        await connect(port, tls_context=verifying)
    connection = await connect(port, tls="none")
    result = await connection.deliver("s@example.com", RECIPIENTS[:1], CONTENT)
    await connection.close()

    assert caught.value.reply.status == "4.7.5"
    assert not connection.tls_active
    assert result.final_replies[0].code == 250
    assert peer.messages[-1][0] is False
