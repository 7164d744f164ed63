"""The notification store on PostgreSQL, for several nodes sharing one state.

Psycopg 3's synchronous API on a :class:`psycopg_pool.ConnectionPool`, one
worker thread per pooled connection. Transactions run at READ COMMITTED, which
is enough for everything the store does: unique keys settle concurrent
inserts (``ON CONFLICT``), and a digest window is claimed by deleting its
buffered items (one statement for many windows), which a second closer
re-checks after the first commits. A transaction the
server aborts to break a deadlock is run again. Psycopg prepares a statement
on a connection once it has run a few times, so the router's SELECTs are
parsed and planned once per connection.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import psycopg
import psycopg.errors
import psycopg_pool

from mailwright.notify.errors import StoreError
from mailwright.notify.store._sqlbase import Tx
from mailwright.notify.store.sql import SqlStore

#: The advisory lock key two processes migrating the same database take in turn.
SCHEMA_LOCK = 0x6D77_6E74  # "mwnt"


def mask_password(url: str) -> str:
    """The URL with any password in it replaced by ``***``, for logs and errors."""
    url = re.sub(r"(://[^/:@]*:)[^/@]*@", r"\1***@", url)
    return re.sub(r"(password=)[^&\s]*", r"\1***", url)


class PostgresStore(SqlStore):
    """The store in the PostgreSQL database at ``url`` (``postgresql://…``)."""

    backend = "postgresql"
    conflict_errors = (psycopg.errors.UniqueViolation,)
    retry_errors = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
    database_errors = (psycopg.Error,)
    claims_in_one_statement = True

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        pool_size: int = 8,
        connect_timeout: float = 10.0,
        category_ttl: float = 5.0,
    ) -> None:
        super().__init__(clock=clock, workers=pool_size, category_ttl=category_ttl)
        self.url = url
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._pool: psycopg_pool.ConnectionPool | None = None

    def describe(self) -> str:
        return mask_password(self.url)

    def _connect(self) -> None:
        # One plain connection first: its error says what is wrong (refused,
        # password, no such database), where the pool would only time out.
        try:
            psycopg.connect(self.url, connect_timeout=max(1, int(self._connect_timeout))).close()
        except psycopg.Error as exc:
            raise StoreError(f"{self.describe()}: cannot connect: {exc}") from exc

        pool: psycopg_pool.ConnectionPool = psycopg_pool.ConnectionPool(
            self.url,
            min_size=1,
            max_size=self._pool_size,
            open=False,
            name="notify",
            timeout=self._connect_timeout,
        )
        try:
            pool.open(wait=True, timeout=self._connect_timeout)
        except psycopg.Error as exc:
            pool.close()
            raise StoreError(f"{self.describe()}: cannot connect: {exc}") from exc
        self._pool = pool

    def _disconnect(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Tx]:
        pool = self._pool
        if pool is None:
            raise StoreError(f"{self.describe()}: the store is not open")

        # The pool's context commits at the end of the block, rolls back on error.
        with pool.connection() as connection, connection.cursor() as cursor:
            yield Tx(cursor, pyformat=True)

    def _refresh_statistics(self, tx: Tx, tables: Sequence[str]) -> None:
        for table in tables:
            tx.run(f"ANALYZE {table}")

    def _lock_schema(self, tx: Tx) -> None:
        tx.one("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))
