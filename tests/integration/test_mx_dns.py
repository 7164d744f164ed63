"""resolve_next_hops against the real test DNS server on loopback."""

from __future__ import annotations

import random
from collections.abc import Callable

import dns.asyncresolver
import dns.exception
import dns.resolver
import pytest
from tests import dnsserver
from tests.dnsserver import DnsServer

from mailwright.dns import (
    NextHop,
    PermanentDnsError,
    TransientDnsError,
    make_resolver,
    resolve_next_hops,
)
from mailwright.smtp import replies

pytestmark = pytest.mark.integration

dns_server = dnsserver.dns_server

StartDns = Callable[..., DnsServer]

ZONES = {
    "example.test": [
        ("MX", "10 mx1.example.test."),
        ("MX", "10 mx2.example.test."),
        ("MX", "10 mx3.example.test."),
        ("MX", "20 backup.example.test."),
    ],
    "mx1.example.test": [("A", "192.0.2.1")],
    "mx2.example.test": [("A", "192.0.2.2"), ("AAAA", "2001:db8::2")],
    "mx3.example.test": [("A", "192.0.2.3")],
    "backup.example.test": [("A", "192.0.2.9")],
    "nomx.test": [("A", "192.0.2.50"), ("AAAA", "2001:db8::50")],
    "null.test": [("MX", "0 .")],
    "broken.test": [("MX", "10 mx.broken.test.")],
    "slow.test": [("MX", "10 mx.slow.test.")],
    "big.test": [
        ("MX", f"{5 if n == 7 else 10} mx{n:02d}.with-a-rather-long-label-for-size.big.test.")
        for n in range(40)
    ],
    "mx07.with-a-rather-long-label-for-size.big.test": [("A", "192.0.2.77")],
    "xn--bcher-kva.test": [("MX", "5 mx1.example.test.")],
    "loop.test": [("MX", "10 me.loop.test."), ("MX", "20 other.loop.test.")],
    "me.loop.test": [("A", "192.0.2.100")],
    "other.loop.test": [("A", "192.0.2.101")],
}


def resolver_for(server: DnsServer, lifetime: float = 2.0) -> dns.asyncresolver.Resolver:
    """A resolver asking only ``server``, with short time limits."""
    return make_resolver([server.nameserver], timeout=min(0.5, lifetime), lifetime=lifetime)


async def test_mx_hosts_come_in_preference_order_with_addresses(dns_server: StartDns) -> None:
    """The preference-10 hosts come first (shuffled), the backup last, each with addresses."""
    server = dns_server(ZONES)

    hops = await resolve_next_hops(resolver_for(server), "example.test", random.Random(1))

    assert {hop.hostname for hop in hops[:3]} == {
        "mx1.example.test",
        "mx2.example.test",
        "mx3.example.test",
    }
    assert hops[3] == NextHop("backup.example.test", ("192.0.2.9",))
    assert NextHop("mx2.example.test", ("192.0.2.2", "2001:db8::2")) in hops


async def test_seeded_rng_makes_the_equal_preference_order_repeatable(
    dns_server: StartDns,
) -> None:
    """The same seed gives the same order; some other seed gives another one."""
    server = dns_server(ZONES)
    resolver = resolver_for(server)

    def names(hops: list[NextHop]) -> list[str]:
        return [hop.hostname for hop in hops]

    first = names(await resolve_next_hops(resolver, "example.test", random.Random(3)))
    again = names(await resolve_next_hops(resolver, "example.test", random.Random(3)))
    others = {
        tuple(names(await resolve_next_hops(resolver, "example.test", random.Random(seed))))
        for seed in range(20)
    }

    assert first == again
    assert len(others) > 1


async def test_prefer_ipv6_puts_aaaa_addresses_first(dns_server: StartDns) -> None:
    """With prefer_ipv6 the IPv6 address of a dual-stack host comes first."""
    server = dns_server(ZONES)

    hops = await resolve_next_hops(
        resolver_for(server), "nomx.test", random.Random(0), prefer_ipv6=True
    )

    assert hops == [NextHop("nomx.test", ("2001:db8::50", "192.0.2.50"))]


async def test_domain_without_mx_falls_back_to_its_own_addresses(dns_server: StartDns) -> None:
    """No MX records: the domain's A and AAAA records are the next hop."""
    server = dns_server(ZONES)

    hops = await resolve_next_hops(resolver_for(server), "nomx.test", random.Random(0))

    assert hops == [NextHop("nomx.test", ("192.0.2.50", "2001:db8::50"))]


async def test_null_mx_is_refused_with_556_without_address_lookups(
    dns_server: StartDns,
) -> None:
    """A null MX fails at once: 556 5.1.10, and no A/AAAA question is asked."""
    server = dns_server(ZONES)

    with pytest.raises(PermanentDnsError) as caught:
        await resolve_next_hops(resolver_for(server), "null.test", random.Random(0))

    assert caught.value.reply == replies.NULL_MX
    assert [query[1] for query in server.queries] == ["MX"]


async def test_nxdomain_bounces_with_550_and_keeps_the_cause(dns_server: StartDns) -> None:
    """A domain the server does not know is a 550 5.1.2, dnspython's NXDOMAIN as cause."""
    server = dns_server(ZONES)

    with pytest.raises(PermanentDnsError) as caught:
        await resolve_next_hops(resolver_for(server), "nowhere.test", random.Random(0))

    assert caught.value.reply == replies.DOMAIN_NOT_FOUND
    assert isinstance(caught.value.__cause__, dns.resolver.NXDOMAIN)


async def test_servfail_defers_with_451_443(dns_server: StartDns) -> None:
    """A SERVFAIL from the only nameserver defers the domain with 451 4.4.3."""
    server = dns_server(ZONES)
    server.fail("example.test", "servfail")

    with pytest.raises(TransientDnsError) as caught:
        await resolve_next_hops(resolver_for(server), "example.test", random.Random(0))

    assert caught.value.reply == replies.DNS_TEMP_FAILURE
    assert isinstance(caught.value.__cause__, dns.resolver.NoNameservers)


async def test_silent_server_times_out_into_a_transient_error(dns_server: StartDns) -> None:
    """A server that never answers ends in 451 4.4.3 once the tiny lifetime is spent."""
    server = dns_server(ZONES)
    server.fail("slow.test", "drop")

    with pytest.raises(TransientDnsError) as caught:
        await resolve_next_hops(resolver_for(server, 0.3), "slow.test", random.Random(0))

    assert caught.value.reply == replies.DNS_TEMP_FAILURE
    assert isinstance(caught.value.__cause__, dns.exception.Timeout)


async def test_exchanger_lookup_failure_defers_the_domain(dns_server: StartDns) -> None:
    """When the only exchanger's address lookups fail, the domain is deferred."""
    server = dns_server(ZONES)
    server.fail("mx.broken.test", "servfail")

    with pytest.raises(TransientDnsError) as caught:
        await resolve_next_hops(resolver_for(server), "broken.test", random.Random(0))

    assert "mx.broken.test" in str(caught.value)
    assert caught.value.__cause__ is not None


async def test_exchanger_without_any_address_bounces_with_544(dns_server: StartDns) -> None:
    """An exchanger name that does not exist at all leaves nothing to try: 550 5.4.4."""
    server = dns_server({"broken.test": [("MX", "10 mx.broken.test.")]})

    with pytest.raises(PermanentDnsError) as caught:
        await resolve_next_hops(resolver_for(server), "broken.test", random.Random(0))

    assert caught.value.reply == replies.NO_MAIL_EXCHANGER_ADDRESS


async def test_truncated_udp_answer_is_retried_over_tcp(dns_server: StartDns) -> None:
    """A truncated UDP answer makes the resolver ask again over TCP and succeed."""
    server = dns_server(ZONES)
    server.fail("example.test", "truncate", "MX")

    hops = await resolve_next_hops(resolver_for(server), "example.test", random.Random(0))

    assert len(hops) == 4
    assert [q[2] for q in server.queries_for("example.test", "MX")] == ["udp", "tcp"]


async def test_answer_too_big_for_udp_arrives_over_tcp(dns_server: StartDns) -> None:
    """An MX set over 512 octets is truncated on UDP and read in full over TCP."""
    server = dns_server(ZONES)

    hops = await resolve_next_hops(resolver_for(server), "big.test", random.Random(0))

    assert hops == [NextHop("mx07.with-a-rather-long-label-for-size.big.test", ("192.0.2.77",))]
    assert [q[2] for q in server.queries_for("big.test", "MX")] == ["udp", "tcp"]


async def test_idn_domain_is_looked_up_by_its_a_label(dns_server: StartDns) -> None:
    """An internationalised domain is asked for as xn--…, and its MX is used."""
    server = dns_server(ZONES)

    hops = await resolve_next_hops(resolver_for(server), "bücher.test", random.Random(0))

    assert hops == [NextHop("mx1.example.test", ("192.0.2.1",))]
    assert server.queries_for("xn--bcher-kva.test", "MX")


async def test_mx_pointing_at_us_is_dropped_with_the_less_preferred(
    dns_server: StartDns,
) -> None:
    """Our own name as the best MX leaves nothing to try: 554 5.4.6, no address lookups."""
    server = dns_server(ZONES)

    with pytest.raises(PermanentDnsError) as caught:
        await resolve_next_hops(
            resolver_for(server), "loop.test", random.Random(0), local_names=["ME.loop.test."]
        )

    assert caught.value.reply == replies.MAIL_LOOP
    assert not server.queries_for("other.loop.test")


async def test_address_literal_needs_no_dns(dns_server: StartDns) -> None:
    """An address literal is its own next hop; the server is not asked anything."""
    server = dns_server(ZONES)

    hops = await resolve_next_hops(resolver_for(server), "[192.0.2.5]", random.Random(0))

    assert hops == [NextHop("[192.0.2.5]", ("192.0.2.5",))]
    assert server.queries == []


async def test_negative_answers_are_cached(dns_server: StartDns) -> None:
    """Repeated NXDOMAIN and NODATA answers come from the cache (RFC 2308)."""
    server = dns_server(ZONES)
    resolver = resolver_for(server)

    for _ in range(2):
        with pytest.raises(PermanentDnsError):
            await resolve_next_hops(resolver, "nowhere.test", random.Random(0))
        await resolve_next_hops(resolver, "nomx.test", random.Random(0))

    assert len(server.queries_for("nowhere.test", "MX")) == 1
    assert len(server.queries_for("nomx.test", "MX")) == 1


async def test_second_nameserver_on_its_own_port_answers_when_first_fails(
    dns_server: StartDns,
) -> None:
    """Two servers on two non-53 ports: a REFUSED from the first moves on to the second."""
    refusing = dns_server(ZONES)
    refusing.fail("example.test", "refused")
    good = dns_server(ZONES)
    resolver = make_resolver([refusing.nameserver, good.nameserver], timeout=0.5, lifetime=2.0)

    hops = await resolve_next_hops(resolver, "example.test", random.Random(0))

    assert refusing.port != good.port
    assert len(hops) == 4
    assert refusing.queries_for("example.test", "MX")
    assert good.queries_for("example.test", "MX")
