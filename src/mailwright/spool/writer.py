"""Group commit: one thread owns the write connection and batches every request.

The cost of a durable message is the fsync of its commit, a few milliseconds
on a disk, far more than the inserts. So the writer never commits one message
at a time when more are waiting: it takes the first request off its queue,
then every request already queued behind it (up to :attr:`max_batch` requests
or :attr:`max_batch_bytes` of content), runs them all in one ``BEGIN
IMMEDIATE`` … ``COMMIT`` and so pays one fsync of the WAL for all of them.
Under load batches grow by themselves (requests pile up during an fsync); an
idle server commits single messages with no added wait.

Requests arrive from the event loop as :class:`Job` values carrying a future;
after the commit the writer resolves every future of the batch with one
``call_soon_threadsafe``, so the loop wakes once per batch, not per message.

If a batch fails, it is rolled back whole and its jobs are run again one per
transaction, so one bad request (or a disk that fills up halfway) fails alone
and every request gets its own precise answer. Jobs that only mark work
active (claims) are not *durable*: a transaction made only of them commits
without an fsync, since losing such a mark to a crash only means the
recipient is tried again, as recovery would do anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mailwright.errors import SpoolError, SpoolFullError

logger = logging.getLogger("mailwright.spool")


@dataclass(slots=True)
class Job:
    """One request to the writer: ``run(connection)`` inside a transaction.

    ``size`` is the number of bytes it adds; when ``reserve`` is true it is
    refused with :class:`SpoolFullError` if it would leave less free disk than
    the spool's reserve (new mail is refused before bounces and deliveries,
    which must still get through on a nearly full disk). ``wake`` says that a
    success means new work for the delivery side.
    """

    run: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    durable: bool = True
    size: int = 0
    reserve: bool = False
    wake: bool = False


@dataclass(slots=True)
class WriterCounters:
    """What the writer has done since it started (read by ``statistics()``)."""

    transactions: int = 0
    commits: int = 0  # durable ones
    jobs: int = 0
    refused_full: int = 0
    failed_batches: int = 0


_STOP = object()


def translate(exc: BaseException, free_bytes: Callable[[], int]) -> BaseException:
    """Map a SQLite or OS error to :class:`SpoolFullError` or :class:`SpoolError`.

    SQLite reports ENOSPC on a write as ``SQLITE_FULL``; an fsync or truncate
    that fails for want of space comes back as an I/O error, so that case is
    told apart by looking at the free space. Other errors are returned as
    they are. The original error is kept as ``__cause__``.
    """
    if isinstance(exc, SpoolError) or not isinstance(exc, sqlite3.Error | OSError):
        return exc

    full = isinstance(exc, OSError) and exc.errno == errno.ENOSPC
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        full = code == sqlite3.SQLITE_FULL
        if not full and code is not None and code & 0xFF == sqlite3.SQLITE_IOERR:
            try:
                full = free_bytes() < 1024 * 1024
            except OSError:
                full = False

    error: SpoolError
    if full:
        error = SpoolFullError(f"spool disk is full: {exc}")
    else:
        error = SpoolError(f"spool database error: {exc}")
    error.__cause__ = exc
    return error


@dataclass(slots=True)
class _Settled:
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None
    wake: bool = False


@dataclass
class GroupCommitWriter:
    """The writer thread. Start with :meth:`start`, stop with :meth:`stop`."""

    conn: sqlite3.Connection
    loop: asyncio.AbstractEventLoop
    fsync: bool
    free_bytes: Callable[[], int]
    min_free_bytes: int
    on_wake: Callable[[], None]
    max_batch: int = 1024
    max_batch_bytes: int = 64 * 1024 * 1024
    counters: WriterCounters = field(default_factory=WriterCounters)
    _queue: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)
    _thread: threading.Thread | None = None
    _synchronous_full: bool = True
    _stopped: asyncio.Future[None] | None = None

    def start(self) -> None:
        """Start the thread; from now on it alone uses :attr:`conn`."""
        self._synchronous_full = self.fsync
        self._stopped = self.loop.create_future()
        self._thread = threading.Thread(target=self._main, name="spool-writer", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queue ``job``; its future is resolved after its transaction ends."""
        self._queue.put(job)

    @property
    def pending(self) -> int:
        """Requests waiting for the writer."""
        return self._queue.qsize()

    async def stop(self) -> None:
        """Finish every job submitted so far, close the connection, end the thread."""
        if self._thread is None or self._stopped is None:
            return
        self._queue.put(_STOP)
        await self._stopped
        self._thread.join()
        self._thread = None

    # -- the thread --------------------------------------------------------------------

    def _main(self) -> None:
        carry: Any = None
        try:
            while True:
                first = carry if carry is not None else self._queue.get()
                carry = None
                if first is _STOP:
                    break

                batch: list[Job] = [first]
                size = first.size
                stopping = False
                while len(batch) < self.max_batch:
                    try:
                        job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if job is _STOP:
                        stopping = True
                        break
                    if size + job.size > self.max_batch_bytes:
                        carry = job
                        break
                    batch.append(job)
                    size += job.size

                self._process(batch)
                if stopping:
                    break
        finally:
            self.conn.close()
            self._call_soon(self._finish)

    def _finish(self) -> None:
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)

    def _process(self, batch: list[Job]) -> None:
        settled: list[_Settled] = []
        try:
            runnable = self._admit(batch, settled)
            if runnable:
                self._run(runnable, settled)
        except BaseException as exc:  # a bug here must not leave futures hanging forever
            logger.exception("spool.writer_failed jobs=%d", len(batch))
            done = {id(s.future) for s in settled}
            settled.extend(
                _Settled(j.future, error=exc) for j in batch if id(j.future) not in done
            )
        self._call_soon(self._settle, settled)

    def _admit(self, batch: list[Job], settled: list[_Settled]) -> list[Job]:
        """Refuse reserve-bound jobs that would eat into the free-space reserve."""
        if self.min_free_bytes <= 0 or not any(job.reserve for job in batch):
            return batch  # no reserve: only a really full disk refuses

        try:
            free = self.free_bytes()
        except OSError as exc:
            error = SpoolError(f"cannot tell free space of the spool: {exc}")
            error.__cause__ = exc
            settled.extend(_Settled(j.future, error=error) for j in batch if j.reserve)
            return [j for j in batch if not j.reserve]

        admitted = []
        for job in batch:
            if job.reserve:
                if free - job.size < self.min_free_bytes:
                    self.counters.refused_full += 1
                    settled.append(
                        _Settled(
                            job.future,
                            error=SpoolFullError(
                                f"spool disk has {free} bytes free, below the reserve of "
                                f"{self.min_free_bytes}"
                            ),
                        )
                    )
                    continue
                free -= job.size
            admitted.append(job)
        return admitted

    def _run(self, jobs: list[Job], settled: list[_Settled]) -> None:
        try:
            results = self._transaction(jobs)
        except BaseException as exc:
            if len(jobs) == 1:
                settled.append(_Settled(jobs[0].future, error=translate(exc, self.free_bytes)))
                return
            self.counters.failed_batches += 1
            logger.warning("spool.batch_failed jobs=%d error=%s", len(jobs), exc)
            for job in jobs:
                self._run([job], settled)
            return
        settled.extend(
            _Settled(job.future, result, wake=job.wake)
            for job, result in zip(jobs, results, strict=True)
        )

    def _transaction(self, jobs: list[Job]) -> list[Any]:
        durable = self.fsync and any(job.durable for job in jobs)
        if durable != self._synchronous_full:
            self.conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
            self._synchronous_full = durable

        self.conn.execute("BEGIN IMMEDIATE")
        try:
            results = [job.run(self.conn) for job in jobs]
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                try:
                    self.conn.execute("ROLLBACK")
                except sqlite3.Error as exc:  # SQLite may have rolled back already
                    logger.warning("spool.rollback_failed error=%s", exc)
            raise

        self.counters.transactions += 1
        self.counters.jobs += len(jobs)
        if any(job.durable for job in jobs):
            self.counters.commits += 1
        return results

    def _call_soon(self, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self.loop.call_soon_threadsafe(callback, *args)

    def _settle(self, settled: list[_Settled]) -> None:
        """Resolve the futures of one batch (runs in the event loop)."""
        wake = False
        for item in settled:
            wake = wake or (item.error is None and item.wake)
            if item.future.done():  # the caller was cancelled; the work was done all the same
                continue
            if item.error is not None:
                item.future.set_exception(item.error)
            else:
                item.future.set_result(item.result)
        if wake:
            self.on_wake()
