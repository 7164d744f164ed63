"""Worker threads for the store's blocking SQL, handing results back in batches.

``loop.run_in_executor`` costs two thread wake-ups per call, and the
event-loop half of it (one ``call_soon_threadsafe`` per result) dominates a
20 µs SELECT. Here each thread, once awake, keeps taking jobs while any are
queued and hands back all their results with one ``call_soon_threadsafe``; with
many calls in flight (the router deciding for many notifications) the hop
costs a few microseconds instead of tens.

A worker given a ``runner`` hands it every job queued at once instead, so the
runner can run several in one go: the SQLite store commits a run of writes in
one transaction (group commit), one fsync for many.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

#: What a job ended with: its result, or the exception it raised.
Outcome = tuple[Any, BaseException | None]

#: Runs a batch of jobs, one outcome for each, in order.
Runner = Callable[[Sequence[Callable[[], Any]]], list[Outcome]]

#: The most jobs one runner call gets.
BATCH = 128

_Job = tuple[Callable[[], Any], "asyncio.Future[Any]"]


def run_each(jobs: Sequence[Callable[[], Any]]) -> list[Outcome]:
    """The plain runner: each job on its own."""
    outcomes: list[Outcome] = []
    for job in jobs:
        try:
            outcomes.append((job(), None))
        except BaseException as exc:  # handed to the awaiting coroutine
            outcomes.append((None, exc))
    return outcomes


class Worker:
    """``threads`` threads sharing one job queue, started on creation and stopped by stop().

    Jobs are submitted from one event loop (the store's user); results go back to it.
    """

    def __init__(self, threads: int, name: str, runner: Runner | None = None) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._runner = runner
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Run ``fn`` on a worker thread; a future of the running loop gets its result."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put((fn, future))
        return future

    def stop(self) -> None:
        """Let each thread finish the jobs queued so far, then end."""
        for _ in self._threads:
            self._jobs.put(None)

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            futures: list[asyncio.Future[Any]] = []
            jobs: list[Callable[[], Any]] = []
            outcomes: list[Outcome] = []
            while job is not None:
                fn, future = job
                futures.append(future)
                if self._runner is None:
                    outcomes.extend(run_each([fn]))  # as we go: other threads take the rest
                else:
                    jobs.append(fn)
                if len(futures) == BATCH:
                    break
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break

            if self._runner is not None and jobs:
                try:
                    outcomes = self._runner(jobs)
                except BaseException as exc:  # the runner broke: every job of it failed
                    outcomes = [(None, exc)] * len(jobs)
            if futures:
                _settle_later(futures, outcomes)
            if job is None:
                return


def _settle_later(futures: list[asyncio.Future[Any]], outcomes: list[Outcome]) -> None:
    """Hand outcomes to the futures' event loop, in one wake-up of it."""
    loop = futures[0].get_loop()
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
        loop.call_soon_threadsafe(_settle, futures, outcomes)


def _settle(futures: list[asyncio.Future[Any]], outcomes: list[Outcome]) -> None:
    """On the event loop: resolve each finished job's future."""
    for future, (result, exc) in zip(futures, outcomes, strict=True):
        if future.cancelled():
            continue
        if exc is None:
            future.set_result(result)
        else:
            future.set_exception(exc)
