"""Tests for mailwright.deadlines: waits bounded by one sweep instead of a timer each."""

from __future__ import annotations

import asyncio

import pytest

from mailwright.deadlines import DeadlineExpired, DeadlineSweeper, sweeper


async def test_a_wait_past_its_deadline_raises_deadline_expired() -> None:
    """A read that never completes ends with DeadlineExpired shortly after its timeout."""
    loop = asyncio.get_running_loop()
    deadline = DeadlineSweeper(loop).deadline()
    never: asyncio.Future[None] = loop.create_future()

    started = loop.time()
    with pytest.raises(DeadlineExpired), deadline.after(0.05):
        await never
    waited = loop.time() - started

    assert 0.05 <= waited < 1.0
    assert never.cancelled()


async def test_a_wait_that_finishes_in_time_is_left_alone() -> None:
    """A wait that completes before its deadline returns its value; no later cancel hits."""
    loop = asyncio.get_running_loop()
    deadline = DeadlineSweeper(loop).deadline()
    ready: asyncio.Future[str] = loop.create_future()
    loop.call_later(0.01, ready.set_result, "data")

    with deadline.after(0.2):
        got = await ready
    await asyncio.sleep(0.3)  # past the old deadline: the sweep must not cancel us now

    assert got == "data"
    assert asyncio.current_task() is not None
    assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]


async def test_an_outside_cancel_is_not_mistaken_for_a_timeout() -> None:
    """Cancelling the task for another reason still raises CancelledError, not a timeout."""
    loop = asyncio.get_running_loop()
    sweep = DeadlineSweeper(loop)

    async def wait_long() -> None:
        deadline = sweep.deadline()
        with deadline.after(10.0):
            await asyncio.sleep(10.0)

    task = loop.create_task(wait_long())
    await asyncio.sleep(0.01)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_deadline_without_a_task_bounds_whichever_task_arms_it() -> None:
    """One connection's deadline serves the successive worker tasks that use it."""
    loop = asyncio.get_running_loop()
    deadline = DeadlineSweeper(loop).deadline(task=None)

    async def wait(seconds: float, result: asyncio.Future[None]) -> str:
        try:
            with deadline.after(seconds):
                await result
        except DeadlineExpired:
            return "expired"
        return "done"

    first: asyncio.Future[None] = loop.create_future()
    loop.call_later(0.01, first.set_result, None)
    assert await loop.create_task(wait(0.5, first)) == "done"
    assert await loop.create_task(wait(0.05, loop.create_future())) == "expired"


async def test_each_loop_has_one_sweeper() -> None:
    """sweeper() returns the same object within a loop."""
    assert sweeper() is sweeper()
