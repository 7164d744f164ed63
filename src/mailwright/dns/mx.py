"""Next-hop selection for a recipient domain (RFC 5321 §5, RFC 7505).

Theory of operation. Finding where to send mail for a domain is two rounds of
DNS questions and a handful of decisions:

1. Ask for the domain's MX records. The answer (or its absence) decides the
   list of mail exchangers: records in preference order, equal preferences in
   random order to spread load (§5.1); no MX at all means the domain itself is
   the one exchanger ("implicit MX"); a lone MX of "." is a null MX (RFC 7505),
   a promise that the domain takes no mail, so we fail at once with 556
   5.1.10; a domain that does not exist fails with 550 5.1.2; a failed lookup
   is worth retrying later (451 4.4.3). When one of the exchangers is this
   host itself, it and every exchanger not more preferred are dropped (§5.1),
   since sending to them would loop; nothing left is a 554 5.4.6 loop.
2. Ask for the A and AAAA records of each exchanger. Exchangers without an
   address are skipped; when none has one we defer if any lookup failed for
   a transient reason and bounce (550 5.4.4) otherwise.

The decisions are pure functions over :class:`Lookup` values (the outcome of
one DNS question as data), tested without DNS; :func:`resolve_next_hops` is
the thin async loop that asks dnspython and translates its exceptions.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
import random
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from mailwright.dns.errors import DnsError, PermanentDnsError, TransientDnsError
from mailwright.smtp import replies

log = logging.getLogger("mailwright.dns")

T = TypeVar("T")

#: Exchangers looked up per domain at most: a domain listing hundreds of MX
#: hosts must not make us send hundreds of address queries.
DEFAULT_MAX_HOSTS = 10


class LookupStatus(enum.Enum):
    """How one DNS question ended."""

    ANSWER = "answer"  # NOERROR with records of the asked type
    NODATA = "nodata"  # NOERROR, the name exists but has no records of that type
    NXDOMAIN = "nxdomain"  # the name does not exist
    SERVFAIL = "servfail"  # every nameserver failed or refused
    TIMEOUT = "timeout"  # no answer within the resolver's lifetime

    @property
    def is_transient(self) -> bool:
        """True when asking again later may give another outcome."""
        return self in (LookupStatus.SERVFAIL, LookupStatus.TIMEOUT)


@dataclass(frozen=True, slots=True)
class Lookup(Generic[T]):
    """The outcome of one DNS question: a status and, for ANSWER, the records.

    ``error`` keeps the dnspython exception behind a failed outcome, so an
    error raised from this lookup can name it as its cause.
    """

    status: LookupStatus
    records: tuple[T, ...] = ()
    detail: str = ""
    error: BaseException | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class MxRecord:
    """One MX record; ``exchange`` is lower-case with no trailing dot ("" for ".")."""

    preference: int
    exchange: str


@dataclass(frozen=True, slots=True)
class NextHop:
    """One mail exchanger to try, with its addresses in the order to try them."""

    hostname: str
    addresses: tuple[str, ...]


# --- Pure decisions ---------------------------------------------------------------


def normalize_domain(domain: str) -> str:
    """The ASCII (A-label) form of ``domain``, lower-case, without a trailing dot.

    Internationalised names are converted with Python's ``idna`` codec
    (IDNA 2003, as dnspython's default codec also does). Raises
    :class:`PermanentDnsError` (550 5.1.2) for an empty name or one that
    cannot be converted.
    """
    name = domain.strip().rstrip(".")
    if not name:
        raise PermanentDnsError(domain, replies.BAD_DOMAIN, "empty domain name")

    if name.isascii():
        return name.lower()

    try:
        return name.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise PermanentDnsError(domain, replies.BAD_DOMAIN, f"not a valid IDN: {exc}") from exc


def parse_address_literal(domain: str) -> str | None:
    """The IP address of an RFC 5321 §4.1.3 address literal, or None for a name.

    ``[192.0.2.1]`` and ``[IPv6:2001:db8::1]`` name a host directly and are
    never looked up in the DNS. Raises :class:`PermanentDnsError` for a
    bracketed value that is not an address.
    """
    if not (domain.startswith("[") and domain.endswith("]")):
        return None

    inner = domain[1:-1]
    if inner[:5].lower() == "ipv6:":
        inner = inner[5:]
    try:
        return str(ipaddress.ip_address(inner))
    except ValueError:
        raise PermanentDnsError(
            domain, replies.BAD_DOMAIN, "address literal is not an IP address"
        ) from None


def order_exchangers(records: Sequence[MxRecord], rng: random.Random) -> list[str]:
    """Exchangers by ascending preference, shuffled by ``rng`` within each preference.

    Records are sorted by name inside a preference before the shuffle, so the
    result depends on the seed alone, not on the order the server sent. A name
    listed twice keeps its most preferred place.
    """
    by_preference: dict[int, list[str]] = {}
    for record in records:
        by_preference.setdefault(record.preference, []).append(record.exchange)

    ordered: list[str] = []
    seen: set[str] = set()
    for preference in sorted(by_preference):
        group = sorted(set(by_preference[preference]))
        rng.shuffle(group)
        for name in group:
            if name not in seen:
                seen.add(name)
                ordered.append(name)
    return ordered


def plan_exchangers(
    domain: str,
    answer: Lookup[MxRecord],
    rng: random.Random,
    *,
    local_names: Collection[str] = (),
) -> list[str]:
    """Turn the MX lookup of ``domain`` into the exchangers to try, best first.

    ``domain`` and ``local_names`` are ASCII, lower-case, without trailing
    dots (see :func:`normalize_domain`). Raises :class:`PermanentDnsError`
    for NXDOMAIN (550 5.1.2), a null MX (556 5.1.10, RFC 7505 §3) and a mail
    loop (554 5.4.6, RFC 5321 §5.1), :class:`TransientDnsError` for SERVFAIL
    or a timeout (451 4.4.3).
    """
    status = answer.status
    if status is LookupStatus.NXDOMAIN:
        raise PermanentDnsError(domain, replies.DOMAIN_NOT_FOUND, "domain does not exist")
    if status.is_transient:
        detail = f"MX lookup failed: {status.value}"
        if answer.detail:
            detail = f"{detail}: {answer.detail}"
        raise TransientDnsError(domain, replies.DNS_TEMP_FAILURE, detail)

    if status is LookupStatus.NODATA or not answer.records:
        # RFC 5321 §5.1: no MX records, the domain is its own implicit MX.
        if domain in local_names:
            raise PermanentDnsError(domain, replies.MAIL_LOOP, "implicit MX is this host")
        return [domain]

    # RFC 7505 §3: "." as exchange means the domain accepts no mail. A "."
    # mixed with real exchangers breaks §3's rule; we skip it and use the rest.
    records = [record for record in answer.records if record.exchange]
    if not records:
        raise PermanentDnsError(domain, replies.NULL_MX, "domain publishes a null MX")

    # RFC 5321 §5.1: when we are one of the exchangers, drop ourselves and
    # every exchanger not more preferred than us.
    own = [record.preference for record in records if record.exchange in local_names]
    if own:
        ceiling = min(own)
        records = [record for record in records if record.preference < ceiling]
        if not records:
            raise PermanentDnsError(
                domain, replies.MAIL_LOOP, "best MX for the domain is this host"
            )

    return order_exchangers(records, rng)


def order_addresses(
    ipv4: Lookup[str], ipv6: Lookup[str], *, prefer_ipv6: bool = False
) -> tuple[str, ...]:
    """The addresses of one host, the preferred family first, each in answer order."""
    first, second = (ipv6, ipv4) if prefer_ipv6 else (ipv4, ipv6)
    return first.records + second.records


def plan_next_hops(
    domain: str,
    exchangers: Sequence[str],
    addresses: Sequence[tuple[Lookup[str], Lookup[str]]],
    *,
    prefer_ipv6: bool = False,
) -> list[NextHop]:
    """Pair each exchanger with its (A, AAAA) lookups; skip those without addresses.

    ``addresses[i]`` belongs to ``exchangers[i]``. Raises
    :class:`TransientDnsError` (451 4.4.3) when no exchanger has an address
    and at least one lookup failed transiently, :class:`PermanentDnsError`
    (550 5.4.4) when none has an address for good.
    """
    hops: list[NextHop] = []
    transient: list[str] = []
    for name, (ipv4, ipv6) in zip(exchangers, addresses, strict=True):
        found = order_addresses(ipv4, ipv6, prefer_ipv6=prefer_ipv6)
        if found:
            hops.append(NextHop(name, found))
        elif ipv4.status.is_transient or ipv6.status.is_transient:
            transient.append(name)

    if hops:
        return hops
    if transient:
        raise TransientDnsError(
            domain, replies.DNS_TEMP_FAILURE, f"address lookup failed for {', '.join(transient)}"
        )
    raise PermanentDnsError(
        domain, replies.NO_MAIL_EXCHANGER_ADDRESS, f"no A or AAAA for {', '.join(exchangers)}"
    )


# --- The I/O edge -----------------------------------------------------------------


async def resolve_next_hops(
    resolver: dns.asyncresolver.Resolver,
    domain: str,
    rng: random.Random,
    *,
    prefer_ipv6: bool = False,
    local_names: Collection[str] = (),
    max_hosts: int = DEFAULT_MAX_HOSTS,
) -> list[NextHop]:
    """Look up where mail for ``domain`` goes: exchangers in order, each with addresses.

    ``domain`` may be an IDN (converted to A-labels) or an address literal
    (returned as is, no lookup). ``local_names`` are this host's own names,
    to detect MX records pointing back at us. At most ``max_hosts``
    exchangers are looked up, in order.

    Raises :class:`~mailwright.dns.errors.DnsError` carrying the reply to
    give: :class:`PermanentDnsError` or :class:`TransientDnsError`, with the
    dnspython exception as ``__cause__`` where there was one.
    """
    literal = parse_address_literal(domain)
    if literal is not None:
        return [NextHop(domain, (literal,))]

    name = normalize_domain(domain)
    own = {normalize_domain(local) for local in local_names}

    mx = await _lookup(resolver, name, dns.rdatatype.MX, _mx_records)
    try:
        exchangers = plan_exchangers(name, mx, rng, local_names=own)[:max_hosts]
    except DnsError as exc:
        log.debug("dns.mx.failed domain=%s status=%s reply=%s", name, mx.status.value, exc.reply)
        raise exc from mx.error

    addresses = await asyncio.gather(*(_lookup_addresses(resolver, host) for host in exchangers))
    try:
        hops = plan_next_hops(name, exchangers, addresses, prefer_ipv6=prefer_ipv6)
    except DnsError as exc:
        log.debug("dns.mx.failed domain=%s stage=address reply=%s", name, exc.reply)
        raise exc from _first_error(addresses)

    log.debug("dns.mx.resolved domain=%s hops=%s", name, ",".join(hop.hostname for hop in hops))
    return hops


async def _lookup_addresses(
    resolver: dns.asyncresolver.Resolver, host: str
) -> tuple[Lookup[str], Lookup[str]]:
    ipv4, ipv6 = await asyncio.gather(
        _lookup(resolver, host, dns.rdatatype.A, _address_records),
        _lookup(resolver, host, dns.rdatatype.AAAA, _address_records),
    )
    return ipv4, ipv6


async def _lookup(
    resolver: dns.asyncresolver.Resolver,
    name: str,
    rdtype: dns.rdatatype.RdataType,
    convert: Callable[[dns.resolver.Answer], tuple[T, ...]],
) -> Lookup[T]:
    """Ask one question and turn the answer or the dnspython exception into a Lookup.

    Errors in the name itself (a label over 63 octets, an empty label) are
    raised at once as :class:`PermanentDnsError`: no later try can fix them.
    """
    try:
        answer = await resolver.resolve(name, rdtype, search=False)
    except dns.resolver.NXDOMAIN as exc:
        return Lookup(LookupStatus.NXDOMAIN, detail=str(exc), error=exc)
    except dns.resolver.NoAnswer as exc:
        return Lookup(LookupStatus.NODATA, detail=str(exc), error=exc)
    except dns.exception.Timeout as exc:
        return Lookup(LookupStatus.TIMEOUT, detail=str(exc), error=exc)
    except (dns.name.EmptyLabel, dns.name.LabelTooLong, dns.name.NameTooLong) as exc:
        raise PermanentDnsError(name, replies.BAD_DOMAIN, str(exc)) from exc
    except dns.exception.DNSException as exc:
        # NoNameservers (every server answered SERVFAIL or REFUSED or was
        # unreachable), YXDOMAIN and the rest: nothing we can settle now.
        return Lookup(LookupStatus.SERVFAIL, detail=str(exc), error=exc)

    return Lookup(LookupStatus.ANSWER, convert(answer))


def _mx_records(answer: dns.resolver.Answer) -> tuple[MxRecord, ...]:
    return tuple(
        MxRecord(
            int(rdata.preference),
            rdata.exchange.to_text(omit_final_dot=True).lower()
            if rdata.exchange != dns.name.root
            else "",
        )
        for rdata in answer
    )


def _address_records(answer: dns.resolver.Answer) -> tuple[str, ...]:
    return tuple(rdata.address for rdata in answer)


def _first_error(addresses: Sequence[tuple[Lookup[str], Lookup[str]]]) -> BaseException | None:
    for pair in addresses:
        for lookup in pair:
            if lookup.status.is_transient and lookup.error is not None:
                return lookup.error
    return None
