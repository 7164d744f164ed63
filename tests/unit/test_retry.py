"""Tests for the retry schedule (mailwright.queue.retry), driven by a virtual clock."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwright.queue import DEFAULT_INTERVALS, RetrySchedule
from mailwright.queue.retry import DAY, HOUR, MINUTE


def run_until_expiry(schedule: RetrySchedule, start: float) -> list[float]:
    """Fail every attempt from ``start`` on; return the attempt times (the last one expired)."""
    now = start
    attempts = 0
    times = [now]
    while True:
        attempts += 1
        following = schedule.next_attempt(start, attempts, now)
        if following is None:
            return times
        assert following > now
        now = following
        times.append(now)


def test_default_schedule_is_in_the_range_big_mtas_use() -> None:
    """The defaults retry first after 5 minutes, wait at most 1-4 hours, keep for 5 days."""
    schedule = RetrySchedule()

    assert schedule.wait(1) == 5 * MINUTE
    assert HOUR <= max(schedule.intervals) <= 4 * HOUR
    assert schedule.lifetime == 5 * DAY
    assert schedule.delay_warning == 4 * HOUR


def test_waits_grow_then_repeat_the_last_interval() -> None:
    """After the listed intervals the last one repeats for every further attempt."""
    schedule = RetrySchedule([60, 120, 240], lifetime=DAY)

    assert [schedule.wait(n) for n in range(1, 7)] == [60, 120, 240, 240, 240, 240]


def test_five_day_schedule_runs_to_expiry_with_a_last_attempt_at_the_lifetime() -> None:
    """A virtual clock fails every attempt for 5 days; the last lands exactly at expiry."""
    schedule = RetrySchedule()
    start = 1_000_000.0

    times = run_until_expiry(schedule, start)

    assert times[-1] == start + 5 * DAY
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps[: len(DEFAULT_INTERVALS)] == list(DEFAULT_INTERVALS)
    assert all(gap <= max(DEFAULT_INTERVALS) for gap in gaps)
    assert 55 < len(times) < 70  # about one attempt every 2 hours after the first ramp


def test_failure_exactly_at_lifetime_expires() -> None:
    """A failed attempt at exactly first_attempt + lifetime returns None (bounce)."""
    schedule = RetrySchedule([600], lifetime=3600)

    assert schedule.next_attempt(0.0, 6, 3600.0) is None


def test_failure_just_before_lifetime_gets_one_last_attempt_at_lifetime() -> None:
    """A failure shortly before expiry schedules the last attempt at the lifetime itself."""
    schedule = RetrySchedule([600], lifetime=3600)

    assert schedule.next_attempt(0.0, 5, 3599.0) == 3600.0


def test_failure_after_lifetime_expires() -> None:
    """A recipient tried late (a backlog) past its lifetime expires at once."""
    schedule = RetrySchedule([600], lifetime=3600)

    assert schedule.next_attempt(0.0, 1, 10_000.0) is None


def test_jitter_spreads_the_wait_around_the_interval() -> None:
    """With 10 % jitter the wait lies between 90 % and 110 % of the interval."""
    schedule = RetrySchedule([1000], lifetime=DAY, jitter=0.1)

    assert schedule.next_attempt(0.0, 1, 0.0, spread=0.0) == pytest.approx(900.0)
    assert schedule.next_attempt(0.0, 1, 0.0, spread=0.5) == pytest.approx(1000.0)
    assert schedule.next_attempt(0.0, 1, 0.0, spread=1.0) == pytest.approx(1100.0)


def test_warning_is_due_once_after_the_delay() -> None:
    """should_warn is false before the delay, true at it, false once warned."""
    schedule = RetrySchedule(delay_warning=4 * HOUR)

    assert not schedule.should_warn(0.0, 4 * HOUR - 1, warned=False)
    assert schedule.should_warn(0.0, 4 * HOUR, warned=False)
    assert not schedule.should_warn(0.0, 5 * HOUR, warned=True)


def test_warning_comes_with_the_first_deferral_past_four_hours_on_the_virtual_clock() -> None:
    """Running the default schedule, exactly one deferral carries the delay warning."""
    schedule = RetrySchedule()
    warned = False
    warnings_at = []

    for attempts, now in enumerate(run_until_expiry(schedule, 0.0)[:-1], start=1):
        if schedule.should_warn(0.0, now, warned):
            warned = True
            warnings_at.append((attempts, now))

    assert len(warnings_at) == 1
    assert 4 * HOUR <= warnings_at[0][1] < 6 * HOUR


def test_disabled_warning_never_fires() -> None:
    """delay_warning=None turns warnings off."""
    schedule = RetrySchedule(delay_warning=None)

    assert not schedule.should_warn(0.0, 10 * DAY, warned=False)


@pytest.mark.parametrize(
    ("intervals", "lifetime", "warning", "jitter"),
    [
        ([], DAY, None, 0.0),
        ([0], DAY, None, 0.0),
        ([60], 0, None, 0.0),
        ([60], DAY, -1, 0.0),
        ([60], DAY, None, 1.0),
    ],
)
def test_invalid_schedules_are_refused(
    intervals: list[float], lifetime: float, warning: float | None, jitter: float
) -> None:
    """Empty or non-positive intervals, lifetimes, warnings and bad jitter raise ValueError."""
    with pytest.raises(ValueError, match=r"must|needs"):
        RetrySchedule(intervals, lifetime, warning, jitter=jitter)


def test_wait_before_any_attempt_is_refused() -> None:
    """Asking for the wait after zero attempts is a caller bug and raises ValueError."""
    with pytest.raises(ValueError, match="at least 1"):
        RetrySchedule().wait(0)


def test_schedules_compare_by_value() -> None:
    """Two schedules built from the same numbers are equal and hash alike."""
    assert RetrySchedule([60, 120], 3600) == RetrySchedule((60.0, 120.0), 3600.0)
    assert hash(RetrySchedule([60], 3600)) == hash(RetrySchedule([60], 3600))
    assert RetrySchedule([60], 3600) != RetrySchedule([60], 7200)


@given(
    intervals=st.lists(st.floats(1, 10_000), min_size=1, max_size=8),
    lifetime=st.floats(1, 30 * DAY),
    attempts=st.integers(1, 500),
    elapsed=st.floats(0, 60 * DAY),
    spread=st.floats(0, 1),
)
def test_next_attempt_is_after_now_and_never_after_expiry(
    intervals: list[float], lifetime: float, attempts: int, elapsed: float, spread: float
) -> None:
    """For any schedule, the next attempt is later than now and no later than expiry."""
    schedule = RetrySchedule(intervals, lifetime, jitter=0.2)

    following = schedule.next_attempt(0.0, attempts, elapsed, spread=spread)

    if elapsed >= lifetime:
        assert following is None
    else:
        assert following is not None
        assert elapsed < following <= lifetime
