"""Local wall-clock arithmetic for the router: days, digest times and quiet-hour spans.

Every time the router handles is a UTC epoch second; recipients live in IANA
time zones, and their digests, quiet hours and the marketing SMS window are
wall-clock ``"HH:MM"`` strings. This module turns one into the other, with
daylight-saving transitions handled one way throughout:

* a wall time that does not exist that day (the clocks jump over it) means the
  moment the clocks jump, the first instant at or after it on the wall: a digest
  at 02:30 on the day clocks go from 02:00 to 03:00 goes out at 03:00;
* a wall time that happens twice (the clocks fall back over it) means the first
  time it happens, so a daily digest goes out once.

Quiet-hour spans are read on the wall clock too: ``21:00``-``08:00`` holds from
9 pm to 8 am local whatever the offset does in between.

:class:`~zoneinfo.ZoneInfo` objects are cached by name here (the router looks
one up for every notification), and ``"HH:MM"`` strings are parsed once. All
functions are pure and take ``now`` as a parameter.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from mailwright.notify.model import QuietHours

__all__ = [
    "in_span",
    "local_day_start",
    "next_local_time",
    "parse_hhmm",
    "span_end",
    "zone",
]

_ONE_DAY = timedelta(days=1)

# Valid zones only, so the cache is bounded by the tz database (about 600 names).
_ZONES: dict[str, ZoneInfo] = {}
# Valid "HH:MM" strings only: bounded by the 1,440 minutes of a day.
_HHMM: dict[str, tuple[int, int]] = {}


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``"Europe/Paris"``), from a cache.

    Raises :class:`ValueError` naming the zone when the tz database does not
    know it (including folder names such as ``"America"`` and path tricks).
    """
    try:
        return _ZONES[name]
    except KeyError:
        pass

    try:
        tz = ZoneInfo(name)
    except (KeyError, ValueError, OSError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown time zone {name!r}") from exc

    _ZONES[name] = tz
    return tz


def parse_hhmm(text: str) -> tuple[int, int]:
    """Hours and minutes of a ``"HH:MM"`` wall time (``00:00`` to ``23:59``).

    Raises :class:`ValueError` naming the text for anything else (``"9:00"``,
    ``"24:00"``, ``"09:60"``).
    """
    try:
        return _HHMM[text]
    except KeyError:
        pass

    if len(text) != 5 or text[2] != ":" or not (text[:2] + text[3:]).isdigit():
        raise ValueError(f"not a HH:MM time: {text!r}")
    if not text.isascii():
        raise ValueError(f"not a HH:MM time: {text!r}")
    hour, minute = int(text[:2]), int(text[3:])
    if hour > 23 or minute > 59:
        raise ValueError(f"not a HH:MM time: {text!r}")

    _HHMM[text] = (hour, minute)
    return hour, minute


def _first_instant(day: date, hour: int, minute: int, tz: ZoneInfo) -> float:
    """The first instant at which the wall clock in ``tz`` shows ``day hour:minute`` or later.

    An existing time is its first occurrence (``fold=0``). A time in a gap
    resolves to the end of the gap: the transition, found by bisection between
    the two readings of the gap (fold 1 is before it, fold 0 after it).
    """
    wall = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
    after = wall.timestamp()
    seen = datetime.fromtimestamp(after, tz)
    if seen.hour == hour and seen.minute == minute and seen.day == day.day:
        return after

    before = wall.replace(fold=1).timestamp()
    old_offset = datetime.fromtimestamp(before, tz).utcoffset()
    lo, hi = int(before), int(after) + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == old_offset:
            lo = mid
        else:
            hi = mid
    return float(hi)


def local_day_start(now: float, tz: ZoneInfo) -> float:
    """The first instant of the local day ``now`` falls in (local midnight, or the jump
    that replaces it where clocks skip midnight)."""
    today = datetime.fromtimestamp(now, tz).date()
    return _first_instant(today, 0, 0, tz)


def next_local_time(now: float, tz: ZoneInfo, hhmm: str, weekday: int | None = None) -> float:
    """The next instant strictly after ``now`` at which the local wall clock reads ``hhmm``.

    With ``weekday`` (0 is Monday) only that day of the week counts, for weekly
    digests. Gaps and folds resolve as the module docstring says. Raises
    :class:`ValueError` for a malformed ``hhmm`` or a weekday outside 0-6.
    """
    hour, minute = parse_hhmm(hhmm)
    if weekday is not None and not 0 <= weekday <= 6:
        raise ValueError(f"weekday must be 0 (Monday) to 6, not {weekday!r}")

    day = datetime.fromtimestamp(now, tz).date()
    for _ in range(9):  # a week, plus one for today's time having passed, plus a skipped day
        if weekday is None or day.weekday() == weekday:
            at = _first_instant(day, hour, minute, tz)
            if at > now:
                return at
        day += _ONE_DAY
    raise AssertionError("unreachable: every week has each weekday")  # pragma: no cover


def _span_minutes(span: QuietHours) -> tuple[int, int]:
    start_h, start_m = parse_hhmm(span.start)
    end_h, end_m = parse_hhmm(span.end)
    return start_h * 60 + start_m, end_h * 60 + end_m


def in_span(now: float, tz: ZoneInfo, span: QuietHours) -> bool:
    """Whether the local wall clock at ``now`` reads inside ``[start, end)``.

    A span whose end is before its start wraps midnight (``21:00``-``08:00``);
    ``start == end`` is empty, so it never holds anything.
    """
    start, end = _span_minutes(span)
    if start == end:
        return False

    local = datetime.fromtimestamp(now, tz)
    minute = local.hour * 60 + local.minute
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


def span_end(now: float, tz: ZoneInfo, span: QuietHours) -> float:
    """When the span ``now`` is inside ends; ``now`` itself when it is not inside one.

    This is the next local ``span.end`` after ``now``, except on the night the
    clocks fall back over the end time while ``now`` is in the repeated hour:
    then the span ends at the second reading of that time, not a day later.
    """
    if not in_span(now, tz, span):
        return now

    end = next_local_time(now, tz, span.end)
    start_minute, end_minute = _span_minutes(span)
    longest = ((end_minute - start_minute) % 1440) * 60 + 3600  # plus a DST hour
    if end - now <= longest:
        return end

    # Further away than the span lasts: ``now`` is in a repeated hour past the first
    # reading of the end time, and the span ends at its second reading.
    hour, minute = parse_hhmm(span.end)
    today = datetime.fromtimestamp(now, tz).date()
    wall = datetime(today.year, today.month, today.day, hour, minute, tzinfo=tz)
    first, second = wall.timestamp(), wall.replace(fold=1).timestamp()
    if second > first and now < second < end:
        return second
    return end
