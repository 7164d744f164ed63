"""Group commit: every write of a process goes through one batching writer.

The cost of a durable message is the fsync of its commit, far more than its
inserts. So the writer never commits one message at a time when more are
waiting: requests that arrive while a commit is being made durable wait, and
the next transaction takes them all (up to :attr:`GroupCommitWriter.max_batch`
requests or :attr:`~GroupCommitWriter.max_batch_bytes` of content), so one
fsync covers the whole batch. Under load batches grow by themselves; an idle
server commits a single message with no added wait.

Where the work runs, and why. A first version ran every transaction in a
thread of its own. Python's sqlite3 module releases the GIL around each
statement and must take it back after; while the event loop thread is busy
(it is, under load) every such hand-back waits for the loop to yield the GIL.
A six-message transaction that takes 0.8 ms alone took 6 ms in the server
and 80 ms beside a busy thread, and the writer became the bottleneck. So the
statements now run on the event loop itself (a batch of inserts costs tens of
microseconds a message, less than the thread hand-offs did), and only the
two slow system calls leave it:

- the fsync: the connection uses ``synchronous=NORMAL``, under which SQLite
  syncs the WAL before each checkpoint and the database after it, but not at
  each commit; the writer makes each durable commit durable itself with one
  ``fdatasync`` of the WAL file in a worker thread (one GIL hand-back per
  batch), and resolves the batch's futures only after it returned. That is
  what ``synchronous=FULL`` does, minus SQLite's blocking call.
- checkpoints (copying the WAL into the database file): automatic
  checkpoints inside ``COMMIT`` are off, and a checkpoint thread with its own
  connection runs a passive checkpoint after every few megabytes committed.

Other processes may write to the same database (the delivery process, the
CLI). The loop must never sleep in SQLite's busy handler, so the connection
has no busy timeout: a batch that finds the database locked is put back and
tried again after a short, growing pause (:data:`BUSY_PAUSES`), and fails
with :class:`SpoolError` only after :data:`BUSY_LIMIT` seconds.

Claims and outcomes alone may wait :attr:`GroupCommitWriter.linger` seconds
for a store to share their transaction: every transaction takes the write
lock that all the processes on the spool contend for, and a busy server
stores often enough that they rarely wait that long.

If a batch fails otherwise, it is rolled back whole and its jobs are run again
one per transaction, so one bad request (or a disk that fills up halfway)
fails alone and every request gets its own precise answer. Jobs that only
mark work active (claims) or record outcomes are not *durable*: a batch made
only of them needs no fsync, since losing it to a crash means only that the
recipients are tried again. A failed fsync fails every durable job of its
batch: the data may be in the database, but it was never promised.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailwright.errors import SpoolError, SpoolFullError

logger = logging.getLogger("mailwright.spool")

#: Seconds between tries when another process holds the write lock (the last repeats).
BUSY_PAUSES = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05)

#: Seconds a batch may wait for another process's write lock before it fails.
BUSY_LIMIT = 30.0

#: Bytes committed between two passive checkpoints.
CHECKPOINT_BYTES = 4 * 1024 * 1024

#: Seconds after a commit by which a checkpoint runs even when few bytes were written.
CHECKPOINT_IDLE = 1.0

#: Seconds a free-space figure may be reused (bytes committed since are subtracted).
FREE_SPACE_TTL = 0.1


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
    busy_retries: int = 0
    checkpoints: int = 0


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


def _is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` says another connection holds a lock we need."""
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.OperationalError)
        and code is not None
        and code & 0xFF
        in (
            sqlite3.SQLITE_BUSY,
            sqlite3.SQLITE_LOCKED,
        )
    )


class _Busy(Exception):
    """The database was locked by another connection: put the batch back."""


@dataclass(slots=True)
class _Settled:
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None
    wake: bool = False
    durable: bool = False


class GroupCommitWriter:
    """The batching writer of one spool; see the module docstring.

    ``conn`` must be configured by :func:`~mailwright.spool.schema.configure_writer`
    and is used only from ``loop``'s thread from :meth:`start` on.
    ``database`` is the database file: its ``-wal`` file is synced after
    durable commits when ``fsync`` is true, and the checkpoint thread opens
    it once more. ``linger`` is how long claims and outcomes alone may wait
    for a store to share their transaction.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        loop: asyncio.AbstractEventLoop,
        *,
        fsync: bool,
        database: Path,
        free_bytes: Callable[[], int],
        min_free_bytes: int,
        on_wake: Callable[[], None],
        max_batch: int = 1024,
        max_batch_bytes: int = 64 * 1024 * 1024,
        linger: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.conn = conn
        self.loop = loop
        self.fsync = fsync
        self.database = Path(database)
        self.free_bytes = free_bytes
        self.min_free_bytes = min_free_bytes
        self.on_wake = on_wake
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        self.counters = WriterCounters()
        self._clock = clock
        self._pending: deque[Job] = deque()
        self._scheduled: asyncio.Handle | None = None
        self._lingering = False
        self.linger = linger
        self._syncing = False
        self._busy_since: float | None = None
        self._busy_tries = 0
        self._sync_pool: ThreadPoolExecutor | None = None
        self._wal_fd: int | None = None
        self._free = 0
        self._free_at = float("-inf")
        self._since_checkpoint = 0
        self._checkpointer: _Checkpointer | None = None
        self._checkpoint_timer: asyncio.TimerHandle | None = None
        self._full_seen = False  # a commit failed for want of space: truncate the WAL
        self._idle = asyncio.Event()
        self._idle.set()
        self._started = False

    def start(self) -> None:
        """Start the sync and checkpoint threads; from now on the loop alone uses ``conn``."""
        self._sync_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool-sync")
        self._checkpointer = _Checkpointer(self.database, fsync=self.fsync)
        self._started = True

    def submit(self, job: Job) -> None:
        """Queue ``job``; its future is resolved once its transaction is committed.

        For a durable job with ``fsync`` on, that is once the commit is on
        stable storage. Raises :class:`SpoolError` after :meth:`stop`.
        """
        if not self._started:
            raise SpoolError("the spool writer is not running")
        self._pending.append(job)
        self._idle.clear()
        self._schedule()

    @property
    def pending(self) -> int:
        """Requests waiting for a transaction."""
        return len(self._pending)

    async def stop(self) -> None:
        """Finish every job submitted so far, close the connection, end the threads."""
        if not self._started:
            return
        await self._idle.wait()
        self._started = False
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        if self._checkpoint_timer is not None:
            self._checkpoint_timer.cancel()
            self._checkpoint_timer = None
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.close)
            self._checkpointer = None
        if self._sync_pool is not None:
            self._sync_pool.shutdown(wait=True)
            self._sync_pool = None
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None
        self.conn.close()

    # -- the commit cycle ------------------------------------------------------------

    def _schedule(self, delay: float = 0.0) -> None:
        """Arrange a commit soon, unless one is arranged or a sync is in flight."""
        if self._syncing or not self._pending:
            return
        if self._scheduled is not None:
            if not self._lingering or not self._pending[-1].durable:
                return
            self._scheduled.cancel()  # a durable job ends the wait for company
            self._scheduled = None
        self._lingering = False
        if not delay and self.linger and not any(job.durable for job in self._pending):
            delay, self._lingering = self.linger, True
        if delay:
            self._scheduled = self.loop.call_later(delay, self._commit)
        else:
            self._scheduled = self.loop.call_soon(self._commit)

    def _take_batch(self) -> list[Job]:
        batch: list[Job] = []
        size = 0
        while self._pending and len(batch) < self.max_batch:
            job = self._pending[0]
            if batch and size + job.size > self.max_batch_bytes:
                break
            batch.append(self._pending.popleft())
            size += job.size
        return batch

    def _commit(self) -> None:
        """Run one batch in one transaction on the loop; start its fsync if it needs one."""
        self._scheduled = None
        batch = self._take_batch()
        settled: list[_Settled] = []
        pause = 0.0
        try:
            runnable = self._admit(batch, settled)
            if runnable:
                self._run(runnable, settled)
        except _Busy:
            pause = self._put_back(batch, settled)
        except BaseException as exc:  # a bug here must not leave futures hanging forever
            logger.exception("spool.writer_failed jobs=%d", len(batch))
            done = {id(s.future) for s in settled}
            settled.extend(
                _Settled(j.future, error=exc) for j in batch if id(j.future) not in done
            )
        if not pause:
            self._busy_since = None
            self._busy_tries = 0

        if self.fsync and any(s.durable and s.error is None for s in settled):
            self._syncing = True
            assert self._sync_pool is not None
            sync = self.loop.run_in_executor(self._sync_pool, self._sync_wal)
            sync.add_done_callback(lambda done: self._synced(done, settled, pause))
        else:
            self._finish(settled, pause)

    def _put_back(self, batch: list[Job], settled: list[_Settled]) -> float:
        """Requeue the unsettled jobs of a batch that found the database locked.

        Returns the pause before the next try; after :data:`BUSY_LIMIT`
        seconds of trying, fails the jobs instead and returns 0.
        """
        now = self._clock()
        if self._busy_since is None:
            self._busy_since = now
        done = {id(s.future) for s in settled}
        retry = [job for job in batch if id(job.future) not in done]
        if now - self._busy_since > BUSY_LIMIT:
            error = SpoolError(f"spool database stayed locked for over {BUSY_LIMIT:.0f} s")
            settled.extend(_Settled(job.future, error=error) for job in retry)
            return 0.0

        self.counters.busy_retries += 1
        self._pending.extendleft(reversed(retry))
        pause = BUSY_PAUSES[min(self._busy_tries, len(BUSY_PAUSES) - 1)]
        self._busy_tries += 1
        return pause

    def _synced(self, done: asyncio.Future[None], settled: list[_Settled], pause: float) -> None:
        """After the fsync: fail the durable jobs if it failed, resolve all, go on."""
        self._syncing = False
        error = done.exception()
        if error is not None:
            logger.error("spool.fsync_failed error=%s", error)
            failure = translate(error, self.free_bytes)
            if not isinstance(failure, SpoolError):
                failure = SpoolError(f"spool fsync failed: {error}")
                failure.__cause__ = error
            for item in settled:
                if item.durable and item.error is None:
                    item.error, item.result = failure, None
        self._finish(settled, pause)

    def _finish(self, settled: list[_Settled], pause: float = 0.0) -> None:
        self._settle(settled)
        self._maybe_checkpoint()
        if self._pending:
            self._schedule(pause)
        elif not self._syncing and self._scheduled is None:
            self._idle.set()

    # -- one batch ---------------------------------------------------------------------

    def _admit(self, batch: list[Job], settled: list[_Settled]) -> list[Job]:
        """Refuse reserve-bound jobs that would eat into the free-space reserve."""
        if self.min_free_bytes <= 0 or not any(job.reserve for job in batch):
            return batch  # no reserve: only a really full disk refuses

        try:
            free = self._free_space()
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

    def _free_space(self) -> int:
        """Free bytes now: a recent statvfs figure less what was committed since."""
        now = self._clock()
        if now - self._free_at > FREE_SPACE_TTL:
            self._free = self.free_bytes()
            self._free_at = now
        return self._free

    def _run(self, jobs: list[Job], settled: list[_Settled]) -> None:
        try:
            results = self._transaction(jobs)
        except _Busy:
            raise
        except BaseException as exc:
            if isinstance(translate(exc, self.free_bytes), SpoolFullError):
                self._full_seen = True
                self._since_checkpoint = max(self._since_checkpoint, 1)
            if len(jobs) == 1:
                settled.append(_Settled(jobs[0].future, error=translate(exc, self.free_bytes)))
                return
            self.counters.failed_batches += 1
            logger.warning("spool.batch_failed jobs=%d error=%s", len(jobs), exc)
            for job in jobs:
                self._run([job], settled)
            return
        committed = sum(job.size for job in jobs)
        self._free -= committed
        self._since_checkpoint += committed
        settled.extend(
            _Settled(job.future, result, wake=job.wake, durable=job.durable)
            for job, result in zip(jobs, results, strict=True)
        )

    def _transaction(self, jobs: list[Job]) -> list[Any]:
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise _Busy from exc
            raise
        try:
            results = [job.run(conn) for job in jobs]
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error as rollback_error:  # SQLite may have rolled back already
                    logger.warning("spool.rollback_failed error=%s", rollback_error)
            if _is_busy(exc):
                raise _Busy from exc
            raise

        self.counters.transactions += 1
        self.counters.jobs += len(jobs)
        if any(job.durable for job in jobs):
            self.counters.commits += 1
        return results

    def _settle(self, settled: list[_Settled]) -> None:
        """Resolve the futures of one batch."""
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

    # -- the threads -------------------------------------------------------------------

    def _sync_wal(self) -> None:
        """Make every committed WAL frame durable (in the sync thread).

        fsync works on the file, not the descriptor: our own descriptor of the
        ``-wal`` file flushes what SQLite's connection wrote. The file is never
        replaced while the writer connection is open (SQLite truncates or
        rewrites it in place), so the descriptor stays valid.
        """
        if self._wal_fd is None:
            self._wal_fd = os.open(f"{self.database}-wal", os.O_RDONLY | os.O_CLOEXEC)
        os.fdatasync(self._wal_fd)

    def _maybe_checkpoint(self) -> None:
        """Checkpoint after every few megabytes, and soon after any commit at all.

        The size trigger keeps the WAL short under load; the timer makes sure a
        quiet spool is checkpointed too, so its WAL restarts from the beginning
        instead of growing into the last free space of a small disk.
        """
        checkpointer = self._checkpointer
        if checkpointer is None or not self._since_checkpoint:
            return
        if self._full_seen:
            if checkpointer.request("TRUNCATE"):
                self._full_seen = False
                self._since_checkpoint = 0
                self.counters.checkpoints += 1
            return
        if self._since_checkpoint >= CHECKPOINT_BYTES:
            if checkpointer.request():
                self._since_checkpoint = 0
                self.counters.checkpoints += 1
            return
        if self._checkpoint_timer is None:
            self._checkpoint_timer = self.loop.call_later(CHECKPOINT_IDLE, self._checkpoint_soon)

    def _checkpoint_soon(self) -> None:
        self._checkpoint_timer = None
        if self._checkpointer is not None and self._since_checkpoint:
            if self._checkpointer.request("TRUNCATE" if self._full_seen else "PASSIVE"):
                self._full_seen = False
                self._since_checkpoint = 0
                self.counters.checkpoints += 1
            else:
                self._checkpoint_timer = self.loop.call_later(
                    CHECKPOINT_IDLE, self._checkpoint_soon
                )


class _Checkpointer:
    """A thread with its own connection that runs checkpoints on request.

    ``PASSIVE`` copies what it can without waiting for anyone; ``TRUNCATE``
    (after a full disk) also waits for readers and empties the WAL file, so
    its space goes back to the file system.
    """

    def __init__(self, database: Path, *, fsync: bool) -> None:
        self.database = database
        self.fsync = fsync
        self._wanted = threading.Event()
        self._mode = "PASSIVE"
        self._stopping = False
        self._running = False
        self._thread = threading.Thread(target=self._main, name="spool-checkpoint", daemon=True)
        self._thread.start()

    def request(self, mode: str = "PASSIVE") -> bool:
        """Ask for a checkpoint; False when one is still running."""
        if self._running:
            return False
        self._running = True
        self._mode = mode
        self._wanted.set()
        return True

    def close(self) -> None:
        """Stop the thread after the checkpoint it may be running."""
        self._stopping = True
        self._wanted.set()
        self._thread.join()

    def _main(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._wanted.wait()
                self._wanted.clear()
                if self._stopping:
                    return
                try:
                    if conn is None:
                        conn = sqlite3.connect(self.database, isolation_level=None)
                        synchronous = "NORMAL" if self.fsync else "OFF"
                        conn.execute(f"PRAGMA synchronous={synchronous}")
                        conn.execute("PRAGMA busy_timeout=5000")
                    conn.execute(f"PRAGMA wal_checkpoint({self._mode})").fetchone()
                except sqlite3.Error as exc:
                    logger.warning("spool.checkpoint_failed mode=%s error=%s", self._mode, exc)
                finally:
                    self._running = False
        finally:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
