"""make_resolver and the nameserver entries it accepts."""

from __future__ import annotations

import dns.nameserver
import dns.resolver
import pytest

from mailwright.dns import make_resolver, parse_nameserver
from mailwright.errors import ConfigError


@pytest.mark.parametrize(
    ("entry", "address", "port"),
    [
        ("192.0.2.1", "192.0.2.1", 53),
        ("192.0.2.1:5353", "192.0.2.1", 5353),
        ("::1", "::1", 53),
        ("[2001:DB8::1]", "2001:db8::1", 53),
        ("[2001:db8::1]:5300", "2001:db8::1", 5300),
        (" 127.0.0.1:1 ", "127.0.0.1", 1),
    ],
)
def test_nameserver_entries_give_address_and_port(entry: str, address: str, port: int) -> None:
    """Each accepted form yields a Do53 nameserver with its own port."""
    server = parse_nameserver(entry)

    assert isinstance(server, dns.nameserver.Do53Nameserver)
    assert (server.address, server.port) == (address, port)


@pytest.mark.parametrize(
    "entry",
    [
        "ns.example.test",
        "192.0.2.1:0",
        "192.0.2.1:65536",
        "192.0.2.1:abc",
        "[2001:db8::1",
        "[2001:db8::1]5300",
        "2001:db8::1:53:x",
        "",
    ],
)
def test_bad_nameserver_entry_is_a_config_error_naming_it(entry: str) -> None:
    """A host name, a bad port or broken brackets is refused with the entry quoted."""
    with pytest.raises(ConfigError) as caught:
        parse_nameserver(entry)

    assert repr(entry) in str(caught.value)
    assert caught.value.key == "nameservers"


def test_resolver_uses_every_server_with_its_own_port() -> None:
    """Servers on different ports are kept apart, with the limits and a cache set."""
    resolver = make_resolver(["127.0.0.1:5301", "[::1]:5302"], timeout=0.5, lifetime=2.0)

    assert [(ns.address, ns.port) for ns in resolver.nameservers] == [  # type: ignore[union-attr]
        ("127.0.0.1", 5301),
        ("::1", 5302),
    ]
    assert (resolver.timeout, resolver.lifetime) == (0.5, 2.0)
    assert isinstance(resolver.cache, dns.resolver.LRUCache)


def test_no_nameservers_means_the_system_configuration() -> None:
    """None reads the system's resolv.conf, and the answer cache is still on."""
    try:
        system = dns.resolver.Resolver(configure=True)
    except dns.resolver.NoResolverConfiguration:
        with pytest.raises(ConfigError):
            make_resolver(None)
        return

    resolver = make_resolver(None)

    assert resolver.nameservers == system.nameservers
    assert resolver.cache is not None


def test_cache_size_zero_turns_the_cache_off() -> None:
    """A cache size of 0 leaves the resolver without a cache."""
    resolver = make_resolver(["127.0.0.1"], cache_size=0)

    assert resolver.cache is None


@pytest.mark.parametrize(("timeout", "lifetime"), [(0.0, 1.0), (1.0, -1.0)])
def test_non_positive_time_limits_are_refused(timeout: float, lifetime: float) -> None:
    """A zero or negative timeout or lifetime is a configuration error."""
    with pytest.raises(ConfigError, match="must be positive"):
        make_resolver(["127.0.0.1"], timeout=timeout, lifetime=lifetime)


def test_a_long_query_timeout_lengthens_the_whole_lookup() -> None:
    """A timeout above the 10 s floor still takes effect: the lookup may last twice it."""
    resolver = make_resolver(["127.0.0.1"], timeout=30.0)

    assert (resolver.timeout, resolver.lifetime) == (30.0, 60.0)
    assert make_resolver(["127.0.0.1"], timeout=2.0).lifetime == 10.0
