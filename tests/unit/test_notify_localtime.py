"""Tests for mailwright.notify.localtime: wall-clock days, digest times and quiet-hour spans."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from mailwright.notify.localtime import (
    in_span,
    local_day_start,
    next_local_time,
    parse_hhmm,
    span_end,
    zone,
)
from mailwright.notify.model import QuietHours

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
SANTIAGO = ZoneInfo("America/Santiago")


def at(tz: ZoneInfo, text: str, fold: int = 0) -> float:
    """The instant ``text`` (``"2026-03-04 12:00"``) reads on the wall clock of ``tz``."""
    naive = datetime.strptime(text, "%Y-%m-%d %H:%M")
    return naive.replace(tzinfo=tz, fold=fold).timestamp()


def wall(tz: ZoneInfo, ts: float) -> str:
    """The wall clock reading of ``ts`` in ``tz``, with its UTC offset."""
    return datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M %z")


# -- zones and HH:MM -------------------------------------------------------------------


def test_zone_returns_the_same_cached_object() -> None:
    """Looking a zone up twice gives the identical object, so routing pays for one lookup."""
    first = zone("Europe/Paris")

    assert first is zone("Europe/Paris")
    assert first.key == "Europe/Paris"


@pytest.mark.parametrize(
    "name", ["Nope/Zone", "America", "", "../etc/passwd", "/etc/localtime", "Europe/Paris\x00"]
)
def test_zone_refuses_names_the_tz_database_does_not_hold(name: str) -> None:
    """Unknown names, folders and path tricks all raise ValueError naming the zone."""
    with pytest.raises(ValueError, match="unknown time zone"):
        zone(name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("00:00", (0, 0)), ("08:05", (8, 5)), ("23:59", (23, 59)), ("12:30", (12, 30))],
)
def test_parse_hhmm_reads_hours_and_minutes(text: str, expected: tuple[int, int]) -> None:
    """Well-formed wall times parse to (hour, minute)."""
    assert parse_hhmm(text) == expected


@pytest.mark.parametrize(
    "text", ["9:00", "24:00", "09:60", "0900", "ab:cd", "09-00", "", " 9:00", "\u0660\u0669:00"]
)
def test_parse_hhmm_refuses_anything_else(text: str) -> None:
    """Short forms, out-of-range values and non-ASCII digits raise ValueError."""
    with pytest.raises(ValueError, match="HH:MM"):
        parse_hhmm(text)


# -- days -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "now", "start"),
    [
        (PARIS, "2026-03-04 12:00", "2026-03-04 00:00"),
        (PARIS, "2026-03-04 00:00", "2026-03-04 00:00"),
        (PARIS, "2026-03-04 23:59", "2026-03-04 00:00"),
        (PARIS, "2026-03-29 12:00", "2026-03-29 00:00"),  # a 23-hour day
        (NEW_YORK, "2025-11-02 23:00", "2025-11-02 00:00"),  # a 25-hour day
    ],
)
def test_local_day_start_is_local_midnight(tz: ZoneInfo, now: str, start: str) -> None:
    """The day starts at the recipient's midnight, not UTC's, across DST days too."""
    assert local_day_start(at(tz, now), tz) == at(tz, start)


def test_local_day_start_where_clocks_skip_midnight_is_the_jump() -> None:
    """In Santiago clocks go from 24:00 to 01:00: the day starts at that jump, 01:00."""
    start = local_day_start(at(SANTIAGO, "2024-09-08 12:00"), SANTIAGO)

    assert wall(SANTIAGO, start) == "2024-09-08 01:00 -0300"
    assert wall(SANTIAGO, start - 1) == "2024-09-07 23:59 -0400"


# -- next local time ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "hhmm", "weekday", "expected"),
    [
        ("2026-03-04 08:00", "09:00", None, "2026-03-04 09:00 +0100"),
        ("2026-03-04 09:00", "09:00", None, "2026-03-05 09:00 +0100"),  # strictly after
        ("2026-03-04 23:30", "09:00", None, "2026-03-05 09:00 +0100"),
        ("2026-03-04 12:00", "08:00", 4, "2026-03-06 08:00 +0100"),  # Wednesday to Friday
        ("2026-03-04 12:00", "13:00", 2, "2026-03-04 13:00 +0100"),  # today is Wednesday
        ("2026-03-04 12:00", "11:00", 2, "2026-03-11 11:00 +0100"),  # passed: next week
        ("2026-03-28 12:00", "09:00", None, "2026-03-29 09:00 +0200"),  # across the change
        ("2026-03-29 01:00", "02:30", None, "2026-03-29 03:00 +0200"),  # in the gap
        ("2026-10-25 01:00", "02:30", None, "2026-10-25 02:30 +0200"),  # twice: the first
    ],
)
def test_next_local_time(now: str, hhmm: str, weekday: int | None, expected: str) -> None:
    """The next reading of ``hhmm``: gaps move to the jump, folds take the first reading."""
    assert wall(PARIS, next_local_time(at(PARIS, now), PARIS, hhmm, weekday)) == expected


def test_next_local_time_fires_once_on_a_fall_back_night() -> None:
    """Just after the first 01:30 of a fall-back night the next 01:30 is tomorrow's."""
    first = at(NEW_YORK, "2025-11-02 01:30")
    second = at(NEW_YORK, "2025-11-02 01:30", fold=1)
    assert second - first == 3600

    assert next_local_time(first - 60, NEW_YORK, "01:30") == first
    assert next_local_time(first, NEW_YORK, "01:30") == at(NEW_YORK, "2025-11-03 01:30")
    assert next_local_time(second - 60, NEW_YORK, "01:30") == at(NEW_YORK, "2025-11-03 01:30")


def test_next_local_time_in_a_spring_forward_gap_is_the_jump() -> None:
    """02:30 does not exist on 9 March 2025 in New York: it resolves to 03:00 EDT."""
    got = next_local_time(at(NEW_YORK, "2025-03-09 00:00"), NEW_YORK, "02:30")

    assert wall(NEW_YORK, got) == "2025-03-09 03:00 -0400"


@pytest.mark.parametrize("weekday", [-1, 7])
def test_next_local_time_refuses_a_weekday_outside_the_week(weekday: int) -> None:
    """Weekdays are 0 (Monday) to 6."""
    with pytest.raises(ValueError, match="weekday"):
        next_local_time(0.0, PARIS, "09:00", weekday)


# -- spans ----------------------------------------------------------------------------

NIGHT = QuietHours("21:00", "08:00")
DAYTIME = QuietHours("08:00", "21:00")
EMPTY = QuietHours("12:00", "12:00")


@pytest.mark.parametrize(
    ("span", "now", "inside"),
    [
        (NIGHT, "2026-03-04 20:59", False),
        (NIGHT, "2026-03-04 21:00", True),
        (NIGHT, "2026-03-04 23:59", True),
        (NIGHT, "2026-03-05 00:00", True),
        (NIGHT, "2026-03-05 07:59", True),
        (NIGHT, "2026-03-05 08:00", False),
        (NIGHT, "2026-03-05 12:00", False),
        (DAYTIME, "2026-03-04 07:59", False),
        (DAYTIME, "2026-03-04 08:00", True),
        (DAYTIME, "2026-03-04 20:59", True),
        (DAYTIME, "2026-03-04 21:00", False),
        (EMPTY, "2026-03-04 12:00", False),
        (EMPTY, "2026-03-04 03:00", False),
    ],
)
def test_in_span(span: QuietHours, now: str, inside: bool) -> None:
    """Spans are [start, end) on the wall clock, may wrap midnight, and start == end is empty."""
    assert in_span(at(PARIS, now), PARIS, span) is inside


@pytest.mark.parametrize(
    ("span", "now", "end"),
    [
        (NIGHT, "2026-03-04 22:00", "2026-03-05 08:00 +0100"),  # before midnight: tomorrow
        (NIGHT, "2026-03-05 06:00", "2026-03-05 08:00 +0100"),  # after midnight: today
        (NIGHT, "2026-03-28 23:00", "2026-03-29 08:00 +0200"),  # the night clocks change
        (DAYTIME, "2026-03-04 10:00", "2026-03-04 21:00 +0100"),
    ],
)
def test_span_end(span: QuietHours, now: str, end: str) -> None:
    """A span ends at the next reading of its end time on the wall clock."""
    assert wall(PARIS, span_end(at(PARIS, now), PARIS, span)) == end


def test_span_end_outside_a_span_is_now() -> None:
    """Outside the span nothing is held: its end is now."""
    now = at(PARIS, "2026-03-04 12:00")

    assert span_end(now, PARIS, NIGHT) == now
    assert span_end(now, PARIS, EMPTY) == now


def test_span_end_in_the_repeated_hour_is_the_second_reading() -> None:
    """Quiet 00:00-01:30 on a fall-back night: at the second 01:15 it ends 15 minutes later."""
    span = QuietHours("00:00", "01:30")
    second_quarter_past = at(NEW_YORK, "2025-11-02 01:15", fold=1)

    end = span_end(second_quarter_past, NEW_YORK, span)

    assert end - second_quarter_past == 15 * 60
    assert wall(NEW_YORK, end) == "2025-11-02 01:30 -0500"
