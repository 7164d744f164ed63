"""Read deadlines for many connections, kept by one periodic sweep instead of a timer each.

Every SMTP read in the server and in the delivery client waits under a
timeout (RFC 5321 §4.5.3.2). ``asyncio.timeout()`` around each read costs a
timer, a context manager and a task lookup: about five percent of the CPU a
relayed message takes, for timers that almost never fire. Timeouts here are
minutes long and a little lateness does no harm, so a connection instead
writes the time its current wait must end into its :class:`Deadline`, and one
:class:`DeadlineSweeper` per event loop wakes up a few times a second (or
more often when a timeout is short) and cancels the tasks whose deadline has
passed. The waiting code tells such a cancellation apart from any other with
:meth:`Deadline.expired` and turns it into its own timeout error.
"""

from __future__ import annotations

import asyncio
import weakref
from types import TracebackType
from typing import Any

#: The longest and shortest pause between sweeps, in seconds.
MAX_RESOLUTION = 1.0
MIN_RESOLUTION = 0.01


class DeadlineExpired(TimeoutError):
    """A wait under a :class:`Deadline` lasted longer than its timeout."""


class Deadline:
    """The deadline of one task's current wait.

    Use as ``with deadline.after(seconds): await ...``. The block raises
    :class:`DeadlineExpired` when the sweep finds the wait still running past
    its deadline (up to one sweep interval late). Only for waits of the task
    the deadline was made for, one at a time. A plain class rather than a
    generator-based context manager: it runs on every read of every session.
    """

    __slots__ = ("__weakref__", "_at", "_expired", "_fixed", "_sweeper", "_task", "_timeout")

    def __init__(self, sweeper: DeadlineSweeper, task: asyncio.Task[Any] | None) -> None:
        self._sweeper = sweeper
        self._fixed = task
        self._task = task
        self._at: float | None = None
        self._timeout = 0.0
        self._expired = False

    def after(self, timeout: float) -> Deadline:
        """Arm the deadline ``timeout`` seconds from now; returns itself for ``with``.

        A deadline made without a task bounds the wait of whichever task arms it.
        """
        if self._fixed is None:
            self._task = asyncio.current_task()
        sweeper = self._sweeper
        self._expired = False
        self._timeout = timeout
        self._at = sweeper.time() + timeout
        if timeout < sweeper.shortest:
            sweeper.note_timeout(timeout)
        return self

    def now(self) -> float:
        """The loop's clock, which deadlines are measured on."""
        return self._sweeper.time()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._at = None
        if exc_type is asyncio.CancelledError and self._expired and self._task is not None:
            self._expired = False
            self._task.uncancel()
            raise DeadlineExpired(f"no progress within {self._timeout:g}s") from None

    def _expire(self, now: float) -> None:
        if self._at is not None and self._at <= now and not self._expired:
            self._expired = True
            self._at = None
            if self._task is not None:
                self._task.cancel()


class DeadlineSweeper:
    """Cancels the waits of :class:`Deadline` objects that ran past their time."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop or asyncio.get_running_loop()
        self._deadlines: weakref.WeakSet[Deadline] = weakref.WeakSet()
        self._resolution = MAX_RESOLUTION
        self._handle: asyncio.TimerHandle | None = None
        self.time = self.loop.time  # bound once: read on every wait of every connection
        self.shortest = float("inf")  # the shortest timeout seen since the sweep slowed down

    def deadline(self, task: asyncio.Task[Any] | None = None) -> Deadline:
        """A deadline for ``task`` (None: for the task that arms it), swept until dropped."""
        deadline = Deadline(self, task)
        self._deadlines.add(deadline)
        if self._handle is None:
            self._handle = self.loop.call_later(self._resolution, self._sweep)
        return deadline

    def note_timeout(self, timeout: float) -> None:
        """Sweep often enough for ``timeout`` to fire at most a tenth late."""
        self.shortest = min(self.shortest, timeout)
        wanted = min(MAX_RESOLUTION, max(MIN_RESOLUTION, timeout / 10))
        if wanted < self._resolution:
            self._resolution = wanted
            if self._handle is not None:
                self._handle.cancel()
            self._handle = self.loop.call_later(wanted, self._sweep)

    def close(self) -> None:
        """Stop sweeping (running waits then never expire)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _sweep(self) -> None:
        self._handle = None
        if not self._deadlines:
            self._resolution = MAX_RESOLUTION
            self.shortest = float("inf")
            return
        now = self.loop.time()
        for deadline in list(self._deadlines):
            deadline._expire(now)
        self._handle = self.loop.call_later(self._resolution, self._sweep)


_SWEEPERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, DeadlineSweeper] = (
    weakref.WeakKeyDictionary()
)


def sweeper() -> DeadlineSweeper:
    """The running loop's sweeper, made on first use."""
    loop = asyncio.get_running_loop()
    found = _SWEEPERS.get(loop)
    if found is None:
        found = _SWEEPERS[loop] = DeadlineSweeper(loop)
    return found
