"""Tests for mailwright.dns.queries in memory: the cache-hit path, Progress and run_all."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import dns.asyncresolver
import pytest

from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import (
    Answer,
    CachingResolver,
    Evaluation,
    Progress,
    Query,
    run,
    run_all,
)


class Clock:
    """A clock the cache reads; tests move it forward."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class MemoryResolver(CachingResolver):
    """A CachingResolver whose DNS is a dict of TXT records, with an optional delay."""

    def __init__(self, zone: dict[str, bytes], *, clock: Clock, delay: float = 0.0) -> None:
        super().__init__(dns.asyncresolver.Resolver(configure=False), clock=clock)
        self.time = clock
        self.zone = zone
        self.delay = delay
        self.asked: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def _ask(self, query: Query) -> Answer:
        self.asked.append(query.text)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        record = self.zone.get(query.text)
        if record is None:
            return Answer(query, LookupStatus.NXDOMAIN, ttl=60.0)
        return Answer(query, LookupStatus.ANSWER, (record,), ttl=120.0)


ZONE = {"a.example": b"one", "b.example": b"two", "c.example": b"three"}


def resolver(delay: float = 0.0) -> MemoryResolver:
    return MemoryResolver(ZONE, clock=Clock(), delay=delay)


def txt(*names: str) -> Evaluation[list[bytes]]:
    """Ask for each name's TXT record in a step of its own; return the records found."""
    found: list[bytes] = []
    for name in names:
        [answer] = yield (Query.of(name, "TXT"),)
        found.extend(answer.records)
    return found


def no_questions() -> Evaluation[str]:
    """An evaluation that needs no DNS at all."""
    yield from ()
    return "done"


def finished_without_awaiting(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """The coroutine's result if it completes on its first step, without suspending."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise AssertionError("the coroutine suspended")


def test_query_of_text_returns_one_object_per_name() -> None:
    """Asking for the same name again gives the same (immutable) query, hashed once."""
    first = Query.of("a.example", "TXT")

    again = Query.of("a.example", "TXT")

    assert again is first
    assert hash(first) == hash(Query(first.name, "TXT"))
    assert first == Query(first.name, "TXT")
    assert first.text == "a.example"


async def test_cached_answers_only_when_every_query_is_fresh() -> None:
    """cached() is all or nothing, and counts hits only when it answers."""
    dns = resolver()
    a, b = Query.of("a.example", "TXT"), Query.of("b.example", "TXT")
    await dns.resolve(a)

    partial = dns.cached((a, b))
    whole = dns.cached((a,))

    assert partial is None
    assert whole is not None
    assert whole[0].records == (b"one",)
    assert dns.statistics() == {"size": 1, "hits": 1, "misses": 1}


async def test_the_cache_hit_path_honours_ttl_expiry() -> None:
    """Past its TTL an answer is not given from the cache; DNS is asked again."""
    dns = resolver()
    query = Query.of("a.example", "TXT")
    await dns.resolve(query)

    dns.time.now += 119
    fresh = dns.cached((query,))
    dns.time.now += 1
    stale = dns.cached((query,))
    again = await run(txt("a.example"), dns)

    assert fresh is not None
    assert stale is None
    assert again == [b"one"]
    assert dns.asked == ["a.example", "a.example"]


async def test_run_all_returns_each_result_in_order() -> None:
    """Results come in the order the evaluations were given, whatever the cache held."""
    dns = resolver()
    await dns.resolve(Query.of("b.example", "TXT"))

    results = await run_all(
        dns,
        Progress(txt("a.example", "b.example")),
        Progress(txt("b.example")),
        Progress(no_questions()),
    )

    assert results == ([b"one", b"two"], [b"two"], "done")


async def test_a_warm_cache_finishes_run_all_without_suspending() -> None:
    """With every answer cached, run_all completes on its first step: no task, no await."""
    dns = resolver()
    for name in ZONE:
        await dns.resolve(Query.of(name, "TXT"))
    asked = list(dns.asked)

    results = finished_without_awaiting(
        run_all(dns, Progress(txt("a.example", "c.example")), Progress(txt("b.example")))
    )

    assert results == ([b"one", b"three"], [b"two"])
    assert dns.asked == asked


async def test_evaluations_that_miss_the_cache_go_on_concurrently() -> None:
    """Evaluations still waiting after the cache ask DNS at the same time, not in turn."""
    dns = resolver(delay=0.01)

    results = await run_all(dns, Progress(txt("a.example")), Progress(txt("b.example")))

    assert results == ([b"one"], [b"two"])
    assert dns.most_in_flight == 2


async def test_a_time_limit_ends_the_evaluation_with_the_expired_result() -> None:
    """Waiting for DNS past the time limit closes the evaluation and takes expired()."""
    dns = resolver(delay=5.0)
    slow = Progress(txt("a.example"), time_limit=0.01, expired=lambda: [b"expired"])

    [result] = await run_all(dns, slow)

    assert result == [b"expired"]
    assert slow.done


async def test_a_time_limit_does_not_apply_to_cached_answers() -> None:
    """An evaluation the cache answers whole finishes even with a zero-length budget."""
    dns = resolver()
    await dns.resolve(Query.of("a.example", "TXT"))
    bounded = Progress(txt("a.example"), time_limit=1e-9, expired=lambda: [b"expired"])

    result = await bounded.finish(dns)

    assert result == [b"one"]


def test_a_progress_has_no_result_before_it_is_done() -> None:
    """Reading the result of an unfinished evaluation is a RuntimeError."""
    progress = Progress(txt("a.example"))

    with pytest.raises(RuntimeError, match="not finished"):
        _ = progress.result
    assert progress.step == (Query.of("a.example", "TXT"),)


def test_a_time_limit_needs_its_expired_result() -> None:
    """time_limit and expired come together or not at all."""
    with pytest.raises(ValueError, match="both"):
        Progress(txt("a.example"), time_limit=1.0)
