"""Tests for mailwright.dns.queries: sans-IO DNS steps answered by a real DNS server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.dnsserver import DnsServer

from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, CachingResolver, Evaluation, Query, run, run_sync
from mailwright.dns.resolver import make_resolver

pytestmark = pytest.mark.integration

ZONES = {
    "example.test": [("TXT", "v=spf1 -all", 120), ("MX", "10 mx.example.test.")],
    "mx.example.test": [("A", "192.0.2.1"), ("AAAA", "2001:db8::1")],
    "long.example.test": [("TXT", ["v=spf1 ", "ip4:192.0.2.0/24 ", "-all"])],
    "a b%c.example.test": [("TXT", "spaces and percent")],
}


class Clock:
    """A clock the cache reads; tests move it forward."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> Iterator[DnsServer]:
    with DnsServer(ZONES, negative_ttl=30) as running:
        yield running


def caching(server: DnsServer, clock: Clock | None = None) -> CachingResolver:
    resolver = make_resolver([server.nameserver], timeout=0.5, lifetime=1.0, cache_size=0)
    return CachingResolver(resolver, clock=clock or Clock())


async def test_records_are_decoded_per_type(server: DnsServer) -> None:
    """TXT strings come joined as bytes, MX as (preference, name), addresses as text."""
    resolver = caching(server)

    txt, mx, address, joined = await resolver.resolve_all(
        (
            Query.of("example.test", "TXT"),
            Query.of("example.test", "MX"),
            Query.of("mx.example.test", "AAAA"),
            Query.of("long.example.test", "TXT"),
        )
    )

    assert txt.records == (b"v=spf1 -all",)
    assert [(pref, name.to_text()) for pref, name in mx.records] == [(10, "mx.example.test.")]
    assert address.records == ("2001:db8::1",)
    assert joined.records == (b"v=spf1 ip4:192.0.2.0/24 -all",)


async def test_labels_with_spaces_and_percent_are_asked_as_octets(server: DnsServer) -> None:
    """A name built by SPF macros reaches the server byte for byte."""
    [answer] = await caching(server).resolve_all((Query.of(b"a b%c.example.test", "TXT"),))

    assert answer.records == (b"spaces and percent",)


async def test_answers_are_cached_for_their_ttl(server: DnsServer) -> None:
    """A second question within the TTL is not asked again; after it, it is."""
    clock = Clock()
    resolver = caching(server, clock)
    query = Query.of("example.test", "TXT")

    await resolver.resolve(query)
    await resolver.resolve(query)
    clock.now += 121
    await resolver.resolve(query)

    assert len(server.queries_for("example.test", "TXT")) == 2
    assert resolver.statistics()["hits"] == 1


async def test_negative_answers_are_cached_for_the_soa_minimum(server: DnsServer) -> None:
    """NXDOMAIN and NODATA are remembered for the negative TTL (RFC 2308), then asked again."""
    clock = Clock()
    resolver = caching(server, clock)
    missing = Query.of("nothing.example.test", "TXT")
    nodata = Query.of("mx.example.test", "TXT")

    first = await resolver.resolve_all((missing, nodata))
    await resolver.resolve_all((missing, nodata))
    clock.now += 31
    await resolver.resolve_all((missing, nodata))

    assert [a.status for a in first] == [LookupStatus.NXDOMAIN, LookupStatus.NODATA]
    assert len(server.queries_for("nothing.example.test", "TXT")) == 2
    assert len(server.queries_for("mx.example.test", "TXT")) == 2


async def test_failures_are_transient_and_never_cached(server: DnsServer) -> None:
    """SERVFAIL and a silent server are transient answers, asked again every time."""
    server.fail("example.test", "servfail", "TXT")
    server.fail("mx.example.test", "drop")
    resolver = caching(server)
    broken = Query.of("example.test", "TXT")
    silent = Query.of("mx.example.test", "A")

    first = await resolver.resolve_all((broken, silent))
    await resolver.resolve(broken)

    assert [a.status for a in first] == [LookupStatus.SERVFAIL, LookupStatus.TIMEOUT]
    assert all(a.is_transient for a in first)
    assert len(server.queries_for("example.test", "TXT")) == 2


def _two_steps() -> Evaluation[list[bytes]]:
    """An evaluation that asks one question, then two, and returns the TXT records."""
    [first] = yield (Query.of("example.test", "TXT"),)
    second, third = yield (Query.of("long.example.test", "TXT"), Query.of("x.test", "TXT"))
    return [*first.records, *second.records, *third.records]


async def test_run_drives_an_evaluation_against_dns(server: DnsServer) -> None:
    """run() answers each step in order and returns the generator's result."""
    result = await run(_two_steps(), caching(server))

    assert result == [b"v=spf1 -all", b"v=spf1 ip4:192.0.2.0/24 -all"]


def test_run_sync_drives_an_evaluation_against_a_function() -> None:
    """run_sync() feeds answers from a plain function: fixture zones for unit tests."""
    zone = {"example.test.": (b"one",), "long.example.test.": (b"two",)}

    def answer(query: Query) -> Answer:
        records = zone.get(query.name.to_text())
        if records is None:
            return Answer(query, LookupStatus.NXDOMAIN)
        return Answer(query, LookupStatus.ANSWER, records)

    assert run_sync(_two_steps(), answer) == [b"one", b"two"]


def test_query_names_are_checked() -> None:
    """Unknown types, empty labels and names over 255 octets are refused."""
    with pytest.raises(ValueError, match="type"):
        Query.of("example.test", "SRV")
    with pytest.raises(ValueError, match="empty label"):
        Query.of("a..example.test", "TXT")
    with pytest.raises(ValueError, match="255"):
        Query.of(".".join(["x" * 60] * 5), "TXT")


# -- ResultMemo: results kept as long as the answers they read ---------------------------


def _lookup(name: str) -> Evaluation[bytes]:
    """A one-step evaluation: the first TXT string of ``name``, or b'' without one."""
    (answer,) = yield (Query.of(name, "TXT"),)
    return answer.records[0] if answer.records else b""


async def test_memo_keeps_a_result_until_the_first_answer_it_read_expires(
    server: DnsServer,
) -> None:
    """example.test's TXT has TTL 120: the result is reused until then, not after."""
    clock = Clock()
    resolver = caching(server, clock)
    memo = resolver.results

    first = await run(memo.evaluation("k", _lookup("example.test")), resolver)
    assert first == b"v=spf1 -all"
    asked = len(server.queries)
    assert memo.get("k") == b"v=spf1 -all"

    clock.now += 119
    assert memo.get("k") == b"v=spf1 -all"
    clock.now += 2
    assert memo.get("k") is None
    assert len(server.queries) == asked  # get() never asks DNS


async def test_memo_keeps_nothing_that_read_a_transient_failure(server: DnsServer) -> None:
    """SERVFAIL is never cached, so a result built on it is never kept."""
    server.fail("example.test", "servfail")
    resolver = caching(server)
    memo = resolver.results

    assert await run(memo.evaluation("k", _lookup("example.test")), resolver) == b""
    assert memo.get("k") is None


async def test_memo_respects_keep_and_its_size(server: DnsServer) -> None:
    """``keep`` may refuse a result; past ``size`` entries the oldest goes."""
    resolver = caching(server)
    memo = resolver.results
    memo.size = 2

    await run(memo.evaluation("refused", _lookup("example.test"), keep=lambda r: False), resolver)
    assert memo.get("refused") is None

    for key in ("a", "b", "c"):
        await run(memo.evaluation(key, _lookup("example.test")), resolver)
    assert memo.get("a") is None
    assert memo.get("b") == memo.get("c") == b"v=spf1 -all"
