"""When to try a deferred recipient again, and when to give up.

RFC 5321 §4.5.4.1 asks a sender to wait at least 30 minutes between tries to
one destination (a first retry may come sooner) and to keep trying for at
least 4-5 days before giving up. The big MTAs read that in their own ways:

- Postfix doubles the wait from 300 s up to a ceiling of 4000 s, gives up
  after 5 days and sends a delay warning (if enabled) after 4 hours.
- Exim's default rule retries every 15 minutes for 2 hours, then with waits
  growing by 1.5 up to 16 hours, for 4 days.
- Sendmail retries every 30 minutes and gives up after 5 days, warning after
  4 hours.

mailwright's default follows Postfix's shape: a first retry after 5 minutes
(most temporary failures are greylisting, which clears within minutes), then
waits doubling to a ceiling of 2 hours, a lifetime of 5 days and a delay
warning after 4 hours. A failure at or past the end of the lifetime expires
the recipient; the last wait is shortened so that one attempt falls exactly
at the end of the lifetime.

A schedule is pure: it reads no clock, ``now`` is a parameter, so a virtual
clock runs five days of retries in milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence

MINUTE = 60.0
HOUR = 60 * MINUTE
DAY = 24 * HOUR

DEFAULT_INTERVALS = (5 * MINUTE, 10 * MINUTE, 20 * MINUTE, 40 * MINUTE, HOUR, 2 * HOUR)
DEFAULT_LIFETIME = 5 * DAY
DEFAULT_DELAY_WARNING = 4 * HOUR


class RetrySchedule:
    """Waits between attempts, a lifetime, and when to warn of a delay.

    ``intervals[n]`` is the wait after the ``n+1``-th failed attempt; the last
    one repeats. ``lifetime`` counts from the first attempt (callers that
    want Postfix's meaning, from arrival, pass the arrival time as
    ``first_attempt``). ``delay_warning`` None disables delay warnings.
    ``jitter`` (0 to below 1) spreads each wait by up to that fraction either
    way, so that a queue deferred by one outage does not come back at once.

    Raises :class:`ValueError` for no intervals, a wait or lifetime that is
    not positive, or a jitter outside [0, 1).
    """

    __slots__ = ("delay_warning", "intervals", "jitter", "lifetime")

    def __init__(
        self,
        intervals: Sequence[float] = DEFAULT_INTERVALS,
        lifetime: float = DEFAULT_LIFETIME,
        delay_warning: float | None = DEFAULT_DELAY_WARNING,
        *,
        jitter: float = 0.0,
    ) -> None:
        if not intervals:
            raise ValueError("a retry schedule needs at least one interval")
        if any(interval <= 0 for interval in intervals):
            raise ValueError(f"retry intervals must be positive, got {list(intervals)}")
        if lifetime <= 0:
            raise ValueError(f"queue lifetime must be positive, got {lifetime}")
        if delay_warning is not None and delay_warning <= 0:
            raise ValueError(f"delay warning must be positive or None, got {delay_warning}")
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        self.intervals = tuple(float(interval) for interval in intervals)
        self.lifetime = float(lifetime)
        self.delay_warning = None if delay_warning is None else float(delay_warning)
        self.jitter = float(jitter)

    def __repr__(self) -> str:
        return (
            f"RetrySchedule(intervals={self.intervals!r}, lifetime={self.lifetime!r}, "
            f"delay_warning={self.delay_warning!r}, jitter={self.jitter!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RetrySchedule):
            return NotImplemented
        return (self.intervals, self.lifetime, self.delay_warning, self.jitter) == (
            other.intervals,
            other.lifetime,
            other.delay_warning,
            other.jitter,
        )

    def __hash__(self) -> int:
        return hash((self.intervals, self.lifetime, self.delay_warning, self.jitter))

    def wait(self, attempts: int) -> float:
        """The wait after ``attempts`` failed attempts (at least 1), before jitter."""
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        return self.intervals[min(attempts, len(self.intervals)) - 1]

    def expires_at(self, first_attempt: float) -> float:
        """The moment from which a failed attempt means giving up."""
        return first_attempt + self.lifetime

    def next_attempt(
        self, first_attempt: float, attempts: int, now: float, *, spread: float = 0.5
    ) -> float | None:
        """When to try again after the ``attempts``-th attempt failed at ``now``.

        Returns None when the recipient has expired (``now`` is at or past
        :meth:`expires_at`): the caller bounces it. Otherwise the time of the
        next attempt, never later than the expiry, so the last attempt is made
        right at the end of the lifetime. ``spread`` in [0, 1] (a random draw
        by the caller) places the attempt within the jitter; 0.5 is the middle.
        """
        deadline = self.expires_at(first_attempt)
        if now >= deadline:
            return None

        wait = self.wait(attempts) * (1.0 + self.jitter * (2.0 * spread - 1.0))
        return min(now + wait, deadline)

    def should_warn(self, first_attempt: float, now: float, warned: bool) -> bool:
        """Whether to send the delay warning (RFC 3464 ``action=delayed``) now.

        True once, the first time a deferral happens ``delay_warning`` seconds
        or more after ``first_attempt`` and no warning was sent yet; never
        when warnings are disabled.
        """
        if self.delay_warning is None or warned:
            return False
        return now - first_attempt >= self.delay_warning
