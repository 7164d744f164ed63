"""The spool: messages on stable storage until every recipient is done.

:class:`Spool` is the asyncio face of a SQLite database ``queue.db`` in WAL
mode inside the spool folder (docs/spool.md tells why SQLite and not a file
per message). Writes go through one writer thread that batches them (group
commit, :mod:`mailwright.spool.writer`); reads run on connections of their
own in a small thread pool, so a long admin query never holds up reception.

Reception calls :meth:`Spool.store`, which returns once the message is on
stable storage. Delivery loops over :meth:`Spool.claim_due`,
:meth:`Spool.load_content` and :meth:`Spool.record`, sleeping in
:meth:`Spool.wait_for_work` until :meth:`Spool.next_due` or a new message.
Reception and delivery may live in two processes opening the same folder:
the delivery side then learns of new mail by polling ``claim_due``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from mailwright.envelope import Envelope
from mailwright.errors import SpoolError
from mailwright.spool import reads, writes
from mailwright.spool.owners import OwnerLock, remove_stale_locks
from mailwright.spool.queue_id import QueueIdGenerator
from mailwright.spool.records import (
    Claimed,
    ClaimedRecipient,
    DomainSummary,
    MessageDetail,
    MessageInfo,
    Outcome,
    SpoolStatistics,
)
from mailwright.spool.schema import configure_reader, configure_writer, create_schema
from mailwright.spool.writer import GroupCommitWriter, Job, translate

logger = logging.getLogger("mailwright.spool")

DATABASE = "queue.db"

_T = TypeVar("_T")

# Bytes a message costs beyond its content: rows, index entries, WAL frame headers.
_OVERHEAD = 2048
_FREE_SPACE_CACHE = 0.25  # seconds a has_room() answer may be based on

#: Seconds a batch of only claims and outcomes waits for a store to share its commit.
#: Outcomes need no fsync, but each transaction of their own takes SQLite's write lock,
#: which the receiving processes sharing the spool contend for.
NON_DURABLE_LINGER = 0.02

#: Recipients made due per transaction by a flush of the whole queue.
FLUSH_CHUNK = 5000


class Spool:
    """The durable message store of one spool folder.

    ``fsync`` off makes commits reach only the page cache (tests, benchmarks).
    ``min_free_bytes`` is the free disk below which new mail is refused with
    :class:`~mailwright.errors.SpoolFullError`, keeping room for bounces and
    the bookkeeping of deliveries (0: no reserve, only a full disk refuses).
    ``clock`` gives arrival and attempt times. A spool is used from the event
    loop that opened it.
    """

    def __init__(
        self,
        directory: Path,
        *,
        fsync: bool = True,
        min_free_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
        max_batch: int = 1024,
    ) -> None:
        self.directory = Path(directory)
        self.fsync = fsync
        self.min_free_bytes = min_free_bytes
        self.clock = clock
        self.max_batch = max_batch
        self._owner = OwnerLock(self.directory)
        self._writer: GroupCommitWriter | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._reader_local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._quick: sqlite3.Connection | None = None
        self._work: asyncio.Event | None = None
        self._stores = 0
        self._ids = QueueIdGenerator()  # used by the writer thread only

    @property
    def path(self) -> Path:
        """The database file."""
        return self.directory / DATABASE

    @property
    def owner(self) -> str:
        """This spool's owner token (marks the recipients it has claimed)."""
        return self._owner.token

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        """Create or open the spool, then requeue work left active by dead owners.

        Raises :class:`SpoolError` (with the cause kept) when the folder or
        database cannot be created or read, or the spool is already open.
        """
        if self._writer is not None:
            raise SpoolError(f"spool {self.directory} is already open")
        loop = asyncio.get_running_loop()
        conn = await asyncio.to_thread(self._open_files)

        self._work = asyncio.Event()
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="spool-reader")
        self._writer = GroupCommitWriter(
            conn,
            loop,
            fsync=self.fsync,
            database=self.path,
            free_bytes=self.free_bytes,
            min_free_bytes=self.min_free_bytes,
            on_wake=self._work.set,
            max_batch=self.max_batch,
            linger=NON_DURABLE_LINGER,
        )
        self._writer.start()

    def _open_files(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._owner.acquire()
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            configure_writer(conn, fsync=self.fsync)
            create_schema(conn)
            self._recover(conn)
            _fsync_directory(self.directory)
            # From here on the writer runs on the event loop, which must never sleep in
            # SQLite's busy handler: a locked database is retried by the writer instead.
            conn.execute("PRAGMA busy_timeout=0")
            self._quick = self._connect_reader()
        except BaseException as exc:
            if conn is not None:
                conn.close()
            self._owner.release()
            if isinstance(exc, sqlite3.Error | OSError):
                raise translate(exc, self.free_bytes) from exc
            raise
        return conn

    def _recover(self, conn: sqlite3.Connection) -> int:
        conn.execute("BEGIN IMMEDIATE")
        try:
            released = writes.recover(conn, self.directory, self.owner)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        remove_stale_locks(self.directory, keep=self.owner)
        if released:
            logger.info("spool.recovered recipients=%d directory=%s", released, self.directory)
        return released

    def _connect_reader(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        configure_reader(conn)
        with self._reader_lock:
            self._reader_conns.append(conn)
        return conn

    async def close(self) -> None:
        """Requeue this spool's unfinished claims, finish pending writes, close.

        Safe to call twice. Stores still waiting for the writer are committed
        before it stops.
        """
        if self._writer is None:
            return
        writer, self._writer = self._writer, None

        release = asyncio.get_running_loop().create_future()
        writer.submit(Job(partial(writes.release_owner, owner=self.owner), release, durable=False))
        with contextlib.suppress(SpoolError):
            await release
        await writer.stop()

        if self._readers is not None:
            await asyncio.to_thread(self._readers.shutdown, wait=True)
            self._readers = None
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        self._quick = None
        self._owner.release()

    async def __aenter__(self) -> Spool:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- plumbing ------------------------------------------------------------------------

    def _require_writer(self) -> GroupCommitWriter:
        if self._writer is None:
            raise SpoolError(f"spool {self.directory} is not open")
        return self._writer

    async def _write(
        self,
        run: Callable[[sqlite3.Connection], _T],
        *,
        durable: bool = True,
        size: int = 0,
        reserve: bool = False,
        wake: bool = False,
    ) -> _T:
        return await self._submit(run, durable=durable, size=size, reserve=reserve, wake=wake)

    def _submit(
        self,
        run: Callable[[sqlite3.Connection], _T],
        *,
        durable: bool = True,
        size: int = 0,
        reserve: bool = False,
        wake: bool = False,
    ) -> asyncio.Future[_T]:
        writer = self._require_writer()
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        writer.submit(Job(run, future, durable, size, reserve, wake))
        return future

    async def _read(self, run: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._readers is None:
            raise SpoolError(f"spool {self.directory} is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._read_in_thread, run)

    def _read_in_thread(self, run: Callable[[sqlite3.Connection], _T]) -> _T:
        conn: sqlite3.Connection | None = getattr(self._reader_local, "conn", None)
        try:
            if conn is None:
                conn = self._reader_local.conn = self._connect_reader()
            return run(conn)
        except sqlite3.Error as exc:
            raise translate(exc, self.free_bytes) from exc

    def _quick_read(self, run: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._quick is None:
            raise SpoolError(f"spool {self.directory} is not open")
        try:
            return run(self._quick)
        except sqlite3.Error as exc:
            raise translate(exc, self.free_bytes) from exc

    _free_checked = float("-inf")
    _free_cached = 0

    def free_bytes(self) -> int:
        """Free bytes on the spool's file system for unprivileged writers."""
        stat = os.statvfs(self.directory)
        return stat.f_bavail * stat.f_frsize

    # -- reception -----------------------------------------------------------------------

    def has_room(self, size: int) -> bool:
        """Whether a message of ``size`` bytes would fit above the reserve now.

        A cheap check for ``MAIL FROM … SIZE=`` (RFC 1870); :meth:`store` checks
        again, so a False here is advice, not a promise.
        """
        now = time.monotonic()
        if now - self._free_checked > _FREE_SPACE_CACHE:
            # statvfs() costs ~0.3 ms here, too much for every MAIL command; the
            # writer thread checks again, exactly, before every commit.
            try:
                self._free_cached = self.free_bytes()
            except OSError:
                return False
            self._free_checked = now
        return self._free_cached - size - _OVERHEAD >= self.min_free_bytes

    async def store(self, envelope: Envelope, content: bytes) -> str:
        """Store a message for its recipients; return its queue id once it is durable.

        Raises :class:`~mailwright.errors.SpoolFullError` when the disk is
        full or below the reserve (answer 452 4.3.1), :class:`SpoolError` for
        other database failures, :class:`ValueError` for an envelope without
        recipients. On any error nothing of the message is stored.
        """
        now = self.clock()
        message = writes.NewMessage.prepare(envelope, content, now)
        queue_id = await self._write(
            partial(writes.insert_message, ids=self._ids, message=message, now=now),
            size=len(content) + _OVERHEAD,
            reserve=True,
            wake=True,
        )
        self._stores += 1
        return queue_id

    async def store_claimed(self, envelope: Envelope, content: bytes) -> Claimed:
        """Store a message with its recipients claimed by this spool; durable when it returns.

        For the process that received the message and delivers it straight
        from memory: the recipients are active under this spool's owner token
        from the first commit, so no other delivery loop claims them, and if
        this process dies they go back to the queue like any other claim.
        Every recipient must be reported through :meth:`record`. Raises as
        :meth:`store` does.
        """
        return await self.submit_claimed(envelope, content)

    def submit_claimed(self, envelope: Envelope, content: bytes) -> asyncio.Future[Claimed]:
        """:meth:`store_claimed` as a future the caller can keep past its own cancellation.

        A claimed message that is committed must reach its deliverer even
        when the task that stored it was cancelled meanwhile, or its
        recipients would stay claimed until this process ends.
        """
        now = self.clock()
        message = writes.NewMessage.prepare(envelope, content, now)
        owner = self.owner
        ids = self._ids

        def run(conn: sqlite3.Connection) -> Claimed:
            queue_id, message_id, rcpt_ids = writes.insert_claimed_message(
                conn, ids, message, now, owner
            )
            recipients = tuple(
                ClaimedRecipient(rcpt_id, r.address, r.domain, 0, None, r.notify, r.orcpt)
                for rcpt_id, r in zip(rcpt_ids, envelope.recipients, strict=True)
            )
            return Claimed(
                queue_id, message_id, envelope, recipients, len(content), message.received_at
            )

        future = self._submit(run, size=len(content) + _OVERHEAD, reserve=True)
        future.add_done_callback(self._count_store)
        return future

    def _count_store(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._stores += 1

    # -- delivery ------------------------------------------------------------------------

    async def claim_due(self, now: float, limit: int) -> list[Claimed]:
        """Claim up to ``limit`` queued recipients due by ``now``, earliest first.

        They are marked active (without an fsync: a lost mark only means a
        retry) and come back grouped per message. Each must be reported
        through :meth:`record`. Raises :class:`ValueError` for a limit below 1.
        """
        if limit < 1:
            raise ValueError(f"claim limit must be at least 1, got {limit}")
        # Finding them reads index and table pages scattered over the file (tens of
        # milliseconds for a thousand in a cold million-message spool): a reader thread
        # does that; the writer, on the event loop, only marks the rows still queued.
        candidates = await self._read(partial(reads.claim_candidates, now=now, limit=limit))
        if not candidates[0]:
            return []
        return await self._write(
            partial(writes.claim_rows, owner=self.owner, now=now, candidates=candidates),
            durable=False,
        )

    async def load_content(self, message: Claimed | int) -> bytes:
        """The bytes of a claimed message (or of a message rowid).

        Raises :class:`~mailwright.spool.MessageNotFoundError` when it has
        been deleted meanwhile.
        """
        message_id = message.message_id if isinstance(message, Claimed) else message
        # On the loop, not in a reader thread: one indexed blob read costs microseconds,
        # and a thread would wait for the busy loop to hand back the GIL.
        return self._quick_read(partial(reads.load_content, message_id=message_id))

    async def record(
        self,
        outcomes: Iterable[Outcome],
        new_messages: Iterable[tuple[Envelope, bytes]] = (),
    ) -> list[str]:
        """Apply delivery outcomes and store ``new_messages`` in one transaction.

        ``new_messages`` are the bounces (DSNs) the caller built for failed
        recipients: committed together with the removal of those recipients,
        a bounce is never lost and never sent twice. Returns their queue ids.
        Not refused for the reserve (only by a really full disk), so that
        delivery can always make progress. Raises :class:`SpoolError`.
        """
        return await self.submit_record(outcomes, new_messages)

    def submit_record(
        self,
        outcomes: Iterable[Outcome],
        new_messages: Iterable[tuple[Envelope, bytes]] = (),
    ) -> asyncio.Future[list[str]]:
        """:meth:`record` as a future, for callers that only need a callback."""
        now = self.clock()
        outcome_list = list(outcomes)
        prepared = [writes.NewMessage.prepare(env, data, now) for env, data in new_messages]
        ids = self._ids

        def run(conn: sqlite3.Connection) -> list[str]:
            writes.apply_outcomes(conn, outcome_list, now)
            return [writes.insert_message(conn, ids, message, now) for message in prepared]

        size = sum(len(message.content) + _OVERHEAD for message in prepared)
        # Not durable on its own: a commit lost in a crash loses the outcomes and
        # the bounces together (the transaction is atomic), so the recipients are
        # simply tried again: at least once, never lost. The next durable commit
        # (any store) makes these frames durable too, as they share the WAL.
        return self._submit(run, durable=False, size=size, wake=bool(prepared))

    def next_due(self) -> float | None:
        """The earliest ``next_attempt`` among queued recipients, None when none is queued."""
        return self._quick_read(reads.next_due)

    async def wait_for_work(self) -> None:
        """Sleep until this process stores or flushes work (bound it with ``asyncio.timeout``).

        Work stored by another process does not wake it: a delivery loop
        sleeps at most until :meth:`next_due` or a polling interval, e.g.
        ``with contextlib.suppress(TimeoutError): async with
        asyncio.timeout(delay): await spool.wait_for_work()``.
        """
        if self._work is None:
            raise SpoolError(f"spool {self.directory} is not open")
        await self._work.wait()
        self._work.clear()

    async def recover(self) -> int:
        """Requeue work claimed by owners that have died since; return how many recipients."""
        released = await self._write(
            partial(writes.recover, directory=self.directory, me=self.owner), wake=True
        )
        if released:
            logger.info("spool.recovered recipients=%d directory=%s", released, self.directory)
        return released

    # -- administration ------------------------------------------------------------------

    async def summary(self) -> list[DomainSummary]:
        """Queued recipients per domain (scans the queue; for operators)."""
        return await self._read(reads.summary)

    async def list_messages(
        self, domain: str | None = None, limit: int = 100, after: str | None = None
    ) -> list[MessageInfo]:
        """Up to ``limit`` messages in queue id order, after the queue id ``after``."""
        return await self._read(
            partial(reads.list_messages, domain=domain, limit=limit, after=after)
        )

    async def get_message(self, queue_id: str) -> MessageDetail:
        """One message in full. Raises :class:`~mailwright.spool.MessageNotFoundError`."""
        return await self._read(partial(reads.get_message, queue_id=queue_id))

    async def delete(self, queue_id: str) -> bool:
        """Delete a message without notice to anyone; False if it was not there.

        Recipients being delivered at that moment may still be delivered;
        their outcomes are then ignored.
        """
        return await self._write(partial(writes.delete_message, queue_id=queue_id))

    async def flush(self, queue_id: str | None = None) -> int:
        """Make queued recipients (of one message, or all) due now; return how many are queued.

        Raises :class:`~mailwright.spool.MessageNotFoundError` for an unknown id.
        A flush of the whole queue runs in transactions of :data:`FLUSH_CHUNK`
        recipients, so that a million deferred messages never hold the event
        loop (where the writer runs) for more than a moment at a time.
        """
        now = self.clock()
        if queue_id is not None:
            return await self._write(partial(writes.flush, now=now, queue_id=queue_id), wake=True)

        queued = await self._read(reads.count_queued)
        while True:
            moved = await self._write(
                partial(writes.flush_some, now=now, limit=FLUSH_CHUNK), wake=True
            )
            if moved < FLUSH_CHUNK:
                return queued

    async def claim_message_for_bounce(self, queue_id: str) -> Claimed:
        """Claim every queued recipient of a message so the caller can bounce it now.

        The caller builds the DSN and reports :class:`~mailwright.spool.Failed`
        for each recipient through :meth:`record` with the DSN as a new
        message. Recipients being delivered right now are not included.
        Raises :class:`~mailwright.spool.MessageNotFoundError`.
        """
        return await self._write(
            partial(writes.claim_message, owner=self.owner, queue_id=queue_id), durable=False
        )

    def statistics(self) -> SpoolStatistics:
        """A snapshot for metrics. Counting rows reads the tables' smallest indexes."""
        writer = self._require_writer()
        # TODO: COUNT(*) walks an index: about 20-40 ms on the event loop with a million
        # queued; a metrics scraper calling this often should get cached counts instead.
        messages, recipients, active = self._quick_read(reads.counts)
        counters = writer.counters
        return SpoolStatistics(
            messages=messages,
            recipients=recipients,
            active=active,
            stores=self._stores,
            commits=counters.commits,
            transactions=counters.transactions,
            jobs=counters.jobs,
            pending=writer.pending,
        )


def _fsync_directory(directory: Path) -> None:
    """Make the folder's entries (the database and WAL files) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
