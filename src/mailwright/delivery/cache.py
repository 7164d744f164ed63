"""Idle outbound connections kept for a moment, so the next message reuses them.

A connection that has carried ``max_transactions`` messages is closed instead
(``[queue] max_messages_per_connection``), so no single session lives for ever.

Mail to a busy destination arrives a few messages at a time; closing the
connection after each batch and opening a new one for the next costs a TCP
handshake, a greeting, EHLO and often a TLS handshake. Like Postfix's
connection cache (``smtp_connection_cache_time_limit``, 2 s by default), we
keep an idle session per destination for a short time and hand it to the
next worker. A cached connection the peer has closed meanwhile is found out
at the next command and counts as a connection failure, after which the
worker opens a fresh one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from mailwright.delivery.smtp import SmtpConnection


class ConnectionCache:
    """Idle connections per destination, each kept at most ``idle`` seconds."""

    def __init__(
        self,
        idle: float = 2.0,
        per_destination: int = 20,
        max_transactions: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle = idle
        self.per_destination = per_destination
        self.max_transactions = max_transactions
        self._clock = clock
        self._idle: dict[str, list[tuple[float, SmtpConnection]]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.hits = 0
        self.misses = 0

    def get(self, destination: str) -> SmtpConnection | None:
        """A reusable idle connection to ``destination``, newest first, or None."""
        entries = self._idle.get(destination)
        now = self._clock()
        while entries:
            expires, connection = entries.pop()
            if expires > now and connection.reusable:
                self.hits += 1
                return connection
            self._close(connection)
        self._idle.pop(destination, None)
        self.misses += 1
        return None

    def put(self, destination: str, connection: SmtpConnection) -> None:
        """Keep ``connection`` for reuse, or close it when it cannot be reused."""
        entries = self._idle.setdefault(destination, [])
        if (
            self.idle <= 0
            or not connection.reusable
            or connection.transactions >= self.max_transactions
            or len(entries) >= self.per_destination
        ):
            self._close(connection)
            return
        entries.append((self._clock() + self.idle, connection))

    def expire(self) -> int:
        """Close connections idle for too long; return how many."""
        now = self._clock()
        closed = 0
        for destination in list(self._idle):
            keep = []
            for expires, connection in self._idle[destination]:
                if expires > now and connection.reusable:
                    keep.append((expires, connection))
                else:
                    self._close(connection)
                    closed += 1
            if keep:
                self._idle[destination] = keep
            else:
                del self._idle[destination]
        return closed

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._idle.values())

    async def close_all(self) -> None:
        """Close every idle connection (at shutdown)."""
        for entries in self._idle.values():
            for _, connection in entries:
                self._close(connection)
        self._idle.clear()
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=10)

    def _close(self, connection: SmtpConnection) -> None:
        task = asyncio.create_task(connection.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
