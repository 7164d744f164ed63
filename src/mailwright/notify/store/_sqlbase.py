"""The plumbing under the SQL store: transactions on worker threads, placeholders, audit rows.

:class:`SqlBase` runs each unit of work (a function of a :class:`Tx`) as one
transaction on a worker thread the store owns, so the event loop never waits
on the database; it translates driver errors once, here (a taken unique key
is :class:`~mailwright.notify.errors.Conflict`, a deadlock is retried, the
rest is :class:`~mailwright.notify.errors.StoreError`), and it brings the
schema up to date when the store opens. A backend subclass supplies
connections and transactions, nothing else.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from functools import partial
from typing import Any, TypeVar, cast

from mailwright.notify.errors import Conflict, NotifyError, StoreError
from mailwright.notify.model import Actor, Category
from mailwright.notify.store import codec
from mailwright.notify.store._worker import Outcome, Worker, run_each
from mailwright.notify.store.base import NotifyStore
from mailwright.notify.store.schema import BOOTSTRAP, MIGRATIONS, SCHEMA_VERSION, statement_sql

log = logging.getLogger(__name__)

T = TypeVar("T")
Row = tuple[Any, ...]

#: Rows per ``IN (...)`` list when a batch looks up many keys.
CHUNK = 500

#: Attempts of a transaction the database aborted to break a deadlock.
ATTEMPTS = 3

#: A batch this large (rows) may leave the planner's statistics behind.
BULK_ROWS = 1000

#: Seconds between two statistics refreshes of one table.
STATISTICS_EVERY = 30.0


class Tx:
    """One transaction's cursor, taking ``?`` placeholders on either backend."""

    __slots__ = ("_cursor", "_pyformat")

    _translated: dict[str, str] = {}

    def __init__(self, cursor: Any, *, pyformat: bool) -> None:
        self._cursor = cursor
        self._pyformat = pyformat

    def _sql(self, sql: str) -> str:
        if not self._pyformat:
            return sql
        text = self._translated.get(sql)
        if text is None:
            text = sql.replace("%", "%%").replace("?", "%s")
            self._translated[sql] = text
        return text

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute one statement; the number of rows it changed."""
        self._cursor.execute(self._sql(sql), params)
        return int(self._cursor.rowcount)

    def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Execute one statement for each of ``rows`` (batched by the driver)."""
        self._cursor.executemany(self._sql(sql), rows)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        self._cursor.execute(self._sql(sql), params)
        return cast("Row | None", self._cursor.fetchone())

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._cursor.execute(self._sql(sql), params)
        return cast("list[Row]", self._cursor.fetchall())


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def marks(count: int) -> str:
    """``?, ?, ?`` for an ``IN`` list of ``count`` values."""
    return ", ".join("?" * count)


class _Write:
    """A write unit of work; under group commit it may share a transaction with others."""

    __slots__ = ("store", "work")

    def __init__(self, store: SqlBase, work: Callable[[Tx], Any]) -> None:
        self.store = store
        self.work = work

    def __call__(self) -> Any:
        return self.store._transact(self.work, True)


class SqlBase(NotifyStore):
    """Transactions on worker threads; a backend subclass provides connections.

    ``clock`` stamps what the store records on its own (audit rows, update
    times, ledger ``recorded_at``). ``workers`` is the number of threads the
    store runs SQL on: one for SQLite, the pool size for PostgreSQL.
    """

    #: Name of the backend, for logs.
    backend = "sql"

    #: Driver errors meaning a unique key was taken (an address, an id); see _is_conflict.
    conflict_errors: tuple[type[Exception], ...] = ()

    #: Driver errors after which the transaction is worth running again (deadlocks).
    retry_errors: tuple[type[Exception], ...] = ()

    #: Every other driver error, reported as StoreError.
    database_errors: tuple[type[Exception], ...] = ()

    #: Commit a run of queued writes in one transaction (one connection, one writer).
    group_commit = False

    #: Digest windows claimed per transaction by close_due_windows.
    windows_per_transaction = 500

    #: Claim many windows in one statement (a data-modifying WITH), not two per window.
    claims_in_one_statement = False

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        workers: int = 1,
        category_ttl: float = 5.0,
    ) -> None:
        self._clock = clock
        self._workers = workers
        self._category_ttl = category_ttl
        self._worker: Worker | None = None
        self._categories: dict[str, Category] | None = None
        self._categories_read_at = 0.0
        self._analysed: dict[str, float] = {}

    # -- what a backend provides ---------------------------------------------------------

    @abc.abstractmethod
    def _connect(self) -> None:
        """Open connections (on a worker thread); raise StoreError when unreachable."""

    @abc.abstractmethod
    def _disconnect(self) -> None:
        """Close connections (on a worker thread)."""

    @abc.abstractmethod
    def _transaction(self, write: bool) -> AbstractContextManager[Tx]:
        """A transaction: committed when the block ends, rolled back when it raises.

        A ``write`` transaction takes the write lock up front where the
        database has one (SQLite), so it never fails halfway on a busy database.
        """

    def _is_conflict(self, exc: Exception) -> bool:
        """Whether a driver error says a unique key is taken (an address, an id, a key)."""
        return isinstance(exc, self.conflict_errors)

    def _refresh_statistics(self, tx: Tx, tables: Sequence[str]) -> None:
        """Bring the planner's statistics of these tables up to date (after a bulk load)."""

    def _lock_schema(self, tx: Tx) -> None:
        """Keep two processes from migrating at once (where the write lock does not)."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the store is, for logs and errors (never with a password)."""

    # -- plumbing --------------------------------------------------------------------

    def _transact(self, work: Callable[[Tx], T], write: bool) -> T:
        """Run ``work`` in one transaction, on the calling worker thread."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self._transaction(write) as tx:
                    return work(tx)
            except self.retry_errors as exc:
                if attempt == ATTEMPTS:
                    raise self._translate(exc) from exc
                log.info("notify.store.retry backend=%s attempt=%d", self.backend, attempt)
            except Exception as exc:
                translated = self._translate(exc)
                if translated is exc:
                    raise
                raise translated from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _translate(self, exc: Exception) -> Exception:
        """The error to raise for what a unit of work raised: driver errors become ours."""
        if isinstance(exc, NotifyError) or not isinstance(exc, self.database_errors):
            return exc
        if self._is_conflict(exc):
            translated: Exception = Conflict(f"the change conflicts with stored data: {exc}")
        else:
            translated = StoreError(f"{self.describe()}: {exc}")
        translated.__cause__ = exc
        return translated

    def _run_jobs(self, jobs: Sequence[Callable[[], Any]]) -> list[Outcome]:
        """The worker's runner under group commit: runs of queued writes share a commit."""
        outcomes: list[Outcome] = []
        start = 0
        while start < len(jobs):
            end = start
            while end < len(jobs) and isinstance(jobs[end], _Write):
                end += 1
            if end - start > 1:
                outcomes.extend(self._commit_group(cast("list[_Write]", jobs[start:end])))
            else:
                end = start + 1
                outcomes.extend(run_each(jobs[start:end]))
            start = end
        return outcomes

    def _commit_group(self, writes: Sequence[_Write]) -> list[Outcome]:
        """Run writes in one transaction, each in its own savepoint, with one commit.

        Each write stays all or nothing (a failing one is rolled back to its
        savepoint and gets its error); the others commit together. When the
        group fails as a whole, nothing of it is committed and each write
        runs again on its own.
        """
        outcomes: list[Outcome] = []
        try:
            with self._transaction(True) as tx:
                for job in writes:
                    tx.run("SAVEPOINT job")
                    try:
                        result = job.work(tx)
                    except Exception as exc:
                        tx.run("ROLLBACK TO SAVEPOINT job")
                        tx.run("RELEASE SAVEPOINT job")
                        outcomes.append((None, self._translate(exc)))
                    else:
                        tx.run("RELEASE SAVEPOINT job")
                        outcomes.append((result, None))
        except Exception as exc:
            log.info("notify.store.group_failed writes=%d error=%s", len(writes), exc)
            return run_each(writes)
        return outcomes

    async def _offload(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on a worker thread."""
        worker = self._worker
        if worker is None:
            raise StoreError(f"{self.describe()}: the store is not open")
        return await worker.submit(fn)

    async def _call(self, work: Callable[[Tx], T], *, write: bool = False) -> T:
        """Run ``work`` in one transaction on a worker thread."""
        if write:
            return cast(T, await self._offload(_Write(self, work)))
        return await self._offload(partial(self._transact, work, False))

    async def _after_bulk(self, rows: int, tables: Sequence[str]) -> None:
        """After a batch of ``rows``: refresh the statistics of tables not refreshed lately.

        A planner without statistics (a database just loaded) can pick an index
        that reads a whole category's ledger for one address; ANALYZE settles
        that. Done at most every ``STATISTICS_EVERY`` seconds per table.
        """
        now = time.monotonic()
        stale = [
            t for t in tables if now - self._analysed.get(t, -STATISTICS_EVERY) >= STATISTICS_EVERY
        ]
        if rows < BULK_ROWS or not stale:
            return
        self._analysed.update((table, now) for table in stale)
        await self._call(lambda tx: self._refresh_statistics(tx, stale), write=True)

    def _audit(
        self, tx: Tx, actor: Actor, subject: str, action: str, detail: dict[str, Any], now: float
    ) -> None:
        tx.run(
            "INSERT INTO audit (id, created_at, actor, via, subject, action, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (codec.new_id(), now, actor.actor, actor.via, subject, action, codec.dumps(detail)),
        )

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        if self._worker is not None:
            return
        runner = self._run_jobs if self.group_commit else None
        self._worker = Worker(self._workers, f"notify-{self.backend}", runner)

        try:
            await self._offload(self._connect)
            before, after = await self._call(self._migrate, write=True)
        except BaseException:
            await self.close()
            raise

        if before != after:
            log.info(
                "notify.store.migrated store=%s from=%d to=%d", self.describe(), before, after
            )
        log.info("notify.store.opened store=%s schema=%d", self.describe(), after)

    def _migrate(self, tx: Tx) -> tuple[int, int]:
        """Apply the migrations the database lacks; its versions before and after."""
        self._lock_schema(tx)
        tx.run(BOOTSTRAP)
        have = {row[0] for row in tx.all("SELECT version FROM schema_version")}
        before = max(have, default=0)
        if before > SCHEMA_VERSION:
            raise StoreError(
                f"{self.describe()}: schema version {before} is newer than this mailwright"
                f" knows ({SCHEMA_VERSION}); upgrade mailwright"
            )

        now = self._clock()
        for migration in MIGRATIONS:
            if migration.version in have:
                continue
            for statement in migration.statements:
                tx.run(statement_sql(statement, self.backend))
            tx.run(
                "INSERT INTO schema_version (version, summary, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.summary, now),
            )
        return before, SCHEMA_VERSION

    async def close(self) -> None:
        worker = self._worker
        if worker is None:
            return
        try:
            await self._offload(self._disconnect)
        finally:
            self._worker = None
            worker.stop()
        log.info("notify.store.closed store=%s", self.describe())

    # -- the category cache ------------------------------------------------------------

    def _category_map(self, tx: Tx) -> dict[str, Category]:
        """Every category, from memory when read less than ``category_ttl`` seconds ago."""
        cached = self._categories
        if cached is not None and time.monotonic() - self._categories_read_at < self._category_ttl:
            return cached

        read_at = time.monotonic()
        rows = tx.all("SELECT name, body, updated_at FROM categories")
        fresh = {row[0]: codec.category_from_json(row[0], row[1], row[2]) for row in rows}
        self._categories, self._categories_read_at = fresh, read_at
        return fresh
