"""The asyncio SMTP listener: sockets, timeouts and limits around a ServerSession.

Each connection is one loop. Ask the session for its next event; on
``NEED_DATA`` write every queued reply in one go (so a pipelined group gets
one write, RFC 2920 §3) and read more; on a decision event ask the
:class:`~mailwright.server.handler.SessionHandler` and answer. The protocol
itself lives in :mod:`mailwright.smtp.server` and is tested without sockets;
what is here is only what needs the network and the clock:

- connection limits, total and per client address: over either, 421 4.7.0
  and close (RFC 5321 §3.8 lets a server refuse service with 421);
- timeouts (RFC 5321 §4.5.3.2): ``command_timeout`` while waiting for a
  command (the RFC asks at least five minutes), ``data_timeout`` while
  content is arriving; on expiry 421 4.4.2 and close;
- STARTTLS with :meth:`Stream.start_tls`, with plaintext read before the
  handshake thrown away (RFC 3207 §4.2); AUTH offered only after TLS or to
  loopback peers;
- a graceful :meth:`SmtpListener.stop`: idle clients get 421 4.3.2 at once,
  busy ones may finish their message for a grace period;
- logs under ``mailwright.smtpd`` with stable event names (``smtpd.connect``,
  ``smtpd.disconnect``, ``smtpd.refused``, ``smtpd.tls``, ``smtpd.auth``,
  ``smtpd.error``, ``smtpd.client_error``) as ``key=value``; passwords never.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import ipaddress
import logging
import secrets
import ssl
import time
from collections import Counter
from dataclasses import dataclass

from mailwright.deadlines import Deadline, DeadlineExpired, sweeper
from mailwright.server.handler import ConnectionInfo, SessionHandler
from mailwright.smtp import replies
from mailwright.smtp.replies import Reply
from mailwright.smtp.server import ServerSession, SessionSettings
from mailwright.smtp.server_events import (
    NEED_DATA,
    AuthAttempt,
    Closed,
    Event,
    Hello,
    MailFrom,
    MessageReceived,
    ProtocolError,
    Quit,
    RcptTo,
    StartTLS,
)
from mailwright.stream import Stream

logger = logging.getLogger("mailwright.smtpd")

_WRITE_BACKLOG = 64 * 1024  # bytes of unsent replies before a flush waits (with a timeout)
CLOSE_TIMEOUT = 5.0  # seconds to wait for a TLS close_notify before aborting


@dataclass(frozen=True, slots=True)
class ListenerStatistics:
    """A snapshot of one listener's counters."""

    connections_current: int
    connections_total: int
    connections_refused: int
    messages_accepted: int
    messages_refused: int


@dataclass(slots=True)
class _Connection:
    """What :meth:`SmtpListener.stop` needs to know about a running connection."""

    task: asyncio.Task[None]
    peer_ip: str
    deadline: Deadline
    command_deadline: float | None = None  # when the command being read must be complete
    lines: int = 0  # the session's lines_read when command_deadline was set
    idle: bool = False
    shutdown_requested: bool = False


def _fields(event: str, values: dict[str, object]) -> str:
    """``event key=value ...``, quoting values that hold spaces or quotes."""
    parts = [event]
    for key, value in values.items():
        text = str(value)
        if not text or any(char in text for char in ' "='):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


def _log(level: int, event: str, **values: object) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, "%s", _fields(event, values))


@functools.lru_cache(maxsize=1024)
def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class SmtpListener:
    """Accepts SMTP connections on ``host:port`` and serves them with ``handler``.

    ``settings`` is the template for every session; per connection the listener
    turns STARTTLS off when there is no ``tls_context`` and allows AUTH before
    TLS only to loopback peers (or when ``settings.auth_allowed`` says so).
    """

    def __init__(
        self,
        name: str,
        role: str,
        host: str,
        port: int,
        handler: SessionHandler,
        settings: SessionSettings,
        tls_context: ssl.SSLContext | None = None,
        *,
        max_connections: int = 1000,
        max_connections_per_ip: int = 50,
        command_timeout: float = 300.0,
        data_timeout: float = 600.0,
        reuse_port: bool = False,
    ) -> None:
        self.name = name
        self.role = role
        self.host = host
        self._requested_port = port
        self._handler = handler
        self._settings = dataclasses.replace(
            settings, offer_starttls=settings.offer_starttls and tls_context is not None
        )
        # Loopback clients may AUTH before TLS; made once, not per connection.
        self._loopback_settings = dataclasses.replace(self._settings, auth_allowed=True)
        self._tls_context = tls_context
        self._max_connections = max_connections
        self._max_per_ip = max_connections_per_ip
        self._command_timeout = command_timeout
        self._data_timeout = data_timeout
        self._reuse_port = reuse_port
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], _Connection] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # every accept task, refused ones too
        self._per_ip: Counter[str] = Counter()
        self._stopping = False
        self._total = 0
        self._refused = 0
        self._accepted = 0
        self._rejected = 0
        self._session_ids = _SessionIds()

    @property
    def requested_port(self) -> int:
        """The port asked for (0: any free one)."""
        return self._requested_port

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for); 0 before :meth:`start`."""
        if self._server is None or not self._server.sockets:
            return 0
        return int(self._server.sockets[0].getsockname()[1])

    def statistics(self) -> ListenerStatistics:
        """Current counters, for metrics."""
        return ListenerStatistics(
            connections_current=len(self._connections),
            connections_total=self._total,
            connections_refused=self._refused,
            messages_accepted=self._accepted,
            messages_refused=self._rejected,
        )

    async def start(self) -> None:
        """Bind and start accepting; raises :class:`OSError` when the address is taken."""
        self._stopping = False
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Stream(self._on_stream),
            self.host,
            self._requested_port,
            reuse_address=True,
            reuse_port=self._reuse_port or None,
        )
        _log(logging.INFO, "smtpd.listen", listener=self.name, role=self.role, port=self.port)

    async def stop(self, grace: float = 30.0) -> None:
        """Stop accepting; close idle sessions with 421 4.3.2; give busy ones ``grace`` seconds."""
        self._stopping = True
        if self._server is not None:
            self._server.close()

        for connection in list(self._connections.values()):
            if connection.idle:
                connection.shutdown_requested = True
                connection.task.cancel()
        tasks = list(self._tasks)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # --- One connection ---------------------------------------------------------------

    def _on_stream(self, stream: Stream) -> None:
        """A client connected: serve it in a task of its own."""
        task = asyncio.get_running_loop().create_task(self._accept(stream))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, stream: Stream) -> None:
        """Admit or refuse a new connection, then serve it to the end."""
        task = asyncio.current_task()
        assert task is not None
        await self._admit(task, stream)

    async def _admit(self, task: asyncio.Task[None], stream: Stream) -> None:
        peer = stream.get_extra_info("peername") or ("", 0)
        local = stream.get_extra_info("sockname") or ("", 0)
        peer_ip = str(peer[0])
        self._total += 1

        reason = None
        if self._stopping:
            reason = "stopping"
        elif len(self._connections) >= self._max_connections:
            reason = "max_connections"
        elif self._per_ip[peer_ip] >= self._max_per_ip:
            # TODO: IPv6 clients are counted per address, not per /64, so one host with a
            # prefix of its own can open max_connections_per_ip connections per address.
            reason = "max_connections_per_ip"
        if reason is not None:
            self._refused += 1
            _log(logging.WARNING, "smtpd.refused", listener=self.name, peer=peer_ip, reason=reason)
            refusal = replies.SHUTTING_DOWN if self._stopping else replies.TOO_MANY_CONNECTIONS
            # The enhanced code is sent although no EHLO came yet (RFC 2034 ties it to EHLO):
            # clients and log readers alike want the 4.7.0 that says why.
            with contextlib.suppress(ConnectionError, OSError):
                stream.write(refusal.to_bytes())
            await self._close(stream)
            return

        connection = _Connection(task, peer_ip, sweeper().deadline(task))
        self._connections[task] = connection
        self._per_ip[peer_ip] += 1
        info = ConnectionInfo(
            session_id=self._session_ids.next(),
            peer_ip=peer_ip,
            peer_port=int(peer[1]),
            local_ip=str(local[0]),
            local_port=int(local[1]),
            listener_name=self.name,
            listener_role=self.role,
        )
        try:
            await self._serve(connection, info, stream)
        finally:
            del self._connections[task]
            self._per_ip[peer_ip] -= 1
            if not self._per_ip[peer_ip]:
                del self._per_ip[peer_ip]
            await self._close(stream)
            await self._call_disconnect(info)

    async def _serve(
        self,
        connection: _Connection,
        info: ConnectionInfo,
        stream: Stream,
    ) -> None:
        """Run the session loop; log why it ended."""
        settings = self._loopback_settings if _is_loopback(info.peer_ip) else self._settings
        session = ServerSession(settings)
        _log(
            logging.DEBUG, "smtpd.connect", session=info.session_id, listener=self.name,
            peer=f"{info.peer_ip}:{info.peer_port}",
        )  # fmt: skip

        reason = "quit"
        try:
            session.greet(await self._call_connect(info))
            reason = await self._converse(connection, info, session, stream)
        except asyncio.CancelledError:
            if not connection.shutdown_requested:
                raise
            connection.task.uncancel()
            reason = "shutdown"
            session.close(replies.SHUTTING_DOWN)
            await self._flush(session, stream)
        except (ConnectionError, OSError, ssl.SSLError) as error:
            reason = f"network: {type(error).__name__}"
        finally:
            # A plain end of a session is DEBUG: at volume the event log already holds
            # every message, and a line per connection cost 5 % of the relay's CPU.
            errors = session.error_count
            level = logging.DEBUG if reason in ("quit", "closed") and not errors else logging.INFO
            _log(
                level, "smtpd.disconnect", session=info.session_id, peer=info.peer_ip,
                reason=reason, messages=info.messages, errors=errors,
            )  # fmt: skip

    async def _converse(
        self,
        connection: _Connection,
        info: ConnectionInfo,
        session: ServerSession,
        stream: Stream,
    ) -> str:
        """The event loop of one session; returns why it ended."""
        while True:
            event = session.next_event()
            if event is NEED_DATA:
                await self._flush(session, stream)
                if self._stopping and not session.reading_content:
                    session.close(replies.SHUTTING_DOWN)
                    await self._flush(session, stream)
                    return "shutdown"
                data = await self._receive(connection, session, stream)
                if data is None:
                    session.close(replies.TIMEOUT)
                    await self._flush(session, stream)
                    return "timeout"
                session.receive_data(data)
                continue

            if isinstance(event, Quit):
                await self._flush(session, stream)
                return "quit"
            if isinstance(event, Closed):
                await self._flush(session, stream)
                return "closed"
            if isinstance(event, ProtocolError):
                self._log_client_error(info, event)
                continue
            if isinstance(event, StartTLS):
                if not await self._start_tls(info, session, event, stream):
                    return "tls_failed"
                continue
            session.respond(event, await self._decide(info, event))

    async def _receive(
        self, connection: _Connection, session: ServerSession, stream: Stream
    ) -> bytes | None:
        """Read what the client sent next; ``None`` on timeout, ``b""`` at EOF.

        A command must be complete within ``command_timeout`` of its first
        octet (or of the previous reply): the wait does not start again with
        every read, so a client trickling a byte at a time cannot hold its
        connection for ever. Content is timed per read, as RFC 5321
        §4.5.3.2.6 times each data block. The deadline is swept, not timed: it
        fires up to a tenth of the timeout late.
        """
        # TODO: content still restarts its timeout with every read, so a client sending
        # a byte of a big BDAT chunk every few minutes keeps its slot; a floor on the
        # transfer rate would bound it. The per-address limit caps how many it holds.
        content = session.reading_content
        now = connection.deadline.now()
        if content:
            timeout = self._data_timeout
            connection.command_deadline = None
        else:
            if connection.command_deadline is None or session.lines_read != connection.lines:
                connection.command_deadline = now + self._command_timeout
                connection.lines = session.lines_read
            timeout = max(0.0, connection.command_deadline - now)
        connection.idle = not content
        try:
            with connection.deadline.after(timeout):
                return await stream.read()
        except DeadlineExpired:
            return None
        finally:
            connection.idle = False

    async def _flush(self, session: ServerSession, stream: Stream) -> None:
        """Write every queued reply at once; a client that will not read times out."""
        out = session.data_to_send()
        if not out:
            return
        stream.write(out)
        if stream.write_buffer_size > _WRITE_BACKLOG:
            # Only a client that stops reading gets here: bound its wait. Replies
            # are small, so the usual write completes at once and needs no timer.
            async with asyncio.timeout(self._command_timeout):
                await stream.drain()

    async def _start_tls(
        self,
        info: ConnectionInfo,
        session: ServerSession,
        event: StartTLS,
        stream: Stream,
    ) -> bool:
        """Answer STARTTLS and upgrade the stream; False when the handshake failed."""
        if self._tls_context is None:
            session.respond(event, replies.TLS_UNAVAILABLE)
            return True
        session.respond(event, replies.READY_TLS)
        await self._flush(session, stream)

        # Plaintext the client pipelined behind STARTTLS may sit in the stream's buffer;
        # it must not be read as if it came through TLS (RFC 3207 §4.2, CVE-2011-0411).
        # No await happens between this and start_tls pausing the transport.
        stream.discard_buffered()
        try:
            async with asyncio.timeout(self._command_timeout):
                await stream.start_tls(self._tls_context, server_side=True)
        except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as error:
            _log(
                logging.WARNING, "smtpd.tls", session=info.session_id, result="failed",
                error=type(error).__name__,
            )  # fmt: skip
            return False

        session.tls_started()
        info.tls_active = True
        info.helo_name = None
        info.auth_user = None
        ssl_object = stream.get_extra_info("ssl_object")
        _log(
            logging.INFO, "smtpd.tls", session=info.session_id, result="ok",
            version=ssl_object.version() if ssl_object else "?",
            cipher=ssl_object.cipher()[0] if ssl_object and ssl_object.cipher() else "?",
        )  # fmt: skip
        return True

    # --- The handler's hooks ----------------------------------------------------------

    async def _decide(self, info: ConnectionInfo, event: Event) -> Reply | None:
        """Ask the handler about a decision event; a hook that raises gets 451 4.3.0."""
        handler = self._handler
        try:
            if isinstance(event, Hello):
                reply = await handler.on_hello(info, event)
                if reply is None or reply.is_positive:
                    info.helo_name = event.name
                return reply
            if isinstance(event, AuthAttempt):
                return await self._authenticate(info, event)
            if isinstance(event, MailFrom):
                return await handler.on_mail(info, event)
            if isinstance(event, RcptTo):
                return await handler.on_rcpt(info, event)
            if isinstance(event, MessageReceived):
                return await self._deliver(info, event)
        except Exception as error:
            hook = type(event).__name__
            _log(
                logging.ERROR, "smtpd.error", session=info.session_id, hook=hook,
                error=f"{type(error).__name__}: {error}",
            )  # fmt: skip
            logger.debug("smtpd.error traceback", exc_info=True)
            if isinstance(event, AuthAttempt):
                return replies.AUTH_TEMP_FAILURE
            if isinstance(event, MessageReceived):
                self._rejected += 1
            return replies.LOCAL_ERROR
        raise AssertionError(f"no hook for {type(event).__name__}")

    async def _authenticate(self, info: ConnectionInfo, event: AuthAttempt) -> Reply:
        valid = await self._handler.on_auth(info, event)
        _log(
            logging.INFO, "smtpd.auth", session=info.session_id, mechanism=event.mechanism,
            user=event.username, result="ok" if valid else "failed",
        )  # fmt: skip
        if not valid:
            return replies.AUTH_FAILED
        info.auth_user = event.username
        return replies.AUTH_OK

    async def _deliver(self, info: ConnectionInfo, event: MessageReceived) -> Reply:
        envelope = event.envelope
        envelope.client_ip = info.peer_ip
        envelope.listener = self.role
        envelope.received_at = time.time()
        reply = await self._handler.on_message(info, event)
        if reply.is_positive:
            self._accepted += 1
            info.messages += 1
        else:
            self._rejected += 1
        return reply

    async def _call_connect(self, info: ConnectionInfo) -> Reply | None:
        try:
            return await self._handler.on_connect(info)
        except Exception as error:
            _log(
                logging.ERROR, "smtpd.error", session=info.session_id, hook="on_connect",
                error=f"{type(error).__name__}: {error}",
            )  # fmt: skip
            return None

    async def _call_disconnect(self, info: ConnectionInfo) -> None:
        try:
            await self._handler.on_disconnect(info)
        except Exception as error:
            _log(
                logging.ERROR, "smtpd.error", session=info.session_id, hook="on_disconnect",
                error=f"{type(error).__name__}: {error}",
            )  # fmt: skip

    def _log_client_error(self, info: ConnectionInfo, event: ProtocolError) -> None:
        level = logging.WARNING if event.reply is replies.TOO_MANY_ERRORS else logging.DEBUG
        _log(
            level, "smtpd.client_error", session=info.session_id, code=event.reply.code,
            status=event.reply.status, detail=event.detail,
        )  # fmt: skip

    async def _close(self, stream: Stream) -> None:
        """Close the stream; abort it when a TLS peer does not answer close_notify.

        A plain TCP stream closes without a wait: the transport sends what is
        queued and then closes on its own.
        """
        stream.close()
        if stream.get_extra_info("ssl_object") is None:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await stream.wait_closed()
        except TimeoutError:
            stream.abort()


class _SessionIds:
    """Session ids unique per listener run: a random prefix and a counter.

    ``secrets.token_hex`` per connection cost a getrandom() system call on
    the accept path; the prefix keeps ids of different runs apart in logs.
    """

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(3)
        self._count = 0

    def next(self) -> str:
        self._count += 1
        return f"{self._prefix}{self._count:06x}"
