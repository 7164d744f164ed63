"""The notification store in one SQLite file: the default, with nothing to set up.

One connection on one worker thread does everything, so the store's own calls
never contend; other processes on the same file do, and SQLite's locks settle
that: the file is in WAL mode (readers never block the writer), every write
transaction starts with ``BEGIN IMMEDIATE`` (it takes the write lock up front,
waiting up to ``busy_timeout`` for another process to finish, instead of
failing halfway), and ``synchronous=FULL`` makes a committed transaction
survive a power cut, not only a crash. The page cache (64 MiB) and the WAL's
checkpoint threshold (10,000 pages) are sized for closing digest windows in
batches of 500 (see :data:`CACHE_KIB`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mailwright.notify.errors import StoreError
from mailwright.notify.store._sqlbase import Tx
from mailwright.notify.store.sql import SqlStore

#: The connection's page cache (KiB): a batch of closed digest windows touches a few
#: thousand pages, and a cache smaller than that spills them to the WAL twice.
CACHE_KIB = 65_536

#: WAL pages that trigger a checkpoint: above what one batch of windows writes, so a
#: commit is not followed by a checkpoint (and its fsync) every time.
CHECKPOINT_PAGES = 10_000


class SqliteStore(SqlStore):
    """The store in the SQLite file at ``path`` (created with its directory if missing)."""

    backend = "sqlite"
    database_errors = (sqlite3.Error,)
    group_commit = True

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = 10.0,
        category_ttl: float = 5.0,
    ) -> None:
        super().__init__(clock=clock, workers=1, category_ttl=category_ttl)
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._connection: sqlite3.Connection | None = None

    def _is_conflict(self, exc: Exception) -> bool:
        # sqlite3 has one IntegrityError for every constraint; only UNIQUE is a conflict.
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    def _connect(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=512,
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{self.describe()}: cannot open: {exc}") from exc

        try:
            connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = FULL")
            connection.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            connection.execute(f"PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES}")
        except sqlite3.Error as exc:
            connection.close()
            raise StoreError(f"{self.describe()}: cannot open: {exc}") from exc
        self._connection = connection

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Tx]:
        connection = self._connection
        if connection is None:
            raise StoreError(f"{self.describe()}: the store is not open")

        connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield Tx(connection.cursor(), pyformat=False)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
