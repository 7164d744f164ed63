"""The configured asynchronous resolver that every DNS lookup of mailwright goes through.

One :class:`dns.asyncresolver.Resolver` is built at start-up by
:func:`make_resolver` and shared by MX resolution, SPF, DKIM and DMARC. It
carries its own nameservers (each with its own port, which test servers and
local caches such as unbound on 5353 need), per-try and total time limits, and
an answer cache.

The cache is dnspython's :class:`~dns.resolver.LRUCache`: it keeps each answer
until the smallest TTL in it runs out, and it also keeps negative answers.
NXDOMAIN is stored under the name with type ANY and NODATA as an answer with
no RRset, both for the negative TTL of RFC 2308 §5 (the SOA minimum in the
authority section, capped by the SOA's own TTL). SERVFAIL and timeouts are not
cached, so a transient failure is retried on the next lookup. The LRU bound
keeps a busy MTA that meets millions of domains from growing without limit.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import dns.asyncresolver
import dns.nameserver
import dns.resolver

from mailwright.errors import ConfigError

DEFAULT_PORT = 53
DEFAULT_CACHE_SIZE = 100_000


def parse_nameserver(text: str) -> dns.nameserver.Do53Nameserver:
    """Parse one nameserver entry: ``ADDRESS``, ``ADDRESS:PORT``, ``[IPv6]`` or ``[IPv6]:PORT``.

    A bare IPv6 address (``::1``) is accepted without brackets when it has no
    port. Host names are refused: a resolver cannot look up its own servers.

    Raises :class:`~mailwright.errors.ConfigError` (key ``nameservers``) naming
    the entry when it is not an IP address with an optional port 1 to 65535.
    """
    entry = text.strip()
    host, port_text = _split_host_port(entry, text)

    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise _bad(text, f"{host!r} is not an IPv4 or IPv6 address") from None

    port = DEFAULT_PORT
    if port_text is not None:
        if not port_text.isascii() or not port_text.isdigit():
            raise _bad(text, f"port {port_text!r} is not a number")
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise _bad(text, f"port {port} is not between 1 and 65535")

    return dns.nameserver.Do53Nameserver(str(address), port)


def make_resolver(
    nameservers: Sequence[str] | None,
    *,
    timeout: float = 5.0,
    lifetime: float | None = None,
    cache_size: int = DEFAULT_CACHE_SIZE,
) -> dns.asyncresolver.Resolver:
    """Build the shared async resolver.

    ``nameservers`` lists entries in the forms :func:`parse_nameserver`
    accepts; ``None`` or an empty list means the system's resolvers (from
    ``/etc/resolv.conf``). ``timeout`` bounds one query to one server,
    ``lifetime`` a whole lookup across servers and retries (default: twice
    ``timeout``, at least 10 s, so a second server gets its turn);
    ``cache_size`` bounds the answer cache (0 disables it).

    Raises :class:`~mailwright.errors.ConfigError` for a bad nameserver entry,
    non-positive time limits, or when the system has no resolver configured.
    """
    if lifetime is None:
        lifetime = max(10.0, 2 * timeout)
    if timeout <= 0 or lifetime <= 0:
        raise ConfigError(f"timeout {timeout} and lifetime {lifetime} must be positive", key="dns")

    servers = [parse_nameserver(entry) for entry in nameservers or ()]
    if servers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = servers
    else:
        try:
            resolver = dns.asyncresolver.Resolver(configure=True)
        except (dns.resolver.NoResolverConfiguration, OSError) as exc:
            raise ConfigError(
                f"no nameservers configured and the system has none: {exc}", key="nameservers"
            ) from exc

    resolver.timeout = timeout
    resolver.lifetime = lifetime
    resolver.cache = dns.resolver.LRUCache(cache_size) if cache_size > 0 else None
    return resolver


def _split_host_port(entry: str, original: str) -> tuple[str, str | None]:
    """Split ``entry`` into host and optional port text (brackets removed)."""
    if entry.startswith("["):
        close = entry.find("]")
        if close < 0:
            raise _bad(original, "'[' without a closing ']'")
        host, rest = entry[1:close], entry[close + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise _bad(original, f"unexpected {rest!r} after ']'")
        return host, rest[1:]

    if entry.count(":") == 1:
        host, _, port_text = entry.partition(":")
        return host, port_text

    return entry, None


def _bad(text: str, detail: str) -> ConfigError:
    return ConfigError(f"nameserver {text!r}: {detail}", key="nameservers")
