"""SPF records (RFC 7208 §3, §4.5, §4.6, §5, §6): choosing one and parsing it.

Theory of operation. A domain's TXT records are filtered down to those that
begin with the version ``v=spf1`` followed by a space or nothing
(:func:`spf_records`, §4.5); the evaluator wants exactly one. That record is
then parsed whole by :func:`parse_record` before anything is evaluated,
because a syntax error anywhere in it makes the result permerror (§4.6).

A record is a version and terms separated by one or more spaces (§4.6.1).
A term whose leading name is followed directly by ``=`` is a modifier;
anything else is a directive: an optional qualifier and one of the eight
mechanisms of §5, with the arguments the ABNF allows each of them (a
domain-spec, CIDR prefix lengths, an address). ``redirect=`` and ``exp=``
may appear once each (§6); other modifiers are checked for macro syntax and
otherwise ignored (§6, Appendix A). Mechanism and modifier names are
case-insensitive.

Only visible ASCII and spaces may appear in a record (§3.1, §4.6.1): a
control character or an octet over 0x7E is a syntax error, which also keeps
non-SPF data and hostile bytes out of every later step. Parsing returns a
:class:`Record` or a :class:`RecordError` naming the offending term; it never
raises.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from mailwright.auth.spf.macros import (
    MacroError,
    MacroString,
    parse_domain_spec,
    parse_macro_string,
)
from mailwright.auth.spf.result import Result

#: The version section and what may follow it (§4.5).
VERSION = b"v=spf1"

QUALIFIERS = {"+": Result.PASS, "-": Result.FAIL, "~": Result.SOFTFAIL, "?": Result.NEUTRAL}

#: A name followed by "=" makes a term a modifier (§4.6.1, §A).
_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9_.-]*)=")
#: The name a mechanism starts with; its arguments follow ":" or "/".
_MECHANISM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
#: ``dual-cidr-length`` at the end of an "a" or "mx" term (§5.3, §5.4).
_DUAL_CIDR = re.compile(r"(?:/(0|[1-9][0-9]?))?(?://(0|[1-9][0-9]{0,2}))?\Z")
_IP6 = re.compile(r"[0-9A-Fa-f:.]+")
_LENGTH = re.compile(r"0|[1-9][0-9]{0,2}")
_QNUM = re.compile(r"0|[1-9][0-9]{0,2}")


@dataclass(frozen=True, slots=True)
class All:
    """``all``: always matches (§5.1)."""


@dataclass(frozen=True, slots=True)
class Include:
    """``include:<domain-spec>``: matches when that domain's check passes (§5.2)."""

    target: MacroString


@dataclass(frozen=True, slots=True)
class A:
    """``a[:<domain-spec>][/<ip4-len>][//<ip6-len>]``: the target's addresses (§5.3)."""

    target: MacroString | None = None
    ip4_prefix: int = 32
    ip6_prefix: int = 128


@dataclass(frozen=True, slots=True)
class Mx:
    """``mx[:<domain-spec>][/<ip4-len>][//<ip6-len>]``: its exchangers' addresses (§5.4)."""

    target: MacroString | None = None
    ip4_prefix: int = 32
    ip6_prefix: int = 128


@dataclass(frozen=True, slots=True)
class Ptr:
    """``ptr[:<domain-spec>]``: the client's validated names under the target (§5.5)."""

    target: MacroString | None = None


@dataclass(frozen=True, slots=True)
class Ip4:
    """``ip4:<network>[/<len>]`` (§5.6)."""

    network: ipaddress.IPv4Network


@dataclass(frozen=True, slots=True)
class Ip6:
    """``ip6:<network>[/<len>]`` (§5.6)."""

    network: ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Exists:
    """``exists:<domain-spec>``: matches when the name has an A record (§5.7)."""

    target: MacroString


Mechanism = All | Include | A | Mx | Ptr | Ip4 | Ip6 | Exists


@dataclass(frozen=True, slots=True)
class Directive:
    """A qualifier and a mechanism (§4.6.2); ``text`` is the term as written."""

    qualifier: Result
    mechanism: Mechanism
    text: str

    @property
    def queries_dns(self) -> bool:
        """True for the mechanisms counted by the lookup limit (§4.6.4)."""
        return not isinstance(self.mechanism, All | Ip4 | Ip6)


@dataclass(frozen=True, slots=True)
class Record:
    """A parsed SPF record: directives in order, and the two known modifiers."""

    directives: tuple[Directive, ...]
    redirect: MacroString | None = None
    explanation: MacroString | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class RecordError:
    """Why a record is not valid SPF; evaluating it gives permerror (§4.6)."""

    reason: str


def is_spf_record(text: bytes) -> bool:
    """True when ``text`` begins with ``v=spf1`` then a space or nothing (§4.5)."""
    return text[:6].lower() == VERSION and text[6:7] in (b"", b" ")


def spf_records(texts: Iterable[bytes]) -> list[bytes]:
    """The SPF records among a name's TXT records (§4.5); other TXT data is ignored."""
    return [text for text in texts if is_spf_record(text)]


def parse_record(text: bytes | str) -> Record | RecordError:
    """Parse one SPF record (RFC 7208 §4.6, §5, §6); never raises.

    Returns a :class:`RecordError` for text that is not a ``v=spf1`` record,
    for any octet other than visible ASCII and space, for an unknown or
    malformed mechanism, a malformed modifier, invalid macro syntax, a
    CIDR length out of range, or a repeated redirect= or exp=. Results are
    kept by text, as they are immutable: a domain's record is parsed once,
    not for every check.
    """
    return _parse(text)


@functools.lru_cache(maxsize=1024)
def _parse(text: bytes | str) -> Record | RecordError:
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    for offset, octet in enumerate(raw):
        if not 0x20 <= octet <= 0x7E:
            return RecordError(f"octet 0x{octet:02x} at offset {offset} is not visible ASCII")
    if not is_spf_record(raw):
        return RecordError("the record does not start with 'v=spf1'")

    source = raw.decode("ascii")
    directives: list[Directive] = []
    modifiers: dict[str, MacroString] = {}
    for term in source[6:].split(" "):
        if not term:
            continue
        modifier = _MODIFIER.match(term)
        if modifier is not None:
            name = modifier.group(1).lower()
            error = _add_modifier(modifiers, name, term[modifier.end() :], term)
        else:
            parsed = _parse_directive(term)
            error = parsed if isinstance(parsed, RecordError) else None
            if isinstance(parsed, Directive):
                directives.append(parsed)
        if error is not None:
            return error

    return Record(
        tuple(directives),
        redirect=modifiers.get("redirect"),
        explanation=modifiers.get("exp"),
        text=source,
    )


def _add_modifier(
    modifiers: dict[str, MacroString], name: str, value: str, term: str
) -> RecordError | None:
    """Check one modifier; keep redirect= and exp=, refuse them twice (§6)."""
    if name in ("redirect", "exp"):
        if name in modifiers:
            return RecordError(f"{name}= appears more than once")
        spec = parse_domain_spec(value)
        if isinstance(spec, MacroError):
            return RecordError(f"{_show(term)}: {spec.reason}")
        modifiers[name] = spec
        return None

    checked = parse_macro_string(value)
    if isinstance(checked, MacroError):
        return RecordError(f"{_show(term)}: {checked.reason}")
    return None


def _parse_directive(term: str) -> Directive | RecordError:
    """Parse ``[qualifier] mechanism`` (§4.6.2, §5)."""
    qualifier = QUALIFIERS.get(term[0])
    body = term[1:] if qualifier is not None else term
    name_match = _MECHANISM_NAME.match(body)
    if name_match is None:
        return RecordError(f"{_show(term)} is neither a mechanism nor a modifier")

    name = name_match.group().lower()
    rest = body[name_match.end() :]
    mechanism = _parse_mechanism(name, rest)
    if isinstance(mechanism, RecordError):
        return RecordError(f"{_show(term)}: {mechanism.reason}")
    return Directive(qualifier or Result.PASS, mechanism, term)


def _parse_mechanism(name: str, rest: str) -> Mechanism | RecordError:
    """The mechanism called ``name`` with the argument text ``rest``."""
    if name == "all":
        return All() if not rest else RecordError("'all' takes no argument")
    if name in ("include", "exists"):
        if not rest.startswith(":"):
            return RecordError(f"{name!r} needs ':' and a domain-spec")
        target = _domain_spec(rest[1:])
        if isinstance(target, RecordError):
            return target
        return Include(target) if name == "include" else Exists(target)
    if name in ("a", "mx"):
        return _parse_address_mechanism(name, rest)
    if name == "ptr":
        if not rest:
            return Ptr()
        if not rest.startswith(":"):
            return RecordError("'ptr' takes only ':' and a domain-spec")
        spec = _domain_spec(rest[1:])
        return spec if isinstance(spec, RecordError) else Ptr(spec)
    if name == "ip4":
        return _parse_ip4(rest)
    if name == "ip6":
        return _parse_ip6(rest)
    return RecordError(f"unknown mechanism {name!r}")


def _parse_address_mechanism(name: str, rest: str) -> A | Mx | RecordError:
    """``a`` or ``mx`` with an optional domain-spec and dual CIDR length (§5.3, §5.4)."""
    spec_text = ""
    if rest.startswith(":"):
        cidr = _DUAL_CIDR.search(rest, 1)
        assert cidr is not None  # every group is optional, so the end always matches
        spec_text, cidr_text = rest[1 : cidr.start()], rest[cidr.start() :]
        if not spec_text:
            return RecordError("empty domain-spec")
    else:
        cidr_text = rest

    lengths = _DUAL_CIDR.fullmatch(cidr_text)
    if lengths is None:
        return RecordError(f"{_show(cidr_text)} is not '/<ip4-length>', '//<ip6-length>' or both")
    ip4_text, ip6_text = lengths.groups()
    ip4_prefix = _prefix(ip4_text, 32) if ip4_text is not None else 32
    ip6_prefix = _prefix(ip6_text, 128) if ip6_text is not None else 128
    if isinstance(ip4_prefix, RecordError):
        return ip4_prefix
    if isinstance(ip6_prefix, RecordError):
        return ip6_prefix

    target = _domain_spec(spec_text) if spec_text else None
    if isinstance(target, RecordError):
        return target
    kind = A if name == "a" else Mx
    return kind(target, ip4_prefix, ip6_prefix)


def _parse_ip4(rest: str) -> Ip4 | RecordError:
    """``ip4:`` a dotted quad without leading zeros, and a length up to 32 (§5.6)."""
    if not rest.startswith(":"):
        return RecordError("'ip4' needs ':' and an IPv4 network")
    address_text, slash, prefix_text = rest[1:].partition("/")
    quads = address_text.split(".")
    if len(quads) != 4 or not all(_QNUM.fullmatch(q) and int(q) <= 255 for q in quads):
        return RecordError(f"{_show(address_text)} is not an IPv4 address")
    prefix = _prefix(prefix_text, 32) if slash else 32
    if isinstance(prefix, RecordError):
        return prefix
    return Ip4(ipaddress.IPv4Network(f"{address_text}/{prefix}", strict=False))


def _parse_ip6(rest: str) -> Ip6 | RecordError:
    """``ip6:`` an RFC 4291 §2.2 address and a length up to 128 (§5.6)."""
    if not rest.startswith(":"):
        return RecordError("'ip6' needs ':' and an IPv6 network")
    address_text, slash, prefix_text = rest[1:].partition("/")
    if not _IP6.fullmatch(address_text):
        return RecordError(f"{_show(address_text)} is not an IPv6 address")
    try:
        address = ipaddress.IPv6Address(address_text)
    except ValueError:
        return RecordError(f"{_show(address_text)} is not an IPv6 address")
    prefix = _prefix(prefix_text, 128) if slash else 128
    if isinstance(prefix, RecordError):
        return prefix
    return Ip6(ipaddress.IPv6Network((address, prefix), strict=False))


def _prefix(text: str, maximum: int) -> int | RecordError:
    """A CIDR length: digits without a leading zero, at most ``maximum`` (§5.6)."""
    if not _LENGTH.fullmatch(text):
        return RecordError(f"CIDR length {_show(text)} is not a number without leading zeros")
    if int(text) > maximum:
        return RecordError(f"CIDR length {text} is over {maximum}")
    return int(text)


def _domain_spec(text: str) -> MacroString | RecordError:
    spec = parse_domain_spec(text)
    return RecordError(spec.reason) if isinstance(spec, MacroError) else spec


def _show(text: str, limit: int = 60) -> str:
    """``text`` quoted for a reason, shortened when long."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."
