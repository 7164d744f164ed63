"""Writing SPF records: from a domain owner's list of senders to TXT text (RFC 7208 §3, §5).

:func:`build_record` takes the parts of a policy as a :class:`RecordOptions`
(networks, hosts, exchangers, included domains, the closing ``all``) and
writes the record in the order that is cheapest to evaluate: ``ip4`` and
``ip6`` first (no DNS), then ``a``, ``mx``, ``include`` and ``exists``, then
``all`` and the modifiers. Each part is checked on its own, so an error
names the option and the value at fault, and the whole text is then parsed
back with :func:`~mailwright.auth.spf.record.parse_record`, so what is
built is what a receiver reads.

What is legal but likely a mistake becomes a warning, not an error: more
DNS-querying terms than the limit (counted without DNS here; see
:mod:`.lookups` for the count through includes), ``+all``, ``ptr``, a
record longer than one 255-octet TXT string (it is published as several,
which receivers join without spaces, §3.3) or than the 450 octets §3.4
suggests so that the answer fits in a UDP datagram.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mailwright.auth.spf.identity import checkable_domain
from mailwright.auth.spf.lookups import LookupCount, count_static
from mailwright.auth.spf.macros import MacroError, parse_domain_spec
from mailwright.auth.spf.record import Record, RecordError, parse_record

#: The longest character-string a TXT record holds (RFC 1035 §3.3.14).
MAX_STRING = 255
#: The record size §3.4 suggests staying under, so the answer fits in 512 octets.
MAX_RECORD = 450

#: Qualifier words and signs for the closing ``all``.
QUALIFIERS = {
    "pass": "+",
    "fail": "-",
    "softfail": "~",
    "neutral": "?",
    "+": "+",
    "-": "-",
    "~": "~",
    "?": "?",
}


class BuildError(ValueError):
    """An option of :func:`build_record` is not valid; the message names it and its value."""


@dataclass(frozen=True, slots=True)
class RecordOptions:
    """What an SPF record should say.

    ``ip4`` and ``ip6``: addresses or networks (``192.0.2.0/24``).
    ``a`` and ``mx``: domains whose addresses, or whose exchangers'
    addresses, may send; ``""`` stands for the domain the record is
    published at, and a domain may end in CIDR lengths (``mail.example.com/24``).
    ``include``: domains whose SPF records say who else may send.
    ``exists``: domain-specs, usually with macros (``%{i}._spf.example.com``).
    ``redirect``: a domain whose record decides when nothing here matches.
    ``exp``: a domain whose TXT record explains a ``fail`` (§6.2).
    ``all``: the qualifier of the closing ``all`` (``fail``, ``softfail``,
    ``neutral``, ``pass`` or ``-``, ``~``, ``?``, ``+``); None for no ``all``,
    which ``redirect`` needs, since ``all`` makes it unreachable (§6.1).
    """

    ip4: Sequence[str] = ()
    ip6: Sequence[str] = ()
    a: Sequence[str] = ()
    mx: Sequence[str] = ()
    include: Sequence[str] = ()
    exists: Sequence[str] = ()
    redirect: str | None = None
    exp: str | None = None
    all: str | None = "fail"


@dataclass(frozen=True, slots=True)
class BuiltRecord:
    """A record built by :func:`build_record`: its text, parsed form and what to watch.

    ``strings`` is the text cut into TXT character-strings of at most 255
    octets (one string for most records); ``lookups`` the count of its own
    DNS-querying terms, without DNS (includes count one each), which a
    caller may replace with a count through DNS
    (``dataclasses.replace(built, lookups=...)``); ``advice`` the warnings
    about the record itself (size, ``+all``).
    """

    text: str
    record: Record
    strings: tuple[str, ...]
    lookups: LookupCount
    advice: tuple[str, ...] = ()

    @property
    def warnings(self) -> tuple[str, ...]:
        """Everything worth a second look: the lookup count's warnings, then the advice."""
        return self.lookups.warnings() + self.advice

    def zone_text(self) -> str:
        """The TXT rdata as a zone file writes it: each string quoted, separated by spaces."""
        return " ".join(
            '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"' for part in self.strings
        )


def build_record(options: RecordOptions, *, domain: str | None = None) -> BuiltRecord:
    """Write the record ``options`` describe; ``domain`` is where it will be published.

    Raises :class:`BuildError` for an invalid part (an address that is not
    one, a network with host bits set, a domain that is not one, an unknown
    qualifier, ``redirect`` together with ``all``) or a record that says
    nothing at all. Duplicate values are written once.
    """
    # TODO: a network inside another listed network is kept as given; merging them
    # (and flattening includes into networks) would shorten long records.
    terms: list[str] = []
    terms += [_ip4(value) for value in _unique(options.ip4)]
    terms += [_ip6(value) for value in _unique(options.ip6)]
    terms += [_address_term("a", value) for value in _unique(options.a)]
    terms += [_address_term("mx", value) for value in _unique(options.mx)]
    terms += [f"include:{_domain('include', value)}" for value in _unique(options.include)]
    terms += [f"exists:{_domain_spec('exists', value)}" for value in _unique(options.exists)]

    if options.all is not None:
        sign = QUALIFIERS.get(options.all.strip().lower())
        if sign is None:
            raise BuildError(
                f"all: {options.all!r} is not fail, softfail, neutral or pass (or -, ~, ?, +)"
            )
        if options.redirect is not None:
            raise BuildError(
                "redirect: a record that ends in 'all' never uses redirect= (RFC 7208 §6.1); "
                "leave 'all' out"
            )
        terms.append(f"{sign}all")
    if options.redirect is not None:
        terms.append(f"redirect={_domain('redirect', options.redirect)}")
    if options.exp is not None:
        terms.append(f"exp={_domain_spec('exp', options.exp)}")
    if not terms:
        raise BuildError("nothing to write: give senders, an 'all' or a redirect")

    text = " ".join(["v=spf1", *terms])
    record = parse_record(text)
    if isinstance(record, RecordError):  # pragma: no cover - each part was checked above
        raise BuildError(f"the record does not parse: {record.reason}")

    lookups = count_static(record, domain=domain)
    strings = split_strings(text)
    return BuiltRecord(text, record, strings, lookups, _advice(options, text, strings))


def split_strings(text: str, size: int = MAX_STRING) -> tuple[str, ...]:
    """``text`` cut into strings of at most ``size`` octets, after a space where possible.

    Receivers join the strings of a TXT record without adding anything
    (RFC 7208 §3.3), so each cut keeps its space at the end of a string.
    """
    pieces: list[str] = []
    rest = text
    while len(rest.encode()) > size:
        cut = rest.rfind(" ", 0, size)
        cut = cut + 1 if cut > 0 else size
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)
    return tuple(pieces)


def _advice(options: RecordOptions, text: str, strings: tuple[str, ...]) -> tuple[str, ...]:
    found: list[str] = []
    size = len(text.encode())
    if len(strings) > 1:
        found.append(
            f"the record is {size} octets: it will be published as {len(strings)} strings of "
            f"at most {MAX_STRING} octets, which receivers join (RFC 7208 §3.3)"
        )
    if size > MAX_RECORD:
        found.append(
            f"the record is over {MAX_RECORD} octets: the DNS answer may not fit in a UDP "
            f"datagram (RFC 7208 §3.4)"
        )
    if options.all is not None and QUALIFIERS.get(options.all.strip().lower()) == "+":
        found.append("'+all' lets every host on the Internet send as this domain")
    if options.all is None and options.redirect is None:
        found.append("no 'all' and no redirect: mail from anyone else is neutral (RFC 7208 §4.7)")
    return tuple(found)


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(value.strip() for value in values))


def _ip4(value: str) -> str:
    """``ip4:`` a network without host bits; a single address loses its ``/32``."""
    network = _network("ip4", value)
    if network.version != 4:
        raise BuildError(f"ip4: {value!r} is an IPv6 network; give it as ip6")
    return f"ip4:{network.network_address}" + (
        f"/{network.prefixlen}" if network.prefixlen != 32 else ""
    )


def _ip6(value: str) -> str:
    """``ip6:`` a network without host bits, compressed; a single address loses ``/128``."""
    network = _network("ip6", value)
    if network.version != 6:
        raise BuildError(f"ip6: {value!r} is an IPv4 network; give it as ip4")
    return f"ip6:{network.network_address.compressed}" + (
        f"/{network.prefixlen}" if network.prefixlen != 128 else ""
    )


def _network(option: str, value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """``value`` as a network; an error suggests the network when host bits are set."""
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise BuildError(f"{option}: {value!r} is not an address or network") from exc
        raise BuildError(f"{option}: {value!r} has host bits set; the network is {loose}") from exc


def _address_term(name: str, value: str) -> str:
    """``a`` or ``mx``, with an optional domain and CIDR lengths (``host.example/24//64``)."""
    target, slash, lengths = value.partition("/")
    term = name
    if target:
        term += f":{_domain(name, target)}"
    if slash:
        term += f"/{lengths}"
    parsed = parse_record(f"v=spf1 {term}")
    if isinstance(parsed, RecordError):
        raise BuildError(f"{name}: {value!r}: {parsed.reason}")
    return term


def _domain(option: str, value: str) -> str:
    """A plain domain name (no macros), lower case, without a final dot."""
    name = checkable_domain(value)
    if name is None or "%" in name:
        raise BuildError(
            f"{option}: {value!r} is not a domain name (at least two labels of at most "
            f"63 characters, visible ASCII, not ending in a number)"
        )
    return name.lower()


def _domain_spec(option: str, value: str) -> str:
    """A domain-spec, macros allowed (``%{i}._spf.example.com``, RFC 7208 §7.1)."""
    spec = parse_domain_spec(value.strip())
    if isinstance(spec, MacroError):
        raise BuildError(f"{option}: {value!r} is not a domain-spec: {spec.reason}")
    return str(spec)
