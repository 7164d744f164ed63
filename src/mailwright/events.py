"""The event log: one JSON object per line for every step of a message's life.

Each line names the event first, then the time and the fields::

    {"event":"delivered","ts":"2025-01-31T12:00:00.123Z","queue_id":"7Q2…",
     "recipient":"bob@example.test","remote_host":"mx1.example.test",
     "reply":{"code":250,"status":"2.0.0","text":"OK"},"attempts":1}

Events: ``received``, ``delivered``, ``deferred``, ``bounced``, ``expired``,
``delay_warning`` and ``deleted``. Usual fields: ``queue_id``, ``sender``,
``recipient``, ``remote_host``, ``reply`` (a :class:`Reply` is written as
code, status and text), ``attempts``, ``size``, ``client_ip``. Fields whose
value is None are left out.

The log is a record for operators and tools, not the source of truth: the
spool is. So lines are buffered and written at least every
``flush_interval`` seconds (and when the buffer fills, and on close), never
fsync'd; a crash may lose the last second of lines but never a message.
``reopen()`` closes and reopens the file for logrotate (call it on SIGHUP).
``subscribe()`` hands every event, as a dict, to callbacks (webhooks later).

Cost on the hot path: one dict, one :func:`json.dumps` and one buffered
write; the timestamp's text is rebuilt once per second. Nothing is done at
all when there is no file and no subscriber.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Literal

from mailwright.smtp.replies import Reply

log = logging.getLogger("mailwright.events")

EventName = Literal[
    "received",
    "delivered",
    "deferred",
    "bounced",
    "expired",
    "delay_warning",
    "deleted",
    "notification_routed",
    "notification_dispatched",
    "unsubscribed",
]
Subscriber = Callable[[dict[str, Any]], None]

_BUFFER_SIZE = 1 << 16


def reply_fields(reply: Reply) -> dict[str, Any]:
    """A reply as the event log writes it: ``{"code", "status", "text"}``."""
    return {"code": reply.code, "status": reply.status, "text": reply.text}


def _json_default(value: object) -> Any:
    if isinstance(value, Reply):
        return reply_fields(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"event field of type {type(value).__name__} is not JSON serialisable")


class EventLog:
    """Writes events to ``path`` (None: no file, subscribers only).

    The file is opened for appending at construction; an unwritable path
    raises :class:`OSError` there, at start-up, not on the first event.
    Emit from the event loop's thread: the buffer is not locked. Outside a
    running loop (tools, tests) every event is flushed at once.
    """

    def __init__(
        self,
        path: str | Path | None,
        *,
        flush_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.flush_interval = flush_interval
        self._clock = clock
        self._file: IO[str] | None = self._open() if self.path is not None else None
        self._subscribers: list[Subscriber] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._second = -1
        self._second_text = ""

    def emit(self, event: EventName, **fields: Any) -> None:
        """Record one event with ``fields`` (None values are dropped).

        Never raises for a subscriber's failure (it is logged); raises
        :class:`TypeError` for a field value JSON cannot hold.
        """
        if self._file is None and not self._subscribers:
            return

        record: dict[str, Any] = {"event": event, "ts": self._timestamp()}
        for key, value in fields.items():
            if value is not None:
                record[key] = reply_fields(value) if isinstance(value, Reply) else value

        if self._file is not None:
            line = json.dumps(
                record, separators=(",", ":"), ensure_ascii=False, default=_json_default
            )
            self._file.write(line + "\n")
            self._schedule_flush()

        for subscriber in self._subscribers:
            try:
                subscriber(record)
            except Exception:
                log.exception("events.subscriber_failed event=%s", event)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(record)`` for every later event; returns the unsubscribe function.

        The record dict is shared by all subscribers: treat it as read-only.
        Callbacks run on the emitting thread and must be quick (queue work,
        do not do I/O).
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def flush(self) -> None:
        """Write buffered lines to the file now."""
        self._flush_handle = None
        if self._file is not None:
            self._file.flush()

    def reopen(self) -> None:
        """Close and reopen the file, for logrotate after it moved the old one."""
        if self._file is None or self.path is None:
            return
        self._file.flush()
        self._file.close()
        self._file = self._open()

    def close(self) -> None:
        """Flush and close; later events are dropped."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._file is not None:
            self._file.flush()
            self._file.close()
            self._file = None
        self._subscribers.clear()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> IO[str]:
        assert self.path is not None
        return self.path.open("a", encoding="utf-8", buffering=_BUFFER_SIZE)

    def _schedule_flush(self) -> None:
        """Arrange a flush within ``flush_interval``; without a running loop, flush now."""
        if self._flush_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._flush_handle = loop.call_later(self.flush_interval, self.flush)

    def _timestamp(self) -> str:
        """ISO 8601 UTC with milliseconds and ``Z``; the seconds part is cached."""
        now = self._clock()
        second = int(now)
        if second != self._second:
            self._second = second
            moment = dt.datetime.fromtimestamp(second, dt.UTC)
            self._second_text = moment.strftime("%Y-%m-%dT%H:%M:%S")
        millis = int((now - second) * 1000)
        return f"{self._second_text}.{millis:03d}Z"


class NullEventLog(EventLog):
    """An event log that records nothing and tells no one (for tools and tests)."""

    def __init__(self) -> None:
        super().__init__(None)

    def emit(self, event: EventName, **fields: Any) -> None:
        """Do nothing."""

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Accept and ignore ``callback``."""
        return lambda: None
