"""Rate limits and coalescing of failure reports (mailwright.reports.failure_limits)."""

from __future__ import annotations

import pytest

from mailwright.auth.arc.result import ArcResult, ChainStatus
from mailwright.auth.dkim.result import DkimResult, Outcome
from mailwright.auth.dmarc import DmarcResult, Result
from mailwright.auth.evaluate import Verdict
from mailwright.auth.spf.result import Result as SpfWord
from mailwright.auth.spf.result import SpfResult
from mailwright.reports.failure_limits import (
    Admission,
    FailureReportLimiter,
    failure_fingerprint,
)

HOUR = 3600.0


class Clock:
    """A virtual monotonic clock: tests move it on by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def limiter(clock: Clock, **options: int | float) -> FailureReportLimiter:
    """A limiter on ``clock``; options override the defaults."""
    return FailureReportLimiter(clock=clock, **options)  # type: ignore[arg-type]


def verdict(ip: str = "192.0.2.7", dkim: Outcome = Outcome.FAIL) -> Verdict:
    """A DMARC failure of example.org from ``ip``."""
    return Verdict(
        spf=SpfResult(SpfWord.FAIL, "example.org", "a@example.org", "mailfrom", ip, "-all"),
        dkim=(DkimResult(dkim, "checked", domain="example.org", selector="s1"),),
        arc=ArcResult(ChainStatus.NONE, "no chain"),
        dmarc=DmarcResult(
            Result.FAIL,
            "no aligned pass",
            author_domain="example.org",
            policy_domain="example.org",
        ),
        ip=ip,
    )


def test_per_domain_limit_refuses_past_n_in_the_window() -> None:
    """At most per_domain reports for one domain in any window; the rest are refused."""
    clock = Clock()
    limits = limiter(clock, per_domain=3)

    answers = [limits.admit("example.org") for _ in range(5)]

    assert [answer.allowed for answer in answers] == [True, True, True, False, False]
    assert answers[3] == Admission(False, 0, "domain-limit")


def test_the_window_slides() -> None:
    """A slot frees one window after the report that took it, not at a fixed hour."""
    clock = Clock()
    limits = limiter(clock, per_domain=2)
    limits.admit("example.org")
    clock.advance(1800)
    limits.admit("example.org")

    clock.advance(1799)
    assert not limits.admit("example.org").allowed
    clock.advance(1)
    assert limits.admit("example.org").allowed
    assert not limits.admit("example.org").allowed


def test_domains_have_separate_budgets_and_case_does_not_matter() -> None:
    """One attacked domain cannot use up another's reports; EXAMPLE.org is example.org."""
    clock = Clock()
    limits = limiter(clock, per_domain=1)

    assert limits.admit("example.org").allowed
    assert not limits.admit("EXAMPLE.org.").allowed
    assert limits.admit("example.net").allowed


def test_total_limit_bounds_all_domains_together() -> None:
    """An attack spread over many domains meets the total limit."""
    clock = Clock()
    limits = limiter(clock, per_domain=5, total=3)

    answers = [limits.admit(f"d{n}.example") for n in range(4)]

    assert [answer.reason for answer in answers] == [
        "allowed",
        "allowed",
        "allowed",
        "total-limit",
    ]


def test_identical_failures_are_coalesced_and_counted_in_the_next_report() -> None:
    """A failure path reported recently is not reported again; the next report counts it."""
    clock = Clock()
    limits = limiter(clock, coalesce=HOUR)
    same = failure_fingerprint(verdict())

    first = limits.admit("example.org", same)
    clock.advance(60)
    repeats = [limits.admit("example.org", same) for _ in range(4)]
    clock.advance(HOUR)
    later = limits.admit("example.org", same)

    assert first == Admission(True, 1, "allowed")
    assert {answer.reason for answer in repeats} == {"coalesced"}
    assert later == Admission(True, 5, "allowed")


def test_different_failure_paths_are_not_coalesced() -> None:
    """Another source address or another result is another failure condition."""
    clock = Clock()
    limits = limiter(clock)

    assert limits.admit("example.org", failure_fingerprint(verdict())).allowed
    assert limits.admit("example.org", failure_fingerprint(verdict(ip="192.0.2.8"))).allowed
    permerror = failure_fingerprint(verdict(dkim=Outcome.PERMERROR))
    assert limits.admit("example.org", permerror).allowed


def test_failures_refused_by_a_limit_are_counted_when_a_report_goes_out() -> None:
    """Failures dropped by the rate limit are not lost from the count."""
    clock = Clock()
    limits = limiter(clock, per_domain=1, coalesce=0)
    limits.admit("example.org")  # the budget goes to another failure
    fingerprint = failure_fingerprint(verdict())

    refused = [limits.admit("example.org", fingerprint) for _ in range(3)]
    clock.advance(HOUR)
    sent = limits.admit("example.org", fingerprint)

    assert {answer.reason for answer in refused} == {"domain-limit"}
    assert sent == Admission(True, 4, "allowed")


def test_statistics_count_every_answer() -> None:
    """The snapshot counts allowed, coalesced and limited failures, and what is tracked."""
    clock = Clock()
    limits = limiter(clock, per_domain=2)
    fingerprint = failure_fingerprint(verdict())
    limits.admit("example.org", fingerprint)
    limits.admit("example.org", fingerprint)
    limits.admit("example.org")
    limits.admit("example.org")

    stats = limits.statistics()

    assert (stats.allowed, stats.coalesced, stats.domain_limited, stats.total_limited) == (
        2,
        1,
        1,
        0,
    )
    assert stats.tracked_domains == 1
    assert stats.tracked_fingerprints == 1


def test_memory_stays_bounded_under_a_flood_of_distinct_failures() -> None:
    """A flood of distinct domains and fingerprints keeps at most max_tracked of each."""
    clock = Clock()
    limits = limiter(clock, total=100_000, max_tracked=50)

    for n in range(500):
        limits.admit(f"d{n}.example", ("path", n))

    stats = limits.statistics()
    assert stats.tracked_domains <= 50
    assert stats.tracked_fingerprints <= 50
    assert stats.allowed == 500


def test_idle_domains_are_forgotten() -> None:
    """A domain with no report in the last window is dropped from memory."""
    clock = Clock()
    limits = limiter(clock)
    limits.admit("old.example")
    clock.advance(HOUR + 1)

    limits.admit("new.example")

    assert limits.statistics().tracked_domains == 1


@pytest.mark.parametrize(
    "options",
    [{"per_domain": 0}, {"total": 0}, {"max_tracked": 0}, {"window": 0}, {"coalesce": -1}],
)
def test_nonsense_limits_are_refused(options: dict[str, float]) -> None:
    """A limit below 1, a window that is not positive or a negative coalescing time raise."""
    with pytest.raises(ValueError, match="must be"):
        limiter(Clock(), **options)
