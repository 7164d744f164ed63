"""A lean byte stream over an asyncio transport, for the SMTP server and client edges.

``asyncio.StreamReader`` and ``StreamWriter`` are general: line reading,
limits, a buffer that every read copies out of, and a wake-up per chunk
through several layers of Python. An SMTP conversation needs much less (give
me whatever the peer sent; write these bytes), and it pays the difference
on every command: measured with a minimal SMTP responder under
``smtp-source``, streams cost about 210 µs a message and this class about
135 µs, close to a bare callback protocol (about 125 µs) while keeping the
``await stream.read()`` style the session loops are written in.

:class:`Stream` is the protocol and the stream in one object:

- :meth:`read` returns every byte received since the last read (``b""`` at
  end of stream or after the connection is lost; the loss itself is
  :attr:`lost`), waiting when there are none. Reading is paused when
  :data:`MAX_BUFFERED` bytes wait unread, so a peer cannot make us buffer
  without bound while we are busy elsewhere.
- :meth:`write` hands bytes to the transport; :meth:`drain` waits only when
  the transport asked us to stop writing (the usual reply write returns at
  once, with no await).
- :meth:`start_tls` upgrades the transport in place (RFC 3207), after
  :meth:`discard_buffered` threw away plaintext that arrived before it.

The caller owns timeouts (see :mod:`mailwright.deadlines`).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, cast

#: Unread bytes at which the stream stops reading from the socket until read.
MAX_BUFFERED = 256 * 1024


class StreamClosedError(ConnectionError):
    """The stream was closed or lost before the write or drain could complete."""


class Stream(asyncio.Protocol):
    """One connection's bytes in both directions; see the module docstring.

    ``on_connected`` (server side) is called with the stream once the
    transport is attached, typically to start the task that serves it.
    """

    def __init__(self, on_connected: Callable[[Stream], None] | None = None) -> None:
        self._on_connected = on_connected
        self._transport: asyncio.Transport | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._reading_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False
        self._closed: asyncio.Future[None] | None = None
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self.lost: BaseException | None = None  # why the connection ended, when it failed

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._closed = asyncio.get_running_loop().create_future()
        if self._on_connected is not None:
            self._on_connected(self)

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > MAX_BUFFERED and not self._reading_paused:
            self._reading_paused = True
            assert self._transport is not None
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # close the transport: SMTP has no use for a half-closed socket

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self.lost = exc
        self._wake()
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_exception(StreamClosedError("connection lost while writing"))
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- reading -----------------------------------------------------------------------

    async def read(self) -> bytes:
        """Every byte received so far and not yet read; ``b""`` at the end of the stream."""
        while not self._chunks:
            if self._eof:
                return b""
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None

        chunks = self._chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        if self._reading_paused and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()
        return data

    def at_eof(self) -> bool:
        """True when the peer closed its side and every byte it sent has been read."""
        return self._eof and not self._chunks

    def discard_buffered(self) -> None:
        """Forget bytes received and not read yet (plaintext before a TLS handshake)."""
        self._chunks.clear()
        self._buffered = 0

    # -- writing -----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue ``data``; raises :class:`StreamClosedError` once the stream is closed."""
        transport = self._transport
        if transport is None or transport.is_closing():
            raise StreamClosedError("write on a closed stream")
        transport.write(data)

    @property
    def write_buffer_size(self) -> int:
        """Bytes written and not yet taken by the kernel."""
        return self._transport.get_write_buffer_size() if self._transport is not None else 0

    async def drain(self) -> None:
        """Wait until the transport takes writes again; at once when it never stopped."""
        if not self._write_paused:
            if self._closed is not None and self._closed.done():
                raise StreamClosedError("connection lost while writing")
            return
        waiter = asyncio.get_running_loop().create_future()
        self._drain_waiter = waiter
        try:
            await waiter
        finally:
            self._drain_waiter = None

    # -- the connection ------------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The transport's extra information (``peername``, ``sockname``, ``ssl_object``)."""
        if self._transport is None:
            return default
        return self._transport.get_extra_info(name, default)

    async def start_tls(
        self,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
    ) -> None:
        """Run the TLS handshake and carry on over the encrypted transport.

        Raises :class:`ssl.SSLError`, :class:`ConnectionError` or :class:`OSError`
        when the handshake fails; the stream is then unusable.
        """
        transport = self._transport
        if transport is None:
            raise StreamClosedError("start_tls on a closed stream")
        loop = asyncio.get_running_loop()
        upgraded = await loop.start_tls(
            transport,
            self,
            context,
            server_side=server_side,
            server_hostname=server_hostname,
        )
        if upgraded is None:
            raise StreamClosedError("the connection closed during the TLS handshake")
        self._transport = upgraded

    def is_closing(self) -> bool:
        """True once closing has begun (by us or by the loss of the connection)."""
        return self._transport is None or self._transport.is_closing()

    def close(self) -> None:
        """Close after the queued writes are sent."""
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Close at once, dropping queued writes."""
        if self._transport is not None:
            self._transport.abort()

    async def wait_closed(self) -> None:
        """Wait until the connection is gone."""
        if self._closed is not None:
            await asyncio.shield(self._closed)


async def open_stream(
    host: str, port: int, *, local_addr: tuple[str, int] | None = None
) -> Stream:
    """Connect to ``host:port`` and return the stream; raises :class:`OSError`."""
    loop = asyncio.get_running_loop()
    _transport, stream = await loop.create_connection(Stream, host, port, local_addr=local_addr)
    return stream
