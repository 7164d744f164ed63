"""The store of DMARC evaluations that aggregate reports are made from (RFC 9990 §3.1).

Use::

    store = EvaluationStore(path, interval=config.dmarc.report_interval)
    await store.start()          # open the database, start the periodic flush
    store.add(evaluation)        # on the event loop, for every message: cheap
    ...
    rows = await store.pending(until)          # unreported, of periods ended by until
    await store.mark_reported(ids, report_id)  # once the report is queued
    await store.purge(reported_before=..., pending_before=...)  # housekeeping
    await store.close()          # flush what is buffered, close

Theory of operation. Every inbound message is evaluated, so :meth:`add`
runs on the hot path of reception: it appends the evaluation to an
in-memory list and returns. The buffer is written to SQLite by
:meth:`flush`, in one transaction, on a worker thread (one thread per
store, so the connection is only ever used from it): every
``flush_interval`` seconds, as soon as ``flush_size`` evaluations wait, and
on :meth:`close`.

Rows are kept aggregated, not one per message. A busy MX evaluates millions
of messages a day, but an aggregate report only needs counts of distinct
rows, and most messages repeat a row seen before (the same source address,
identifiers and results). So each evaluation is added on insert into the
row of its (period, policy domain, row key) with a ``count`` column: an
``INSERT ... ON CONFLICT DO UPDATE SET count = count + n``, after the batch
was summed in memory. Periods are aligned to UTC multiples of ``interval``
(the report interval); the row key is :meth:`Row.key` encoded as compact
JSON and indexed by a 16-byte BLAKE2b digest. The policy record and the
``rua`` of each (period, policy domain) are stored once, the latest
evaluation's winning (RFC 9990 §3.1: one report notes the final policy
configuration observed). Evaluations without a ``rua`` are not stored at
all: nobody asked for their report.

A row stops taking new counts once it is reported: the conflict target is a
partial unique index over unreported rows only, so an evaluation flushed
after its period was reported starts a new row, which the next report run
picks up. The reporter waits a grace period after each period's end to make
that rare.

Several server processes may write the same file: the database is in WAL
mode and every connection waits up to ``busy_timeout`` seconds for the
write lock, in the worker thread, never on the event loop.

Crash behaviour. Evaluations still in the buffer are lost when the process
dies: at most ``flush_interval`` seconds' worth (or ``flush_size``
evaluations). They are statistics, not mail; the messages themselves were
stored durably by the spool. Committed rows survive: the flush commits with
``synchronous=NORMAL``, durable after the next checkpoint. A flush that
fails (disk full, lock held past the timeout) keeps its batch for the next
attempt, up to ``max_buffer`` evaluations; beyond that the oldest are
dropped and counted in :meth:`statistics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mailwright.errors import MailwrightError
from mailwright.reports.model import (
    DkimAuth,
    Evaluation,
    OverrideReason,
    PolicyPublished,
    Row,
    SpfAuth,
)

logger = logging.getLogger("mailwright.dmarc")

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS report_rows (
    id INTEGER PRIMARY KEY,
    period_begin INTEGER NOT NULL,
    period_end INTEGER NOT NULL,
    policy_domain TEXT NOT NULL,
    row_hash BLOB NOT NULL,
    row TEXT NOT NULL,
    count INTEGER NOT NULL,
    last_seen REAL NOT NULL,
    report_id TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS report_rows_open
    ON report_rows (period_begin, period_end, policy_domain, row_hash)
    WHERE report_id IS NULL;
CREATE INDEX IF NOT EXISTS report_rows_period
    ON report_rows (period_begin, policy_domain);
CREATE TABLE IF NOT EXISTS report_periods (
    period_begin INTEGER NOT NULL,
    period_end INTEGER NOT NULL,
    policy_domain TEXT NOT NULL,
    policy TEXT NOT NULL,
    rua TEXT NOT NULL,
    seen_at REAL NOT NULL,
    reported_until INTEGER NOT NULL DEFAULT 0,  -- a report of the period ran up to here
    PRIMARY KEY (period_begin, period_end, policy_domain)
) WITHOUT ROWID;
"""

_ADD_ROW = """
INSERT INTO report_rows
    (period_begin, period_end, policy_domain, row_hash, row, count, last_seen)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (period_begin, period_end, policy_domain, row_hash) WHERE report_id IS NULL
DO UPDATE SET count = count + excluded.count, last_seen = max(last_seen, excluded.last_seen)
"""

_ADD_PERIOD = """
INSERT INTO report_periods (period_begin, period_end, policy_domain, policy, rua, seen_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (period_begin, period_end, policy_domain)
DO UPDATE SET policy = excluded.policy, rua = excluded.rua, seen_at = excluded.seen_at
WHERE excluded.seen_at >= report_periods.seen_at
"""

_PENDING = """
SELECT r.id, r.period_begin, r.period_end, r.policy_domain, r.row, r.count, r.last_seen,
       p.policy, p.rua, p.reported_until
FROM report_rows AS r
JOIN report_periods AS p USING (period_begin, period_end, policy_domain)
WHERE r.report_id IS NULL AND (r.period_end <= ? OR r.period_begin < ?)
ORDER BY r.period_begin, r.period_end, r.policy_domain  -- walks report_rows_open
"""

_COVERED = """
UPDATE report_periods SET reported_until = max(reported_until, ?)
WHERE period_begin = ? AND period_end = ? AND policy_domain = ?
"""

#: Statements per ``executemany`` batch when marking rows reported.
_MARK_CHUNK = 500


class EvaluationStoreError(MailwrightError):
    """The evaluation database could not be opened, read or written (cause kept)."""


@dataclass(frozen=True, slots=True)
class StoredEvaluation:
    """One stored row: the evaluations of one period, policy domain and row key, counted.

    ``row.count`` is how many evaluations it holds. ``period_begin`` and
    ``period_end`` are Unix seconds, ``period_end`` exclusive (the start of
    the next period). ``policy`` and ``rua`` are those of the latest
    evaluation of the period and policy domain; ``last_seen`` is when the
    row's latest evaluation was received. ``covered_begin`` and
    ``covered_end`` are the span a report of the row covers: the period,
    less what an earlier report of a period still under way already
    covered, and up to ``until`` for one still under way.
    """

    id: int
    period_begin: int
    period_end: int
    policy: PolicyPublished
    row: Row
    rua: tuple[str, ...]
    last_seen: float
    covered_begin: int = -1  # -1: period_begin
    covered_end: int = -1  # -1: period_end

    def __post_init__(self) -> None:
        if self.covered_begin < 0:
            object.__setattr__(self, "covered_begin", self.period_begin)
        if self.covered_end < 0:
            object.__setattr__(self, "covered_end", self.period_end)

    @property
    def policy_domain(self) -> str:
        """The policy domain the row is reported to."""
        return self.policy.domain


class EvaluationStore:
    """DMARC evaluations kept for aggregate reports, in SQLite, aggregated on insert.

    ``path`` is the database file (created with its folder when missing).
    ``interval`` is the report period in seconds, periods being aligned to
    UTC multiples of it; it must be the reporter's ``report_interval``.
    ``flush_interval`` and ``flush_size`` say when the buffer is written;
    ``max_buffer`` bounds it when writes keep failing. ``busy_timeout`` is
    how long a write waits for another process's lock.

    Lifecycle: :meth:`start` opens the database and starts the periodic
    flush (on the running event loop); :meth:`close` stops it, writes what
    is buffered and closes. Without :meth:`start` (a command-line tool),
    the database is opened by the first call that needs it and nothing is
    flushed in the background. Every method but :meth:`add` and
    :meth:`statistics` is a coroutine whose SQLite work runs on the
    store's worker thread; they raise :class:`EvaluationStoreError`.
    """

    def __init__(
        self,
        path: Path,
        *,
        interval: float = 86400.0,
        flush_interval: float = 1.0,
        flush_size: int = 1000,
        max_buffer: int = 100_000,
        busy_timeout: float = 10.0,
    ) -> None:
        if interval < 1:
            raise ValueError(f"the report interval must be at least 1 second, not {interval}")
        self.path = Path(path)
        self.interval = interval
        self.flush_interval = flush_interval
        self.flush_size = flush_size
        self.max_buffer = max_buffer
        self.busy_timeout = busy_timeout
        self._buffer: list[Evaluation] = []
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._full: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._added = 0
        self._written = 0
        self._dropped = 0
        self._flushes = 0
        self._failures = 0

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Open (or create) the database and start flushing every ``flush_interval``."""
        await self._run(lambda conn: None)
        if self._flusher is None:
            self._full = asyncio.Event()
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush_periodically(), name="dmarc-evaluations-flush"
            )

    async def close(self) -> None:
        """Stop the periodic flush, write the buffer, close the database. Safe to call twice."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        try:
            if self._buffer:
                await self.flush()
        finally:
            if self._executor is not None:
                if self._conn is not None:
                    await self._in_thread(self._close_connection)
                self._executor.shutdown(wait=True)
                self._executor = None

    # -- the hot path ----------------------------------------------------------------

    def add(self, evaluation: Evaluation) -> None:
        """Buffer one evaluation; it is written by the next flush.

        Costs a list append: no I/O, no encoding. Evaluations with no
        ``rua`` are ignored (no report will be sent for them). When the
        buffer is full (writes failing for a long time), the evaluation is
        dropped and counted.
        """
        if not evaluation.rua:
            return
        if len(self._buffer) >= self.max_buffer:
            self._dropped += 1
            return
        self._buffer.append(evaluation)
        self._added += 1
        if len(self._buffer) >= self.flush_size and self._full is not None:
            self._full.set()

    async def flush(self) -> int:
        """Write the buffered evaluations in one transaction; how many were written.

        On failure the batch is put back in front of the buffer (within
        ``max_buffer``) and :class:`EvaluationStoreError` is raised.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            batch, self._buffer = self._buffer, []
            if not batch:
                return 0
            try:
                await self._run(lambda conn: _write(conn, batch, self.interval))
            except EvaluationStoreError:
                self._failures += 1
                room = max(self.max_buffer - len(self._buffer), 0)
                kept = batch[-room:] if room else []
                self._dropped += len(batch) - len(kept)
                self._buffer[:0] = kept
                raise
            self._flushes += 1
            self._written += len(batch)
            return len(batch)

    async def _flush_periodically(self) -> None:
        assert self._full is not None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_interval):
                    await self._full.wait()
            self._full.clear()
            try:
                await self.flush()
            except EvaluationStoreError as error:
                logger.warning(
                    "dmarc.store_error path=%s buffered=%d error=%s",
                    self.path,
                    len(self._buffer),
                    error,
                )

    # -- the reporter's side ---------------------------------------------------------

    async def pending(
        self, until: float, *, include_current: bool = False
    ) -> list[StoredEvaluation]:
        """The unreported rows of every period that ended at or before ``until``.

        A period still under way is pending only with ``include_current``
        (``mailwright dmarc report``: "what was recorded so far"); its rows
        then cover the period up to ``until``, and the next report of the
        period starts there, so reports never overlap (RFC 9990 §3.1.1).
        Rows come ordered by period and policy domain; the query walks the
        index of unreported rows only, however many reported rows are kept.
        """
        current = math.floor(until) if include_current else -1
        return await self._run(lambda conn: _read_pending(conn, until, current))

    async def mark_reported(
        self,
        ids: Iterable[int],
        report_id: str,
        *,
        counts: Mapping[int, int] | None = None,
        covered: tuple[int, int, str, int] | None = None,
    ) -> int:
        """Record that rows ``ids`` went into report ``report_id``; how many were marked.

        Rows already marked keep their first report id. ``counts`` gives the
        count each row had when it was read: evaluations another process
        flushed into a row since then move to a fresh unreported row, so no
        evaluation is ever marked without being in a report. ``covered`` is
        ``(period_begin, period_end, policy_domain, until)`` for a report of
        a period still under way: the next one starts at ``until``.
        """
        numbers = list(ids)
        known = dict(counts or {})

        def mark(conn: sqlite3.Connection) -> int:
            changed = 0
            with conn:
                for start in range(0, len(numbers), _MARK_CHUNK):
                    chunk = numbers[start : start + _MARK_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    if known:
                        changed += _split_grown(conn, chunk, known, report_id)
                    cursor = conn.execute(
                        "UPDATE report_rows SET report_id = ?"
                        f" WHERE report_id IS NULL AND id IN ({marks})",  # placeholders only
                        (report_id, *chunk),
                    )
                    changed += cursor.rowcount
                if covered is not None:
                    conn.execute(_COVERED, (covered[3], *covered[:3]))
            return changed

        return await self._run(mark)

    async def purge(self, *, reported_before: float, pending_before: float | None = None) -> int:
        """Delete old rows; how many were deleted.

        Reported rows of periods that began before ``reported_before`` go
        (they were kept so a report could be looked at or sent again);
        so do unreported rows of periods that began before
        ``pending_before``, when given (reports that could not be sent for
        that long are given up). Policy records no row refers to any more
        go with them.
        """

        def purge(conn: sqlite3.Connection) -> int:
            with conn:
                deleted = conn.execute(
                    "DELETE FROM report_rows WHERE report_id IS NOT NULL AND period_begin < ?",
                    (math.floor(reported_before),),
                ).rowcount
                if pending_before is not None:
                    deleted += conn.execute(
                        "DELETE FROM report_rows WHERE report_id IS NULL AND period_begin < ?",
                        (math.floor(pending_before),),
                    ).rowcount
                conn.execute(
                    "DELETE FROM report_periods WHERE NOT EXISTS (SELECT 1 FROM report_rows AS r"
                    " WHERE r.period_begin = report_periods.period_begin"
                    " AND r.policy_domain = report_periods.policy_domain"
                    " AND r.period_end = report_periods.period_end)"
                )
            return deleted

        return await self._run(purge)

    def statistics(self) -> dict[str, int]:
        """Counters for metrics: evaluations buffered, added, written, dropped; flushes."""
        return {
            "buffered": len(self._buffer),
            "added": self._added,
            "written": self._written,
            "dropped": self._dropped,
            "flushes": self._flushes,
            "failed_flushes": self._failures,
        }

    def period_of(self, moment: float) -> tuple[int, int]:
        """The period holding ``moment``: (begin, end) in Unix seconds, end exclusive."""
        return _period(moment, self.interval)

    # -- the worker thread -------------------------------------------------------------

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(connection)`` on the worker thread, opening the database first."""

        def call() -> T:
            conn = self._conn or self._open()
            try:
                return work(conn)
            except sqlite3.Error as exc:
                raise EvaluationStoreError(f"{self.path}: {exc}") from exc

        return await self._in_thread(call)

    async def _in_thread(self, call: Callable[[], T]) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dmarc-store")
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise EvaluationStoreError(f"cannot open {self.path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise EvaluationStoreError(f"{self.path} cannot use WAL mode (got {mode!r})")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            # "with conn" now opens BEGIN IMMEDIATE: the write lock is taken (or waited
            # for, busy_timeout) before the first statement, never upgraded mid-way.
            conn.isolation_level = "IMMEDIATE"
        except sqlite3.Error as exc:
            conn.close()
            raise EvaluationStoreError(f"cannot set up {self.path}: {exc}") from exc
        except EvaluationStoreError:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# --- Writing and reading rows (worker thread) ------------------------------------------


def _period(moment: float, interval: float) -> tuple[int, int]:
    begin = math.floor(moment / interval) * interval
    return int(begin), int(begin + interval)


def _write(conn: sqlite3.Connection, batch: Sequence[Evaluation], interval: float) -> None:
    """Sum ``batch`` by (period, policy domain, row key), then upsert it in one transaction."""
    rows: dict[tuple[int, int, str, tuple[object, ...]], list[Any]] = {}
    periods: dict[tuple[int, int, str], Evaluation] = {}
    for evaluation in batch:
        begin, end = _period(evaluation.received_at, interval)
        domain = evaluation.policy.domain
        key = (begin, end, domain, evaluation.row.key())
        entry = rows.get(key)
        if entry is None:
            rows[key] = [evaluation.row, evaluation.row.count, evaluation.received_at]
        else:
            entry[1] += evaluation.row.count
            entry[2] = max(entry[2], evaluation.received_at)
        latest = periods.get((begin, end, domain))
        if latest is None or evaluation.received_at >= latest.received_at:
            periods[(begin, end, domain)] = evaluation

    row_values = []
    for (begin, end, domain, _), (row, count, seen) in rows.items():
        text = encode_row(row)
        digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
        row_values.append((begin, end, domain, digest, text, count, seen))
    period_values = [
        (begin, end, domain, encode_policy(e.policy), json.dumps(list(e.rua)), e.received_at)
        for (begin, end, domain), e in periods.items()
    ]
    with conn:
        conn.executemany(_ADD_ROW, row_values)
        conn.executemany(_ADD_PERIOD, period_values)


def _split_grown(
    conn: sqlite3.Connection, ids: Sequence[int], counts: Mapping[int, int], report_id: str
) -> int:
    """Mark rows of ``ids`` that grew since they were read; their growth goes to fresh rows.

    Each such row keeps the count that was read and gets ``report_id``; the
    evaluations added since go into a new unreported row (inserted after
    the marking, so the index of open rows never holds two equal rows).
    Returns how many rows were marked here.
    """
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        "SELECT id, period_begin, period_end, policy_domain, row_hash, row, count, last_seen"
        f" FROM report_rows WHERE report_id IS NULL AND id IN ({marks})",  # placeholders only
        tuple(ids),
    ).fetchall()
    marked = 0
    for ident, begin, end, domain, digest, row, count, seen in rows:
        read = counts.get(ident)
        if read is None or count <= read:
            continue
        conn.execute(
            "UPDATE report_rows SET count = ?, report_id = ? WHERE id = ?",
            (read, report_id, ident),
        )
        conn.execute(
            "INSERT INTO report_rows"
            " (period_begin, period_end, policy_domain, row_hash, row, count, last_seen)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (begin, end, domain, digest, row, count - read, seen),
        )
        marked += 1
    return marked


def _read_pending(conn: sqlite3.Connection, until: float, current: int) -> list[StoredEvaluation]:
    """The pending rows; a row that cannot be decoded is logged and left out.

    ``current`` is ``until`` in whole seconds when periods under way count,
    else -1 (no period begins before that).
    """
    found = []
    policies: dict[str, PolicyPublished] = {}
    for ident, begin, end, _domain, row, count, seen, policy, rua, done in conn.execute(
        _PENDING, (until, current)
    ):
        try:
            published = policies.get(policy)
            if published is None:
                published = policies[policy] = decode_policy(policy)
            stored = StoredEvaluation(
                id=ident,
                period_begin=begin,
                period_end=end,
                policy=published,
                row=decode_row(row, count),
                rua=tuple(str(uri) for uri in json.loads(rua)),
                last_seen=seen,
                covered_begin=max(begin, done),
                covered_end=min(end, current) if end > until else end,
            )
        except ValueError as error:
            logger.error("dmarc.store_corrupt_row id=%d error=%s", ident, error)
            continue
        found.append(stored)
    return found


# --- Compact JSON for rows and policies --------------------------------------------------
#
# Lists rather than objects: the field names would double the size of every row. The
# order is fixed (the dataclass fields' order), so equal rows encode to equal text.


def encode_row(row: Row) -> str:
    """``row`` without its count, as compact JSON: equal keys give equal text."""
    return json.dumps(
        [
            row.source_ip,
            row.disposition,
            row.dkim,
            row.spf,
            row.header_from,
            row.envelope_from,
            row.envelope_to,
            [[reason.type, reason.comment] for reason in row.reasons],
            [[d.domain, d.result, d.selector, d.human_result] for d in row.dkim_results],
            [[s.domain, s.result, s.scope, s.human_result] for s in row.spf_results],
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )


def decode_row(text: str, count: int) -> Row:
    """The row :func:`encode_row` wrote, with ``count``; :class:`ValueError` if malformed."""
    try:
        ip, disposition, dkim, spf, header_from, envelope_from, envelope_to, *rest = json.loads(
            text
        )
        reasons, dkim_results, spf_results = rest
        return Row(
            source_ip=ip,
            count=count,
            disposition=disposition,
            dkim=dkim,
            spf=spf,
            header_from=header_from,
            envelope_from=envelope_from,
            envelope_to=envelope_to,
            reasons=tuple(OverrideReason(*reason) for reason in reasons),
            dkim_results=tuple(
                DkimAuth(domain=d, result=r, selector=s, human_result=h)
                for d, r, s, h in dkim_results
            ),
            spf_results=tuple(
                SpfAuth(domain=d, result=r, scope=s, human_result=h) for d, r, s, h in spf_results
            ),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"stored row {text[:80]!r} is malformed: {exc}") from exc


def encode_policy(policy: PolicyPublished) -> str:
    """``policy`` as compact JSON (fields in declaration order)."""
    return json.dumps(
        [
            policy.domain,
            policy.p,
            policy.sp,
            policy.np,
            policy.adkim,
            policy.aspf,
            policy.testing,
            policy.discovery_method,
            policy.fo,
            policy.pct,
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )


def decode_policy(text: str) -> PolicyPublished:
    """The policy :func:`encode_policy` wrote; :class:`ValueError` if malformed."""
    try:
        domain, p, sp, np, adkim, aspf, testing, discovery_method, fo, pct = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"stored policy {text[:80]!r} is malformed: {exc}") from exc
    return PolicyPublished(
        domain=domain,
        p=p,
        sp=sp,
        np=np,
        adkim=adkim,
        aspf=aspf,
        testing=testing,
        discovery_method=discovery_method,
        fo=fo,
        pct=pct,
    )
