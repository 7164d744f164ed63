"""Stored evaluations turned into aggregate reports: :func:`build_reports` (RFC 9990 §3.1).

Use::

    pending = await store.pending(until)
    for built in build_reports(pending, org_name=..., email=..., receiver=hostname):
        built.report      # an AggregateReport, for xml_write.to_xml
        built.rua         # where the Domain Owner asked for it (as published)
        built.ids         # the stored rows it covers, for store.mark_reported

RFC 9990 asks for one report per policy domain and period (§3.1: "each
report MUST contain data for only one Policy Domain"), so rows are grouped
by (policy domain, period). Rows with equal :meth:`Row.key` are added up;
the store already merges most of them on insert, but rows written on either
side of a report (late evaluations) or by differently configured processes
meet here. The ``policy_published`` is the record of the latest evaluation,
since a report notes "only the final configuration observed during the
period" (§3.1), and so are the ``rua`` URIs.

Report ids. A Report-ID must be unique among reports to the same domain
(§3.5.1) and stay the same when a report is sent again (so the consumer can
drop the duplicate, §3.5.4). Ours is ``<begin>.<unique>.<policy
domain>@<receiver>``, where ``unique`` is 16 hex digits of a BLAKE2b digest
of the receiver, policy domain, period and the ids of the stored rows: the
same rows give the same id, and a second report for the same period (of
late evaluations) gets another. ``unique`` is also the ``unique-id`` of the
attachment's file name (§3.5.2), which allows letters and digits only.

Signatures. §3.1.3 says a row SHOULD hold at most 100 DKIM results,
preferring passing signatures of the From domain; rows with more are cut to
:data:`MAX_DKIM_RESULTS` in that order before they are keyed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from mailwright import __version__
from mailwright.reports.evaluations import StoredEvaluation
from mailwright.reports.model import (
    AggregateReport,
    DkimAuth,
    PolicyPublished,
    ReportMetadata,
    Row,
)

#: The ``generator`` element of the reports we write (RFC 9990 §3.1.1).
GENERATOR = f"mailwright {__version__}"

#: DKIM results kept per row (RFC 9990 §3.1.3).
MAX_DKIM_RESULTS = 100


@dataclass(frozen=True, slots=True)
class BuiltReport:
    """One report ready to write, with where it goes and which stored rows it covers.

    ``unique`` is the report's unique id (letters and digits), shared by
    its Report-ID and its attachment's file name. ``last_seen`` is when its
    latest evaluation was received.
    """

    report: AggregateReport
    rua: tuple[str, ...]
    ids: tuple[int, ...]
    unique: str
    last_seen: float
    counts: dict[int, int] = field(default_factory=dict)  # each row's count when read
    # (period_begin, period_end, policy_domain, covered up to) for a period under way
    partial: tuple[int, int, str, int] | None = None

    @property
    def policy_domain(self) -> str:
        """The policy domain the report is about."""
        return self.report.policy.domain


def build_reports(
    evaluations: Iterable[StoredEvaluation],
    *,
    org_name: str,
    email: str,
    receiver: str,
    extra_contact_info: str | None = None,
    generator: str | None = GENERATOR,
) -> list[BuiltReport]:
    """One report per (policy domain, period) of ``evaluations``, oldest period first.

    ``org_name`` and ``email`` fill ``report_metadata`` (the Reporting
    Organization and its contact); ``receiver`` is our host name, the
    domain of Report-IDs. Raises :class:`ValueError` for an empty
    ``receiver`` or ``org_name``.
    """
    if not receiver or not org_name:
        raise ValueError("a report needs a receiver host name and an organisation name")

    groups: dict[tuple[str, int, int], list[StoredEvaluation]] = {}
    for stored in evaluations:
        key = (stored.policy_domain, stored.covered_begin, stored.covered_end)
        groups.setdefault(key, []).append(stored)

    built = [
        _build(
            domain, begin, end, members, org_name, email, receiver, extra_contact_info, generator
        )
        for (domain, begin, end), members in groups.items()
    ]
    built.sort(key=lambda report: (report.report.metadata.begin, report.policy_domain))
    return built


def _build(
    domain: str,
    begin: int,
    end: int,
    members: Sequence[StoredEvaluation],
    org_name: str,
    email: str,
    receiver: str,
    extra_contact_info: str | None,
    generator: str | None,
) -> BuiltReport:
    latest = max(members, key=lambda stored: (stored.last_seen, stored.id))
    ids = tuple(sorted(stored.id for stored in members))
    unique = report_unique(receiver, domain, begin, end, ids)

    metadata = ReportMetadata(
        org_name=org_name,
        email=email,
        report_id=f"{begin}.{unique}.{domain}@{receiver}",
        begin=begin,
        end=end - 1,  # the last second of the period: consecutive reports never share one
        extra_contact_info=extra_contact_info,
        generator=generator,
    )
    report = AggregateReport(
        metadata=metadata,
        policy=_policy_of(latest.policy, domain),
        rows=add_up(stored.row for stored in members),
    )
    counts = {stored.id: stored.row.count for stored in members}
    partial = None
    if latest.covered_end < latest.period_end:
        partial = (latest.period_begin, latest.period_end, domain, latest.covered_end)
    return BuiltReport(report, latest.rua, ids, unique, latest.last_seen, counts, partial)


def add_up(rows: Iterable[Row]) -> tuple[Row, ...]:
    """Rows with equal keys merged, counts added; largest count first, then by key.

    DKIM results beyond :data:`MAX_DKIM_RESULTS` are cut first (see the
    module docstring), so rows that differ only past the cut merge.
    """
    counts: dict[tuple[object, ...], Row] = {}
    for row in rows:
        capped = cap_dkim_results(row)
        key = capped.key()
        known = counts.get(key)
        counts[key] = capped if known is None else known.with_count(known.count + capped.count)
    return tuple(sorted(counts.values(), key=lambda row: (-row.count, repr(row.key()))))


def cap_dkim_results(row: Row, limit: int = MAX_DKIM_RESULTS) -> Row:
    """``row`` with at most ``limit`` DKIM results, in RFC 9990 §3.1.3's order of preference.

    Passing signatures of the From domain itself first, then passing
    signatures of its parent or subdomains (relaxed alignment, approximated
    by the domain suffix), then other passes, then the rest; the order
    within each group is kept.
    """
    if len(row.dkim_results) <= limit:
        return row
    ranked = sorted(row.dkim_results, key=lambda result: _preference(result, row.header_from))
    return replace(row, dkim_results=tuple(ranked[:limit]))


def report_unique(receiver: str, domain: str, begin: int, end: int, ids: Sequence[int]) -> str:
    """The unique id of a report: 16 hex digits, the same for the same rows."""
    text = f"{receiver}|{domain}|{begin}|{end}|{','.join(map(str, ids))}"
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def _preference(result: DkimAuth, header_from: str) -> int:
    if result.result != "pass":
        return 3
    signer, author = result.domain.lower().rstrip("."), header_from.lower().rstrip(".")
    if signer == author:
        return 0
    if author.endswith("." + signer) or signer.endswith("." + author):
        return 1
    return 2


def _policy_of(policy: PolicyPublished, domain: str) -> PolicyPublished:
    """The policy with the report's domain (the two can only differ in case)."""
    return policy if policy.domain == domain else replace(policy, domain=domain)
