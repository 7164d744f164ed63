"""The JSON-lines event log."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from mailwright.events import EventLog, NullEventLog
from mailwright.smtp.replies import Reply

T0 = 1_740_830_400.25  # 2025-03-01T12:00:00.250Z


def lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects in the log file."""
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_event_line_is_compact_json_with_event_first_and_utc_millis(tmp_path: Path) -> None:
    """One compact object per line: event, ts in ISO 8601 UTC with ms, then the fields."""
    path = tmp_path / "events.log"
    with EventLog(path, clock=lambda: T0) as log:
        log.emit("delivered", queue_id="Q1", recipient="bob@remote.test", attempts=1)

    raw = path.read_text("utf-8")

    assert raw == (
        '{"event":"delivered","ts":"2025-03-01T12:00:00.250Z",'
        '"queue_id":"Q1","recipient":"bob@remote.test","attempts":1}\n'
    )


def test_reply_is_written_as_code_status_text(tmp_path: Path) -> None:
    """A Reply field becomes {code, status, text}; None fields are left out."""
    path = tmp_path / "events.log"
    with EventLog(path) as log:
        log.emit(
            "deferred",
            queue_id="Q2",
            reply=Reply(451, "4.2.0", "Busy", "try later"),
            remote_host=None,
        )

    (record,) = lines(path)

    assert record["reply"] == {"code": 451, "status": "4.2.0", "text": "Busy\ntry later"}
    assert "remote_host" not in record


def test_non_ascii_fields_are_written_as_utf8(tmp_path: Path) -> None:
    """SMTPUTF8 addresses are written as they are, not as escapes."""
    path = tmp_path / "events.log"
    with EventLog(path) as log:
        log.emit("received", sender="jörg@bücher.test", size=10)

    assert "jörg@bücher.test" in path.read_text("utf-8")


def test_timestamp_text_follows_the_clock_across_seconds(tmp_path: Path) -> None:
    """The cached seconds part is rebuilt when the second changes."""
    times = iter([T0, T0 + 0.5, T0 + 1.5])
    path = tmp_path / "events.log"
    with EventLog(path, clock=lambda: next(times)) as log:
        for _ in range(3):
            log.emit("received")

    stamps = [record["ts"] for record in lines(path)]

    assert stamps == [
        "2025-03-01T12:00:00.250Z",
        "2025-03-01T12:00:00.750Z",
        "2025-03-01T12:00:01.750Z",
    ]


async def test_lines_are_buffered_then_flushed_by_the_timer(tmp_path: Path) -> None:
    """Inside an event loop writes wait for the flush timer instead of hitting the disk."""
    path = tmp_path / "events.log"
    log = EventLog(path, flush_interval=0.01)

    log.emit("received", queue_id="Q1")
    before = path.read_text("utf-8")
    for _ in range(100):
        await asyncio.sleep(0.01)
        if path.read_text("utf-8"):
            break
    after = path.read_text("utf-8")
    log.close()

    assert before == ""
    assert '"queue_id":"Q1"' in after


async def test_close_flushes_pending_lines(tmp_path: Path) -> None:
    """Lines still buffered when the log closes are written."""
    path = tmp_path / "events.log"
    log = EventLog(path, flush_interval=3600)

    log.emit("bounced", queue_id="Q3")
    log.close()

    assert [record["event"] for record in lines(path)] == ["bounced"]


def test_reopen_writes_to_a_new_file_after_rotation(tmp_path: Path) -> None:
    """After the file is moved away, reopen() starts a fresh file at the path."""
    path = tmp_path / "events.log"
    rotated = tmp_path / "events.log.1"
    log = EventLog(path)

    log.emit("received", queue_id="old")
    path.rename(rotated)
    log.reopen()
    log.emit("received", queue_id="new")
    log.close()

    assert [record["queue_id"] for record in lines(rotated)] == ["old"]
    assert [record["queue_id"] for record in lines(path)] == ["new"]


def test_subscribers_get_every_event_until_they_unsubscribe() -> None:
    """A subscriber receives the event dicts; after unsubscribing it receives nothing."""
    seen: list[dict[str, Any]] = []
    log = EventLog(None, clock=lambda: T0)
    unsubscribe = log.subscribe(seen.append)

    log.emit("expired", queue_id="Q4", recipient="bob@remote.test")
    unsubscribe()
    log.emit("expired", queue_id="Q5")

    assert seen == [
        {
            "event": "expired",
            "ts": "2025-03-01T12:00:00.250Z",
            "queue_id": "Q4",
            "recipient": "bob@remote.test",
        }
    ]


def test_failing_subscriber_does_not_stop_logging(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception in a subscriber is logged; the line is written and others still run."""
    path = tmp_path / "events.log"
    seen: list[str] = []

    def broken(record: dict[str, Any]) -> None:
        raise RuntimeError("webhook down")

    with EventLog(path) as log:
        log.subscribe(broken)
        log.subscribe(lambda record: seen.append(record["event"]))
        log.emit("delay_warning", queue_id="Q6")

    assert seen == ["delay_warning"]
    assert lines(path)[0]["event"] == "delay_warning"
    assert "events.subscriber_failed" in caplog.text


def test_unserialisable_field_raises_type_error(tmp_path: Path) -> None:
    """A field JSON cannot hold is a TypeError naming its type."""
    with EventLog(tmp_path / "events.log") as log, pytest.raises(TypeError, match="object"):
        log.emit("deleted", queue_id="Q7", extra=object())


def test_null_event_log_records_nothing() -> None:
    """NullEventLog ignores events and subscribers."""
    seen: list[dict[str, Any]] = []
    log = NullEventLog()

    log.subscribe(seen.append)()
    log.subscribe(seen.append)
    log.emit("received", queue_id="Q8")
    log.close()

    assert seen == []


def test_unwritable_path_fails_at_construction(tmp_path: Path) -> None:
    """A log path in a missing directory raises OSError when the log is made."""
    with pytest.raises(OSError, match="missing"):
        EventLog(tmp_path / "missing" / "events.log")
