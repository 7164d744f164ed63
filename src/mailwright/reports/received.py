"""The store of aggregate reports others sent about our domains: one SQLite file.

Receivers report about a domain once a day each, and many send the same
report twice (a retry after a timeout, a copy to a second ``rua``
address), so :meth:`ReceivedReports.add` refuses a report whose reporting
organisation, report id and policy domain it already holds. Every row is
kept as reported, with its authentication results in a table of their
own, so that later questions (a sender's history, forwarding paths) can be
asked of the same file; :meth:`ReceivedReports.sources` answers the first
one a postmaster asks: who sends as my domain, and does it pass?

The API is synchronous (stdlib :mod:`sqlite3`); callers on an event loop
run it in a worker thread. The database is in WAL mode, so ``mailwright
dmarc sources`` reads while the server writes, and every write is one
``BEGIN IMMEDIATE`` transaction with ``synchronous=FULL``: a report is
either stored whole or not at all, and stays stored after a power loss.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from mailwright.errors import ReportError
from mailwright.reports.model import AggregateReport, Row

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    id INTEGER PRIMARY KEY,
    identity TEXT NOT NULL UNIQUE,  -- JSON [org_name, report_id or a digest, policy domain]
    org_name TEXT NOT NULL,
    email TEXT NOT NULL,
    report_id TEXT NOT NULL,
    period_begin INTEGER NOT NULL,
    period_end INTEGER NOT NULL,
    extra_contact_info TEXT,
    generator TEXT,
    errors TEXT NOT NULL,           -- JSON list of strings
    policy_domain TEXT NOT NULL,
    p TEXT NOT NULL,
    sp TEXT,
    np TEXT,
    adkim TEXT,
    aspf TEXT,
    testing TEXT,
    discovery_method TEXT,
    fo TEXT,
    pct INTEGER,
    version TEXT,
    namespace TEXT,
    problems TEXT NOT NULL,         -- JSON list of strings
    received_at REAL NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_by_domain ON reports (policy_domain, period_end);

CREATE TABLE IF NOT EXISTS report_rows (
    id INTEGER PRIMARY KEY,
    report INTEGER NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    source_ip TEXT NOT NULL,
    count INTEGER NOT NULL,
    disposition TEXT NOT NULL,
    dkim TEXT NOT NULL,
    spf TEXT NOT NULL,
    header_from TEXT NOT NULL,
    header_from_reversed TEXT NOT NULL,  -- "com.example.mail.": subdomains by range
    envelope_from TEXT,
    envelope_to TEXT,
    reasons TEXT NOT NULL           -- JSON list of [type, comment]
);
CREATE INDEX IF NOT EXISTS report_rows_by_report ON report_rows (report);
CREATE INDEX IF NOT EXISTS report_rows_by_header_from ON report_rows (header_from_reversed);

CREATE TABLE IF NOT EXISTS auth_results (
    row INTEGER NOT NULL REFERENCES report_rows (id) ON DELETE CASCADE,
    method TEXT NOT NULL CHECK (method IN ('dkim', 'spf')),
    domain TEXT NOT NULL,
    result TEXT NOT NULL,
    selector TEXT,                  -- DKIM
    scope TEXT,                     -- SPF: mfrom or helo
    human_result TEXT
);
CREATE INDEX IF NOT EXISTS auth_results_by_row ON auth_results (row);
"""

#: Rows about DOMAIN: its header_from domain is DOMAIN or under it, or its policy domain is.
#: (Two indexed lookups joined by UNION: an OR across the join would scan every row.)
_ABOUT = """
    FROM report_rows r JOIN reports rep ON rep.id = r.report
    WHERE r.id IN (
        SELECT id FROM report_rows
        WHERE header_from_reversed >= :low AND header_from_reversed < :high
        UNION
        SELECT report_rows.id FROM reports JOIN report_rows ON report_rows.report = reports.id
        WHERE reports.policy_domain = :domain
    )
    AND (:since IS NULL OR rep.period_end >= :since)
"""
_ROWS_ABOUT = (
    "SELECT r.id, r.source_ip, r.count, r.disposition, r.dkim, r.spf, r.header_from,"
    " rep.id, rep.org_name, rep.period_begin, rep.period_end" + _ABOUT
)
_AUTH_ABOUT = (
    "SELECT a.row, a.method, a.domain FROM auth_results a WHERE a.row IN (SELECT r.id"
    + _ABOUT
    + ")"
)


@dataclass(frozen=True, slots=True)
class SourceSummary:
    """What the stored reports say about one source address sending as a domain.

    ``dmarc_pass`` counts messages whose evaluated DKIM or SPF result is
    ``pass``; ``dmarc_fail`` every other message (``fail``, and rows whose
    reporter left the results out). ``dispositions`` maps each disposition
    to its messages (``unspecified`` when the reporter left it empty). The
    domain lists (``organisations``, ``dkim_domains``, ``spf_domains``,
    ``header_from``) are ordered by the messages they cover, most first;
    the DKIM ``d=`` and SPF domains usually name the sending service.
    ``first_seen`` and ``last_seen`` are the earliest begin and the latest
    end of the reports' periods (Unix seconds); ``reports`` how many
    reports mention the address.
    """

    source_ip: str
    messages: int
    dmarc_pass: int
    dmarc_fail: int
    dispositions: Mapping[str, int]
    organisations: tuple[str, ...]
    dkim_domains: tuple[str, ...]
    spf_domains: tuple[str, ...]
    header_from: tuple[str, ...]
    first_seen: int
    last_seen: int
    reports: int

    @property
    def pass_ratio(self) -> float | None:
        """The share of messages that pass DMARC (0 to 1); None without messages."""
        return self.dmarc_pass / self.messages if self.messages else None


@dataclass
class _Tally:
    """A :class:`SourceSummary` being added up."""

    messages: int = 0
    dmarc_pass: int = 0
    dispositions: Counter[str] = field(default_factory=Counter)
    organisations: Counter[str] = field(default_factory=Counter)
    dkim_domains: Counter[str] = field(default_factory=Counter)
    spf_domains: Counter[str] = field(default_factory=Counter)
    header_from: Counter[str] = field(default_factory=Counter)
    first_seen: int | None = None
    last_seen: int | None = None
    reports: set[int] = field(default_factory=set)

    def add_row(
        self,
        count: int,
        disposition: str,
        dkim: str,
        spf: str,
        header_from: str,
        report: int,
        org_name: str,
        begin: int,
        end: int,
    ) -> None:
        """Count one stored row of report ``report`` (by ``org_name``, for begin to end)."""
        self.messages += count
        if dkim == "pass" or spf == "pass":
            self.dmarc_pass += count
        self.dispositions[disposition or "unspecified"] += count
        self.organisations[org_name] += count
        if header_from:
            self.header_from[header_from] += count
        self.reports.add(report)
        self.first_seen = begin if self.first_seen is None else min(self.first_seen, begin)
        self.last_seen = end if self.last_seen is None else max(self.last_seen, end)

    def summary(self, source_ip: str) -> SourceSummary:
        return SourceSummary(
            source_ip=source_ip,
            messages=self.messages,
            dmarc_pass=self.dmarc_pass,
            dmarc_fail=self.messages - self.dmarc_pass,
            dispositions=dict(sorted(self.dispositions.items())),
            organisations=_by_volume(self.organisations),
            dkim_domains=_by_volume(self.dkim_domains),
            spf_domains=_by_volume(self.spf_domains),
            header_from=_by_volume(self.header_from),
            first_seen=self.first_seen or 0,
            last_seen=self.last_seen or 0,
            reports=len(self.reports),
        )


def _by_volume(counter: Counter[str]) -> tuple[str, ...]:
    return tuple(name for name, _ in sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def _normal_domain(domain: str) -> str:
    return domain.strip().lower().rstrip(".")


def _reversed(domain: str) -> str:
    """``mail.example.com`` → ``com.example.mail.``: a domain and its subdomains sort together."""
    return ".".join(reversed(domain.split("."))) + "."


def _identity(report: AggregateReport) -> str:
    """What makes two reports the same one: organisation, report id and policy domain.

    A report without an id is identified by a digest of its content, so
    only an identical copy counts as a duplicate.
    """
    report_id = report.metadata.report_id
    if not report_id:
        content = repr((report.metadata, report.policy, report.rows)).encode()
        report_id = "sha256:" + hashlib.sha256(content).hexdigest()
    return json.dumps([report.metadata.org_name, report_id, report.policy.domain])


class ReceivedReports:
    """The aggregate reports we received, in the SQLite file ``path``.

    Opening creates the file and its tables when missing. Every method may
    raise :class:`~mailwright.errors.ReportError` when SQLite fails (the
    disk is full, the file is not a database), with the SQLite error as
    its cause. One object may be shared by threads: calls are serialised.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise ReportError(f"cannot open the report store {path}: {exc}") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise ReportError(
                    f"the report store {path} has schema version {version}; this mailwright"
                    f" knows version {SCHEMA_VERSION} (a newer mailwright wrote it)"
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            self._db.close()
            raise ReportError(f"cannot open the report store {path}: {exc}") from exc
        except ReportError:
            self._db.close()
            raise

    def __enter__(self) -> ReceivedReports:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the database; the object cannot be used afterwards."""
        with self._lock:
            self._db.close()

    def add(self, report: AggregateReport, *, received_at: float, source: str = "") -> bool:
        """Store ``report``; False (storing nothing) when the same report was stored before.

        ``received_at`` is when it arrived (Unix seconds); ``source`` where
        from (the sender's address, the imported file's name), for the
        operator.
        """
        meta, policy = report.metadata, report.policy
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    cursor = self._db.execute(
                        "INSERT OR IGNORE INTO reports (identity, org_name, email, report_id,"
                        " period_begin, period_end, extra_contact_info, generator, errors,"
                        " policy_domain, p, sp, np, adkim, aspf, testing, discovery_method, fo,"
                        " pct, version, namespace, problems, received_at, source)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                        " ?, ?, ?)",
                        (
                            _identity(report),
                            meta.org_name,
                            meta.email,
                            meta.report_id,
                            meta.begin,
                            meta.end,
                            meta.extra_contact_info,
                            meta.generator,
                            json.dumps(list(meta.errors)),
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
                            report.version,
                            report.namespace,
                            json.dumps(list(report.problems)),
                            received_at,
                            source,
                        ),
                    )
                    stored = cursor.rowcount == 1
                    if stored and cursor.lastrowid is not None:
                        self._add_rows(cursor.lastrowid, report.rows)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise ReportError(f"cannot store the report in {self.path}: {exc}") from exc
        return stored

    def _add_rows(self, report_key: int, rows: Iterable[Row]) -> None:
        for row in rows:
            cursor = self._db.execute(
                "INSERT INTO report_rows (report, source_ip, count, disposition, dkim, spf,"
                " header_from, header_from_reversed, envelope_from, envelope_to, reasons)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    report_key,
                    row.source_ip,
                    row.count,
                    row.disposition,
                    row.dkim,
                    row.spf,
                    row.header_from,
                    _reversed(row.header_from),
                    row.envelope_from,
                    row.envelope_to,
                    json.dumps([[reason.type, reason.comment] for reason in row.reasons]),
                ),
            )
            row_key = cursor.lastrowid
            self._db.executemany(
                "INSERT INTO auth_results (row, method, domain, result, selector, scope,"
                " human_result) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    *(
                        (
                            row_key,
                            "dkim",
                            dkim.domain,
                            dkim.result,
                            dkim.selector,
                            None,
                            dkim.human_result,
                        )
                        for dkim in row.dkim_results
                    ),
                    *(
                        (row_key, "spf", spf.domain, spf.result, None, spf.scope, spf.human_result)
                        for spf in row.spf_results
                    ),
                ],
            )

    def sources(self, domain: str, *, since: float | None = None) -> list[SourceSummary]:
        """Who sends as ``domain``: one summary per source address, most messages first.

        Counts every stored row whose header_from domain is ``domain`` or a
        subdomain of it, or whose report's policy domain is ``domain``.
        With ``since`` (Unix seconds), only reports whose period ends at or
        after it count.
        """
        name = _normal_domain(domain)
        if not name:
            raise ValueError("sources() needs a domain name")
        low = _reversed(name)
        parameters = {"low": low, "high": low[:-1] + "/", "domain": name, "since": since}

        tallies: dict[str, _Tally] = {}
        row_sources: dict[int, tuple[_Tally, int]] = {}
        with self._lock:
            try:
                self._db.execute("BEGIN")  # one snapshot for both queries
                try:
                    for key, ip, count, *fields in self._db.execute(_ROWS_ABOUT, parameters):
                        tally = tallies.setdefault(ip, _Tally())
                        tally.add_row(count, *fields)
                        row_sources[key] = (tally, count)
                    for key, method, auth_domain in self._db.execute(_AUTH_ABOUT, parameters):
                        tally, count = row_sources[key]
                        found = tally.dkim_domains if method == "dkim" else tally.spf_domains
                        found[auth_domain] += count
                finally:
                    self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise ReportError(f"cannot read the report store {self.path}: {exc}") from exc

        summaries = [tally.summary(ip) for ip, tally in tallies.items()]
        summaries.sort(key=lambda summary: (-summary.messages, summary.source_ip))
        return summaries

    def domains(self) -> list[str]:
        """The policy domains stored reports are about, sorted."""
        with self._lock:
            try:
                found = self._db.execute(
                    "SELECT DISTINCT policy_domain FROM reports WHERE policy_domain != ''"
                    " ORDER BY policy_domain"
                ).fetchall()
            except sqlite3.Error as exc:
                raise ReportError(f"cannot read the report store {self.path}: {exc}") from exc
        return [str(name) for (name,) in found]
