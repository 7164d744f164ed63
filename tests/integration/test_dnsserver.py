"""The test DNS server itself: what SPF, DKIM and DMARC suites will rely on."""

from __future__ import annotations

import dns.asyncresolver
import dns.rdatatype
import dns.resolver
import pytest
from tests.dnsserver import DnsServer

from mailwright.dns import make_resolver

pytestmark = pytest.mark.integration


def resolver_for(server: DnsServer) -> dns.asyncresolver.Resolver:
    """A resolver asking only ``server``, without a cache."""
    return make_resolver([server.nameserver], timeout=0.5, lifetime=1.0, cache_size=0)


async def test_names_with_spaces_and_percent_are_served_as_bytes() -> None:
    """A name holding a space and '%' (SPF macro output) is found and answered."""
    with DnsServer({"a b%c.spf.test": [("TXT", "v=spf1 -all")]}) as server:
        answer = await resolver_for(server).resolve("a\\032b%c.spf.test", "TXT")

    assert [b"".join(rdata.strings) for rdata in answer] == [b"v=spf1 -all"]


async def test_empty_txt_is_served_as_one_empty_string() -> None:
    """An empty TXT value arrives as a record with one empty string."""
    with DnsServer({"empty.test": [("TXT", "")]}) as server:
        answer = await resolver_for(server).resolve("empty.test", "TXT")

    assert [rdata.strings for rdata in answer] == [(b"",)]


async def test_long_txt_is_split_and_list_values_kept_apart() -> None:
    """A 300-octet str becomes 255 + 45 octets; a list gives its strings one by one."""
    zones = {"long.test": [("TXT", "x" * 300)], "parts.test": [("TXT", ["v=DKIM1;", "p=AB"])]}
    with DnsServer(zones) as server:
        long = await resolver_for(server).resolve("long.test", "TXT")
        parts = await resolver_for(server).resolve("parts.test", "TXT")

    assert [len(s) for s in long[0].strings] == [255, 45]
    assert parts[0].strings == (b"v=DKIM1;", b"p=AB")


async def test_unknown_name_is_nxdomain_and_known_name_other_type_is_nodata() -> None:
    """NXDOMAIN for names not held, NODATA (with an SOA) for a type a name lacks."""
    with DnsServer({"host.test": [("A", "192.0.2.1")]}) as server:
        resolver = resolver_for(server)
        with pytest.raises(dns.resolver.NXDOMAIN):
            await resolver.resolve("other.test", "A")
        with pytest.raises(dns.resolver.NoAnswer) as caught:
            await resolver.resolve("host.test", "MX")

    authority = caught.value.response().authority  # type: ignore[no-untyped-call]
    assert authority[0].rdtype == dns.rdatatype.SOA


async def test_empty_non_terminal_is_nodata_not_nxdomain() -> None:
    """A name that exists only as the parent of another is NODATA (RFC 8020)."""
    zones = {"sel._domainkey.mail.test": [("TXT", "v=DKIM1")]}
    with DnsServer(zones) as server, pytest.raises(dns.resolver.NoAnswer):
        await resolver_for(server).resolve("_domainkey.mail.test", "TXT")


async def test_cname_is_followed_and_wildcards_expand() -> None:
    """A CNAME chain is answered in full and '*.parent' answers any child name."""
    zones = {
        "alias.test": [("CNAME", "target.test.")],
        "target.test": [("A", "192.0.2.8")],
        "*.wild.test": [("TXT", "wild")],
    }
    with DnsServer(zones) as server:
        resolver = resolver_for(server)
        alias = await resolver.resolve("alias.test", "A")
        wild = await resolver.resolve("any.thing.wild.test", "TXT")

    assert [rdata.address for rdata in alias] == ["192.0.2.8"]
    assert alias.canonical_name.to_text() == "target.test."
    assert wild.rrset is not None
    assert wild.rrset.name.to_text() == "any.thing.wild.test."


async def test_zone_file_text_is_accepted() -> None:
    """A zone given as zone-file text is served like the mapping form."""
    zone = "$TTL 60\nzone.test. IN MX 10 mx.zone.test.\nmx.zone.test. IN A 192.0.2.4\n"
    with DnsServer(zone) as server:
        answer = await resolver_for(server).resolve("mx.zone.test", "A")

    assert [rdata.address for rdata in answer] == ["192.0.2.4"]


async def test_healed_name_answers_again() -> None:
    """After heal() a name that was failing is served normally."""
    with DnsServer({"host.test": [("A", "192.0.2.1")]}) as server:
        server.fail("host.test", "servfail")
        with pytest.raises(dns.resolver.NoNameservers):
            await resolver_for(server).resolve("host.test", "A")
        server.heal("host.test")
        answer = await resolver_for(server).resolve("host.test", "A")

    assert [rdata.address for rdata in answer] == ["192.0.2.1"]


def test_unknown_fault_is_refused() -> None:
    """fail() accepts only the faults it knows."""
    server = DnsServer()

    with pytest.raises(ValueError, match="explode"):
        server.fail("host.test", "explode")
    server.stop()
