"""The DKIM-Signature header field (RFC 6376 §3.5): parsed and checked tag by tag.

:func:`parse_signature` turns the field's value into a :class:`Signature`,
or a :class:`~.tags.Malformed` whose reason names the tag at fault and the
rule it breaks; it never raises. It checks everything RFC 6376 §6.1.1 asks
to check before a key is fetched and that does not depend on the time or
on local policy:

* the tag list parses (§3.2) and every required tag is there
  (v a b bh d h s);
* v=1; a= names a known algorithm; b= and bh= are base64; c= names known
  algorithms; q= offers ``dns/txt``;
* d= and s= are DNS names; h= is a list of field names including From
  (§5.4); i=, decoded from dkim-quoted-printable, is an address whose domain
  is d= or below it;
* l=, t= and x= are decimal numbers, and x= is after t=.

What is left to the verifier: whether the algorithm is acceptable (rsa-sha1
parses, RFC 8301 refuses it), expiry and future timestamps against its
clock, and everything about the key.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import overload

from mailwright.auth.dkim.algorithms import Algorithm
from mailwright.auth.dkim.canonical import Canonicalization, parse_canonicalization
from mailwright.auth.dkim.tags import Malformed, TagList, parse_tag_list

REQUIRED_TAGS = ("v", "a", "b", "bh", "d", "h", "s")

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})"
_DNS_NAME = re.compile(rf"(?=[^\s]{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\Z")
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+\Z")
#: An h= list whose every name is a valid field name, with folding white space
#: around each (what :func:`_header_names` would accept name by name).
_VALID_NAMES = re.compile(
    r"[ \t\r\n]*+[\x21-\x39\x3b-\x7e]++[ \t\r\n]*+"
    r"(?::[ \t\r\n]*+[\x21-\x39\x3b-\x7e]++[ \t\r\n]*+)*+\Z"
)
_NAME_RUN = re.compile(r"[\x21-\x39\x3b-\x7e]+")
_DIGITS = re.compile(r"[0-9]{1,40}\Z")
_QP_OCTET = re.compile(rb"=([0-9A-Fa-f]{2})")


@dataclass(frozen=True, slots=True)
class Signature:
    """A DKIM-Signature whose syntax is valid.

    ``headers`` are the h= names in lower case, in order; ``identity`` is
    the decoded i= or its default ``@`` + d=; ``copied_headers`` are the
    decoded z= fields (diagnostic only, never used to verify).
    """

    algorithm: Algorithm
    signature: bytes
    body_hash: bytes
    domain: str
    selector: str
    headers: tuple[str, ...]
    identity: str
    header_canon: Canonicalization = Canonicalization.SIMPLE
    body_canon: Canonicalization = Canonicalization.SIMPLE
    body_length: int | None = None
    timestamp: int | None = None
    expiration: int | None = None
    copied_headers: tuple[str, ...] = ()
    tags: TagList = field(default_factory=TagList)

    @property
    def key_name(self) -> str:
        """Where the key record lives: ``selector._domainkey.domain`` (RFC 6376 §3.6.2.1)."""
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def identity_domain(self) -> str:
        """The domain part of i= (the AUID)."""
        return self.identity.rpartition("@")[2]


def parse_signature(value: bytes | str) -> Signature | Malformed:
    """Parse and check the value of a DKIM-Signature field (after the colon); never raises.

    The field's final line ending may be included; it is not part of the
    tag list.
    """
    value = without_line_end(value)
    tags = parse_tag_list(value)
    if isinstance(tags, Malformed):
        return tags

    missing = [name for name in REQUIRED_TAGS if name not in tags]
    if missing:
        return Malformed(f"required tag {missing[0]}= is missing", tags)

    return _checked(tags)


def _checked(tags: TagList) -> Signature | Malformed:
    """The signature of a tag list that has every required tag, or why it is invalid."""

    # One dict of values and a bound get, rather than a closure and a method
    # chain per look-up: a signature check reads some thirty tag values.
    values = {tag.name: tag.value for tag in reversed(tags.tags)}
    lookup = values.get

    def bad(reason: str) -> Malformed:
        return Malformed(reason, tags)

    def get(name: str) -> str:
        return lookup(name) or ""

    if get("v") != "1":
        return bad(f"v={get('v')[:20]} is not 1 (RFC 6376 §3.5)")
    algorithm = Algorithm.from_text(get("a"))
    if algorithm is None:
        return bad(f"a={get('a')[:40]} is not a known algorithm")

    signature = base64_tag(tags, "b")
    body_hash = base64_tag(tags, "bh")
    if isinstance(signature, str):
        return bad(signature)
    if isinstance(body_hash, str):
        return bad(body_hash)

    canon = parse_canonicalization(get("c") or "simple/simple")
    if canon is None:
        return bad(f"c={get('c')[:40]} names no known canonicalisation")

    domain, selector = get("d"), get("s")
    if not is_dns_name(domain):
        return bad(f"d={domain[:80]} is not a domain name")
    if not is_dns_name(selector):
        return bad(f"s={selector[:80]} is not a selector (a DNS name)")

    headers = _header_names(get("h"))
    if isinstance(headers, str):
        return bad(headers)

    identity = _identity(tags, domain)
    if identity.startswith("!"):
        return bad(identity[1:])

    numbers: dict[str, int | None] = {}
    for name in ("l", "t", "x"):
        text = lookup(name)
        if text is not None and not _DIGITS.match(text):
            return bad(f"{name}={text[:40]} is not a decimal number")
        numbers[name] = None if text is None else int(text)
    timestamp, expiration = numbers["t"], numbers["x"]
    if timestamp is not None and expiration is not None and expiration <= timestamp:
        return bad(f"x={expiration} is not after t={timestamp} (RFC 6376 §3.5)")

    methods = [m.strip().lower() for m in get("q").split(":")] if "q" in values else ["dns/txt"]
    if "dns/txt" not in methods:
        return bad(f"q={get('q')[:40]} offers no known query method (dns/txt)")

    return Signature(
        algorithm=algorithm,
        signature=signature,
        body_hash=body_hash,
        domain=domain,
        selector=selector,
        headers=headers,
        identity=identity,
        header_canon=canon[0],
        body_canon=canon[1],
        body_length=numbers["l"],
        timestamp=timestamp,
        expiration=expiration,
        copied_headers=_copied_headers(get("z")),
        tags=tags,
    )


def is_dns_name(text: str) -> bool:
    """True when ``text`` can be d= or s=: dot-separated labels of letters, digits, - and _."""
    # TODO: d= in U-labels (RFC 8616 §4) is refused here as not a DNS name; it
    # should be converted to A-labels for the key lookup, so that EAI signers pass.
    return _DNS_NAME.match(text) is not None


@overload
def without_line_end(value: bytes) -> bytes: ...
@overload
def without_line_end(value: str) -> str: ...
def without_line_end(value: bytes | str) -> bytes | str:
    """``value`` without one final CRLF or LF (a raw field's line ending)."""
    if isinstance(value, bytes):
        return value[:-2] if value.endswith(b"\r\n") else value.removesuffix(b"\n")
    return value[:-2] if value.endswith("\r\n") else value.removesuffix("\n")


def base64_tag(tags: TagList, name: str) -> bytes | str:
    """The decoded value of a base64 tag, or the problem with it."""
    tag = tags.find(name)
    text = "" if tag is None else tag.compact
    if not text:
        return f"{name}= is empty"
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return f"{name}= is not valid base64"


def _header_names(value: str) -> tuple[str, ...] | str:
    """The h= names in lower case, or the problem with the list.

    Fast path: when the whole list matches :data:`_VALID_NAMES` (every name
    valid, only folding white space around them), the names are simply the
    runs of field-name characters, read in one ``findall``. Otherwise each
    name is checked in turn, to say which one is wrong.
    """
    if _VALID_NAMES.match(value):
        names = tuple(_NAME_RUN.findall(value.lower()))
        if "from" not in names:
            return "h= does not include From (RFC 6376 §5.4)"
        return names
    return _header_names_checked(value)


def _header_names_checked(value: str) -> tuple[str, ...] | str:
    """:func:`_header_names` name by name: the slow path, which names the bad one."""
    names = tuple(name.strip(" \t\r\n").lower() for name in value.split(":"))
    for name in names:
        if not _FIELD_NAME.match(name):
            shown = repr(name[:40]) if name else "an empty name"
            return f"h= holds {shown}, which is not a field name"
    if "from" not in names:
        return "h= does not include From (RFC 6376 §5.4)"
    return names


def _identity(tags: TagList, domain: str) -> str:
    """The AUID: i= decoded, or ``@`` + d=; a problem is returned prefixed with ``!``."""
    text = tags.get("i")
    if text is None:
        return "@" + domain

    identity = decode_quoted_printable(text)
    if identity is None:
        return "!i= is not valid dkim-quoted-printable"
    _, at, where = identity.rpartition("@")
    if not at:
        return f"!i={identity[:80]} has no @"
    where_lower, domain_lower = where.lower(), domain.lower()
    if where_lower != domain_lower and not where_lower.endswith("." + domain_lower):
        return f"!i= domain {where[:80]} is not d={domain} or below it (RFC 6376 §3.5)"
    return identity


def _copied_headers(value: str) -> tuple[str, ...]:
    """The z= fields, decoded where they are valid quoted-printable, else as written."""
    # TODO: z= is kept but never compared with the message's fields; doing so
    # would let a failure reason name the header fields that changed in transit.
    if not value:
        return ()
    fields = []
    for part in value.split("|"):
        decoded = decode_quoted_printable(part)
        fields.append(part.strip() if decoded is None else decoded)
    return tuple(fields)


def decode_quoted_printable(text: str) -> str | None:
    """Decode dkim-quoted-printable (RFC 6376 §2.11): white space dropped, ``=XX`` octets.

    Returns None when an ``=`` is not followed by two hex digits. The octets
    are read as UTF-8 (RFC 8616), invalid sequences replaced.
    """
    compact = "".join(text.split()).encode("utf-8")
    if compact.count(b"=") != len(_QP_OCTET.findall(compact)):
        return None
    raw = _QP_OCTET.sub(lambda match: bytes([int(match.group(1), 16)]), compact)
    return raw.decode("utf-8", "replace")
