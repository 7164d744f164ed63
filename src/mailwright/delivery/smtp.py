"""SMTP and LMTP delivery over asyncio: a thin loop around ``ClientSession``.

:class:`SmtpConnection` owns one TCP connection to one peer. It opens it,
reads the greeting, says EHLO (LHLO), upgrades with STARTTLS when asked to and
offered, and then delivers any number of messages, one :meth:`deliver` call
per transaction, until :meth:`close`. All protocol decisions are made by the
sans-IO :class:`~mailwright.smtp.client.ClientSession`; this module only moves
bytes, applies the timeouts of RFC 5321 §4.5.3.2 and translates what goes
wrong on the network into :class:`SmtpDeliveryError` subclasses.

Every such error carries :attr:`SmtpDeliveryError.reply`, the reply to record
for the recipients as if the peer had said it: a transient 4xx for network
trouble (connection refused, dropped, timed out, a broken protocol), so the
caller retries later or tries the next MX exactly as for a 4xx from a server.
:class:`PeerRefused` carries the peer's own greeting or EHLO refusal instead.
When a connection dies during a transaction, :attr:`SmtpDeliveryError.partial`
holds the outcome of that transaction with the recipients the peer had
already answered (LMTP answers each recipient after the data) kept as
answered, so they are not delivered twice.

TLS follows RFC 3207 and, without a caller's context, the opportunistic
profile of RFC 7435: the certificate is not verified, because a plain-text
fallback would be worse than an unauthenticated encrypted channel. A failed
handshake raises :class:`TlsHandshakeFailed` after the connection is dropped;
the caller may reconnect with ``tls="none"``. ``tls="required"`` raises
:class:`TlsUnavailable` rather than fall back to plain text.

Logs go to ``mailwright.delivery`` as ``event key=value ...``: ``delivery.connect``
and ``delivery.tls`` (INFO), ``delivery.error`` (WARNING), ``delivery.wire``
(DEBUG, every read and write, truncated).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from mailwright.deadlines import DeadlineExpired, sweeper
from mailwright.envelope import Recipient
from mailwright.errors import DeliveryError
from mailwright.smtp.client import (
    NEED_DATA,
    ClientSession,
    Closed,
    Ehlo,
    Event,
    Greeting,
    ProtocolError,
    Stage,
    TlsReady,
    TlsRefused,
    TransactionDone,
)
from mailwright.smtp.replies import Reply
from mailwright.stream import Stream, StreamClosedError, open_stream

__all__ = [
    "ClientTimeouts",
    "ConnectFailed",
    "ConnectionLost",
    "PeerProtocolError",
    "PeerRefused",
    "ResponseTimeout",
    "SmtpConnection",
    "SmtpDeliveryError",
    "TlsHandshakeFailed",
    "TlsMode",
    "TlsUnavailable",
    "opportunistic_tls_context",
]

logger = logging.getLogger("mailwright.delivery")

TlsMode = Literal["opportunistic", "none", "required"]

#: Bytes left unsent in the transport before a write waits for the peer to read.
_WRITE_BACKLOG = 64 * 1024
"""Bytes asked for per read: a pipelined group's replies arrive in one read."""

_WIRE_PREVIEW = 200

# The replies recorded for failures that are not an SMTP reply (RFC 3463 §3.5, §3.8).
CONNECT_FAILED = Reply(451, "4.4.1", "No answer from host")
CONNECTION_DROPPED = Reply(451, "4.4.2", "Connection dropped")
CONVERSATION_TIMED_OUT = Reply(451, "4.4.2", "Conversation timed out")
PEER_PROTOCOL_ERROR = Reply(451, "4.5.0", "Protocol error by the receiving server")
TLS_FAILED = Reply(451, "4.7.5", "TLS handshake failed")
TLS_NOT_OFFERED = Reply(451, "4.7.10", "TLS is required but the peer does not offer it")


# --- Errors ------------------------------------------------------------------------


class SmtpDeliveryError(DeliveryError):
    """A delivery attempt over SMTP or LMTP failed without a final SMTP answer.

    ``reply`` is what to record for every recipient not settled otherwise;
    ``partial`` is the interrupted transaction's outcome (recipients already
    answered keep their replies, the others have ``reply``), or None when
    no transaction was in flight or the peer had answered none of it.
    """

    def __init__(
        self, message: str, *, reply: Reply, partial: TransactionDone | None = None
    ) -> None:
        super().__init__(message)
        self.reply = reply
        self.partial = partial


class ConnectFailed(SmtpDeliveryError):
    """The TCP connection could not be made: refused, unreachable or timed out (4.4.1)."""


class ConnectionLost(SmtpDeliveryError):
    """The peer closed or reset the connection in the middle of the conversation (4.4.2)."""


class ResponseTimeout(SmtpDeliveryError):
    """The peer did not answer or read within the RFC 5321 §4.5.3.2 limit (4.4.2)."""


class PeerProtocolError(SmtpDeliveryError):
    """The peer sent something that is not a valid answer at that point (4.5.0)."""


class PeerRefused(SmtpDeliveryError):
    """The peer refused the session at the greeting or at EHLO; ``reply`` is its own."""


class TlsHandshakeFailed(SmtpDeliveryError):
    """STARTTLS was accepted but the TLS handshake failed; retry the host without TLS."""


class TlsUnavailable(SmtpDeliveryError):
    """TLS is required but the peer does not offer or refuses STARTTLS (4.7.10)."""


# --- Settings ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientTimeouts:
    """Seconds to wait at each step; the defaults are RFC 5321 §4.5.3.2's.

    ``command`` covers EHLO, STARTTLS (with its handshake) and RSET, for which
    the RFC names no figure; ``quit`` bounds the polite goodbye in ``close``.
    """

    connect: float = 30.0
    greeting: float = 300.0
    command: float = 300.0
    mail: float = 300.0
    rcpt: float = 300.0
    data_init: float = 120.0
    data_block: float = 180.0
    data_end: float = 600.0
    quit: float = 10.0

    def for_stage(self, stage: Stage | None) -> float:
        """The limit for waiting on the reply of ``stage``."""
        match stage:
            case Stage.GREETING:
                return self.greeting
            case Stage.MAIL:
                return self.mail
            case Stage.RCPT:
                return self.rcpt
            case Stage.DATA:
                return self.data_init
            case Stage.DATA_END | Stage.BDAT:
                return self.data_end
            case Stage.QUIT:
                return self.quit
            case _:
                return self.command


@functools.cache
def opportunistic_tls_context() -> ssl.SSLContext:
    """A client context that encrypts without verifying the peer (RFC 7435 §3).

    Built once: creating a context loads the system's trust store, which is
    far too slow to do per connection.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# --- The connection -----------------------------------------------------------------


class SmtpConnection:
    """One established, greeted and EHLO'd connection to an SMTP or LMTP server.

    Build it with :meth:`open`; deliver with :meth:`deliver` while
    :attr:`reusable`; always finish with :meth:`close`.
    """

    def __init__(
        self,
        stream: Stream,
        session: ClientSession,
        *,
        peer_name: str,
        timeouts: ClientTimeouts,
    ) -> None:
        self._stream = stream
        self._session = session
        self._peer_name = peer_name
        self._timeouts = timeouts
        self._deadline = sweeper().deadline()  # bounds the waits of whichever task uses it
        self._tls_active = False
        self._broken = False
        self._closed = False
        self.transactions = 0  # messages sent on this connection, for reuse limits

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        helo_name: str,
        lmtp: bool = False,
        tls: TlsMode = "opportunistic",
        tls_context: ssl.SSLContext | None = None,
        timeouts: ClientTimeouts | None = None,
        source_address: str | None = None,
        name: str | None = None,
    ) -> SmtpConnection:
        """Connect to ``host``:``port``, read the greeting, say EHLO and maybe STARTTLS.

        ``tls`` is ``"opportunistic"`` (STARTTLS when offered, RFC 7435),
        ``"required"`` or ``"none"``; ``tls_context`` replaces the unverified
        opportunistic context (pass a verifying one for DANE or MTA-STS).
        ``source_address`` binds the local end. ``name`` is the host's name
        when ``host`` is one of its addresses (an MX host found in DNS): it
        goes into :attr:`peer_name` and the TLS server name indication.

        Raises :class:`ConnectFailed`, :class:`PeerRefused`,
        :class:`TlsHandshakeFailed`, :class:`TlsUnavailable`, or another
        :class:`SmtpDeliveryError` when the conversation breaks.
        """
        timeouts = timeouts or ClientTimeouts()
        where = f"{host}:{port}"
        local_addr = (source_address, 0) if source_address else None
        try:
            async with asyncio.timeout(timeouts.connect):
                stream = await open_stream(host, port, local_addr=local_addr)
        except ConnectionRefusedError as exc:
            raise _connect_error(where, f"connection refused by {where}") from exc
        except TimeoutError as exc:
            detail = f"no answer from {where} within {timeouts.connect:g}s"
            raise _connect_error(where, detail) from exc
        except OSError as exc:
            raise _connect_error(where, f"cannot connect to {where}: {exc.strerror}") from exc

        peer = stream.get_extra_info("peername")
        address = peer[0] if peer else host
        label = name or host
        peer_name = f"{label}[{address}]:{port}" if address != label else f"[{label}]:{port}"
        connection = cls(
            stream,
            ClientSession(helo_name, lmtp=lmtp),
            peer_name=peer_name,
            timeouts=timeouts,
        )
        _log(logging.INFO, "delivery.connect", peer=peer_name, lmtp=lmtp)
        try:
            await connection._start(name or host, tls, tls_context)
        except BaseException:
            await connection._drop()
            raise
        return connection

    # -- What the caller asks ------------------------------------------------------

    @property
    def peer_name(self) -> str:
        """``host[address]:port`` of the peer, for logs and delivery events."""
        return self._peer_name

    @property
    def tls_active(self) -> bool:
        """True once STARTTLS succeeded."""
        return self._tls_active

    @property
    def extensions(self) -> dict[str, str]:
        """The extensions the peer offers (after TLS, the ones offered inside it)."""
        return self._session.extensions

    @property
    def reusable(self) -> bool:
        """True when another message may be delivered on this connection.

        False after a 421, a protocol error, a timeout, a lost connection or
        :meth:`close`.
        """
        return (
            not self._broken
            and not self._closed
            and self._session.is_ready
            and not self._stream.at_eof()
        )

    # -- Delivering ----------------------------------------------------------------

    async def deliver(
        self,
        envelope_sender: str,
        recipients: Sequence[Recipient],
        content: bytes,
        *,
        smtputf8: bool = False,
        envid: str | None = None,
        ret: str | None = None,
        crlf_checked: bool = False,
        binary: bool = False,
    ) -> TransactionDone:
        """Send one message; the result gives each recipient its final reply.

        ``content`` is the stored message (CRLF lines, not dot-stuffed). A 4xx
        or 5xx from the peer is a result, not an exception; see
        :meth:`ClientSession.send_message` for the parameters sent.

        Raises :class:`ConnectionLost`, :class:`ResponseTimeout` or
        :class:`PeerProtocolError` when the conversation breaks; ``partial``
        is None when the peer had answered nothing of this transaction (a
        :class:`ConnectionLost` without ``partial`` on a reused connection
        means the peer had dropped the idle session: retry on a fresh one).
        Raises
        :class:`~mailwright.smtp.client.SessionStateError` when the
        connection is not :attr:`reusable`.
        """
        self.transactions += 1
        self._session.send_message(
            envelope_sender,
            recipients,
            content,
            smtputf8=smtputf8,
            envid=envid,
            ret=ret,
            crlf_checked=crlf_checked,
            binary=binary,
        )
        event = await self._next_event()
        if not isinstance(event, TransactionDone):
            raise self._unexpected(event, "the transaction")

        # A 421 as the very first answer means the session died before this message
        # (often an idle timeout on a cached connection): nothing of it was looked at.
        if event.mail_reply.code == 421 and self._session.is_closed:
            raise self._fail(
                ConnectionLost,
                f"{self._peer_name} closed the session before MAIL: {event.mail_reply}",
                event.mail_reply,
            )
        return event

    async def close(self) -> None:
        """Say QUIT when the session allows it, then close; bounded by the timeouts."""
        if self._closed:
            return
        self._closed = True
        if not self._broken and self._session.can_quit:
            self._session.quit()
            try:
                event = await self._next_event()
            except SmtpDeliveryError:
                pass
            else:
                if not isinstance(event, Closed):
                    _log(logging.WARNING, "delivery.error", peer=self._peer_name, got=event)
        await self._drop()

    # -- The handshake -------------------------------------------------------------

    async def _start(self, host: str, tls: TlsMode, context: ssl.SSLContext | None) -> None:
        """Greeting, EHLO and STARTTLS; raises the errors :meth:`open` lists."""
        event = await self._next_event()
        if not isinstance(event, Greeting):
            raise self._unexpected(event, "the greeting")
        if event.reply.code != 220:
            await self.close()
            raise PeerRefused(f"{self._peer_name} greeted with {event.reply}", reply=event.reply)

        # TODO: no SMTP AUTH (RFC 4954) here, so smarthosts that require it cannot be used.
        extensions = await self._hello()
        if tls == "none":
            return
        if "STARTTLS" not in extensions:
            if tls == "required":
                await self.close()
                raise TlsUnavailable(
                    f"{self._peer_name} does not offer STARTTLS", reply=TLS_NOT_OFFERED
                )
            return
        await self._starttls(host, tls, context or opportunistic_tls_context())

    async def _hello(self) -> dict[str, str]:
        self._session.ehlo()
        event = await self._next_event()
        if not isinstance(event, Ehlo):
            raise self._unexpected(event, "EHLO")
        if event.reply.code // 100 != 2:
            await self.close()
            raise PeerRefused(f"{self._peer_name} refused EHLO: {event.reply}", reply=event.reply)
        return event.extensions

    async def _starttls(self, host: str, tls: TlsMode, context: ssl.SSLContext) -> None:
        """STARTTLS, the handshake and the second EHLO (RFC 3207 §4.2)."""
        self._session.starttls()
        event = await self._next_event()
        if isinstance(event, TlsRefused):
            _log(logging.INFO, "delivery.tls", peer=self._peer_name, outcome="refused")
            if tls == "required":
                await self.close()
                raise TlsUnavailable(
                    f"{self._peer_name} refused STARTTLS: {event.reply}", reply=TLS_NOT_OFFERED
                )
            return
        if not isinstance(event, TlsReady):
            raise self._unexpected(event, "STARTTLS")

        server_hostname = None if _is_address(host) else host
        try:
            async with asyncio.timeout(self._timeouts.command):
                await self._stream.start_tls(
                    context, server_side=False, server_hostname=server_hostname
                )
        except (TimeoutError, OSError) as exc:  # ssl.SSLError is an OSError
            raise self._fail(
                TlsHandshakeFailed,
                f"TLS handshake with {self._peer_name} failed: {exc}",
                TLS_FAILED,
            ) from exc

        self._tls_active = True
        ssl_object = self._stream.get_extra_info("ssl_object")
        cipher = ssl_object.cipher() if ssl_object else None
        _log(
            logging.INFO,
            "delivery.tls",
            peer=self._peer_name,
            outcome="started",
            version=ssl_object.version() if ssl_object else None,
            cipher=cipher[0] if cipher else None,
        )
        self._session.tls_started()
        event = await self._next_event()
        if not isinstance(event, Ehlo):
            raise self._unexpected(event, "EHLO after STARTTLS")
        if event.reply.code // 100 != 2:
            await self.close()
            raise PeerRefused(f"{self._peer_name} refused EHLO: {event.reply}", reply=event.reply)

    # -- The loop ------------------------------------------------------------------

    async def _next_event(self) -> Event:
        """Write what the session queued and read until it has an event."""
        session = self._session
        while True:
            event = session.next_event()
            await self._flush()
            if event is not NEED_DATA:
                return event
            await self._read()

    async def _flush(self) -> None:
        data = self._session.data_to_send()
        if not data:
            return
        _trace(">", data)
        try:
            self._stream.write(data)
        except StreamClosedError as exc:
            raise self._fail(
                ConnectionLost, f"writing to {self._peer_name}: {exc}", CONNECTION_DROPPED
            ) from exc
        if self._stream.write_buffer_size <= _WRITE_BACKLOG:
            return  # the kernel took it all, as it does for commands and most messages
        stage = self._session.awaiting
        content = stage in (Stage.DATA_END, Stage.BDAT)
        limit = self._timeouts.data_block if content else self._timeouts.command
        try:
            with self._deadline.after(limit):
                await self._stream.drain()
        except DeadlineExpired as exc:
            raise self._fail(
                ResponseTimeout,
                f"{self._peer_name} did not read for {limit:g}s",
                CONVERSATION_TIMED_OUT,
            ) from exc
        except OSError as exc:
            raise self._fail(
                ConnectionLost, f"writing to {self._peer_name}: {exc}", CONNECTION_DROPPED
            ) from exc

    async def _read(self) -> None:
        stage = self._session.awaiting
        limit = self._timeouts.for_stage(stage)
        try:
            with self._deadline.after(limit):
                data = await self._stream.read()
        except DeadlineExpired as exc:
            name = stage.value if stage else "next"
            raise self._fail(
                ResponseTimeout,
                f"{self._peer_name} did not answer within {limit:g}s (waiting for {name} reply)",
                CONVERSATION_TIMED_OUT,
            ) from exc
        except OSError as exc:
            raise self._fail(
                ConnectionLost, f"reading from {self._peer_name}: {exc}", CONNECTION_DROPPED
            ) from exc
        _trace("<", data)
        self._session.receive_data(data)

    # -- Failures ------------------------------------------------------------------

    def _fail(self, kind: type[SmtpDeliveryError], detail: str, reply: Reply) -> SmtpDeliveryError:
        """Mark the connection unusable, settle the transaction, drop the socket."""
        self._broken = True
        partial = self._session.abort(reply)
        self._stream.abort()
        _log(
            logging.WARNING,
            "delivery.error",
            peer=self._peer_name,
            error=kind.__name__,
            detail=detail,
        )
        return kind(detail, reply=reply, partial=partial)

    def _unexpected(self, event: Event, during: str) -> SmtpDeliveryError:
        """The error for an event that cannot answer what was asked."""
        if isinstance(event, Closed) and event.reply is not None:
            detail = f"{self._peer_name} closed the connection during {during}: {event.reply}"
            return self._fail(ConnectionLost, detail, event.reply)
        if isinstance(event, Closed):
            detail = f"{self._peer_name} closed the connection during {during}"
            return self._fail(ConnectionLost, detail, CONNECTION_DROPPED)
        if isinstance(event, ProtocolError):
            detail = f"{self._peer_name} broke the protocol during {during}: {event.detail}"
            return self._fail(PeerProtocolError, detail, PEER_PROTOCOL_ERROR)
        detail = f"{self._peer_name} gave {event} during {during}"
        return self._fail(PeerProtocolError, detail, PEER_PROTOCOL_ERROR)

    async def _drop(self) -> None:
        """Close the socket, waiting at most the QUIT timeout for a clean close."""
        self._closed = True
        stream = self._stream
        stream.close()
        try:
            async with asyncio.timeout(self._timeouts.quit):
                await stream.wait_closed()
        except (TimeoutError, OSError):
            stream.abort()


# --- Helpers --------------------------------------------------------------------------


def _connect_error(where: str, detail: str) -> ConnectFailed:
    _log(logging.WARNING, "delivery.error", peer=where, error="ConnectFailed", detail=detail)
    return ConnectFailed(detail, reply=CONNECT_FAILED.with_text(detail))


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _log(level: int, event: str, /, **fields: object) -> None:
    """Log ``event key=value ...``; values with spaces are quoted."""
    if not logger.isEnabledFor(level):
        return
    parts = [event]
    for key, value in fields.items():
        text = str(value)
        parts.append(f"{key}={text!r}" if " " in text or not text else f"{key}={text}")
    logger.log(level, " ".join(parts))


def _trace(direction: str, data: bytes) -> None:
    """DEBUG-log wire traffic, truncated: message bodies are not for logs."""
    if logger.isEnabledFor(logging.DEBUG):
        preview = data[:_WIRE_PREVIEW]
        more = f" (+{len(data) - _WIRE_PREVIEW} bytes)" if len(data) > _WIRE_PREVIEW else ""
        logger.debug(
            "delivery.wire dir=%s bytes=%d data=%r%s", direction, len(data), preview, more
        )
