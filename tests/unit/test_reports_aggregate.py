"""Tests for mailwright.reports.aggregate: one report per policy domain and period."""

from __future__ import annotations

import pytest
from tests.dmarc_reports import DAY, DAY0, policy, row

from mailwright import __version__
from mailwright.reports.aggregate import (
    MAX_DKIM_RESULTS,
    BuiltReport,
    add_up,
    build_reports,
    cap_dkim_results,
    report_unique,
)
from mailwright.reports.evaluations import StoredEvaluation
from mailwright.reports.model import DkimAuth, PolicyPublished, Row

BEGIN = int(DAY0)
END = int(DAY0 + DAY)


def stored(
    ident: int,
    the_row: Row | None = None,
    *,
    published: PolicyPublished | None = None,
    count: int = 1,
    begin: int = BEGIN,
    end: int = END,
    last_seen: float = DAY0 + 1,
    rua: tuple[str, ...] = ("mailto:dmarc@example.com",),
) -> StoredEvaluation:
    return StoredEvaluation(
        id=ident,
        period_begin=begin,
        period_end=end,
        policy=published or policy(),
        row=(the_row or row()).with_count(count),
        rua=rua,
        last_seen=last_seen,
    )


def build(*evaluations: StoredEvaluation) -> list[BuiltReport]:
    return build_reports(
        evaluations, org_name="Example Receiver", email="reports@mx.test", receiver="mx.test"
    )


def test_one_report_per_policy_domain_and_period() -> None:
    """Rows of two domains and two periods make four reports, oldest period first."""
    reports = build(
        stored(1),
        stored(2, published=policy("example.org")),
        stored(3, begin=END, end=END + int(DAY)),
        stored(4, published=policy("example.org"), begin=END, end=END + int(DAY)),
    )

    assert [(r.policy_domain, r.report.metadata.begin) for r in reports] == [
        ("example.com", BEGIN),
        ("example.org", BEGIN),
        ("example.com", END),
        ("example.org", END),
    ]
    assert [r.ids for r in reports] == [(1,), (2,), (3,), (4,)]


def test_rows_with_equal_keys_are_added_up_largest_first() -> None:
    """Equal keys merge, counts summed; the biggest row comes first."""
    other = row("198.51.100.4", dkim="fail")
    [built] = build(stored(1, count=3), stored(2, other, count=10), stored(3, count=4))

    assert [(r.source_ip, r.count) for r in built.report.rows] == [
        ("198.51.100.4", 10),
        ("192.0.2.1", 7),
    ]
    assert built.report.message_count == 17


def test_metadata_names_the_organisation_period_and_generator() -> None:
    """begin is the period's start, end its last second; the generator names our version."""
    [built] = build(stored(1))

    metadata = built.report.metadata
    assert metadata.org_name == "Example Receiver"
    assert metadata.email == "reports@mx.test"
    assert (metadata.begin, metadata.end) == (BEGIN, END - 1)
    assert metadata.generator == f"mailwright {__version__}"


def test_the_latest_evaluation_gives_the_report_its_policy_and_rua() -> None:
    """policy_published and rua come from the row seen last."""
    [built] = build(
        stored(1, published=policy(p="none"), last_seen=DAY0 + 500, rua=("mailto:old@x",)),
        stored(
            2,
            row("192.0.2.2"),
            published=policy(p="reject"),
            last_seen=DAY0 + 900,
            rua=("mailto:new@x",),
        ),
    )

    assert built.report.policy.p == "reject"
    assert built.rua == ("mailto:new@x",)
    assert built.last_seen == DAY0 + 900


def test_report_ids_are_stable_for_the_same_rows_and_unique_otherwise() -> None:
    """The same stored rows give the same id; other rows of the same period another."""
    first = build(stored(1), stored(2, row("192.0.2.2")))[0]
    again = build(stored(2, row("192.0.2.2")), stored(1))[0]
    late = build(stored(7))[0]

    assert first.report.metadata.report_id == again.report.metadata.report_id
    assert first.report.metadata.report_id != late.report.metadata.report_id
    expected_unique = report_unique("mx.test", "example.com", BEGIN, END, (1, 2))
    assert first.unique == expected_unique
    assert first.report.metadata.report_id == f"{BEGIN}.{expected_unique}.example.com@mx.test"
    assert len(first.unique) == 16
    assert first.unique.isalnum()


def test_dkim_results_are_capped_at_one_hundred_preferring_aligned_passes() -> None:
    """Of 150 signatures, the From domain's pass comes first and failures go last."""
    failing = [DkimAuth(f"f{i}.example", "fail", "s") for i in range(120)]
    others = [DkimAuth(f"o{i}.example", "pass", "s") for i in range(28)]
    relaxed = DkimAuth("mail.example.com", "pass", "s")
    strict = DkimAuth("example.com", "pass", "s")
    the_row = row(dkim_results=[*failing, *others, relaxed, strict])

    capped = cap_dkim_results(the_row)

    assert len(capped.dkim_results) == MAX_DKIM_RESULTS
    assert capped.dkim_results[:2] == (strict, relaxed)
    assert capped.dkim_results[2:30] == tuple(others)
    assert capped.dkim_results[30:] == tuple(failing[:70])


def test_add_up_merges_rows_that_differ_only_past_the_cap() -> None:
    """Rows equal in their first 100 ranked signatures are one row."""
    base = [DkimAuth(f"d{i}.example", "fail", "s") for i in range(100)]
    one = row(dkim_results=[*base, DkimAuth("extra1.example", "fail", "s")])
    two = row(dkim_results=[*base, DkimAuth("extra2.example", "fail", "s")])

    [merged] = add_up([one, two])

    assert merged.count == 2


def test_an_empty_receiver_is_refused() -> None:
    """Report-IDs and file names need our host name."""
    with pytest.raises(ValueError, match="host name"):
        build_reports([stored(1)], org_name="x", email="a@b", receiver="")


def test_nothing_pending_gives_no_reports() -> None:
    """No rows, no reports."""
    assert build() == []
