"""The three ARC header fields, parsed and checked (RFC 8617 §4.1).

An ARC set is three fields sharing one instance number ``i=``:

``ARC-Authentication-Results`` (AAR, §4.1.1)
    ``i=N;`` followed by an Authentication-Results payload (RFC 8601): what
    the sealer found when the message reached it.
``ARC-Message-Signature`` (AMS, §4.1.2)
    A DKIM signature in all but name: the tags of DKIM-Signature, except
    that ``i=`` is the instance instead of an identity and there is no
    ``v=``. The h= list must not name ARC-Seal.
``ARC-Seal`` (AS, §4.1.3)
    A tag list with ``i a b cv d s`` and an optional ``t``; no ``h=``
    (what a seal covers is fixed) and no body hash. ``cv`` is the chain
    status the sealer saw.

Each parser here returns its dataclass or a :class:`~..dkim.tags.Malformed`
that names the tag at fault; none raises. Reading only the instance
(:func:`read_instance`) is a separate, cheaper step, since the chain's
structure (§5.2 step 3) is judged on instances alone before anything else.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from mailwright.auth.arc.result import ChainStatus
from mailwright.auth.authres import AuthenticationResults, AuthResSyntaxError, parse_results
from mailwright.auth.dkim.algorithms import Algorithm
from mailwright.auth.dkim.canonical import Canonicalization, parse_canonicalization
from mailwright.auth.dkim.signature import base64_tag, is_dns_name, without_line_end
from mailwright.auth.dkim.tags import Malformed, TagList, parse_tag_list
from mailwright.auth.message import HeaderField

SEAL = "arc-seal"
MESSAGE_SIGNATURE = "arc-message-signature"
AUTHENTICATION_RESULTS = "arc-authentication-results"

#: The lower-case names of the ARC fields, in the order a set is hashed (§5.1.1).
ARC_FIELDS = (AUTHENTICATION_RESULTS, MESSAGE_SIGNATURE, SEAL)

#: The greatest instance number (RFC 8617 §4.2.1: i= runs from 1 to 50).
MAX_INSTANCE = 50

SEAL_REQUIRED = ("i", "a", "b", "cv", "d", "s")
AMS_REQUIRED = ("i", "a", "b", "bh", "d", "h", "s")

_INSTANCE = re.compile(r"[0-9]{1,5}\Z")
_DIGITS = re.compile(r"[0-9]{1,40}\Z")
_AAR_PREFIX = re.compile(rb"[ \t\r\n]*i[ \t\r\n]*=[ \t\r\n]*([0-9]{1,5})[ \t\r\n]*;")
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+\Z")


@dataclass(frozen=True, slots=True)
class Seal:
    """An ARC-Seal whose syntax is valid (RFC 8617 §4.1.3)."""

    field: HeaderField
    instance: int
    algorithm: Algorithm
    signature: bytes
    cv: ChainStatus
    domain: str
    selector: str
    timestamp: int | None = None
    tags: TagList = dataclasses.field(default_factory=TagList)

    @property
    def key_name(self) -> str:
        """Where the sealer's key record lives: ``s._domainkey.d``."""
        return f"{self.selector}._domainkey.{self.domain}"


@dataclass(frozen=True, slots=True)
class MessageSignature:
    """An ARC-Message-Signature whose syntax is valid (RFC 8617 §4.1.2)."""

    field: HeaderField
    instance: int
    algorithm: Algorithm
    signature: bytes
    body_hash: bytes
    domain: str
    selector: str
    headers: tuple[str, ...]
    header_canon: Canonicalization = Canonicalization.SIMPLE
    body_canon: Canonicalization = Canonicalization.SIMPLE
    body_length: int | None = None
    timestamp: int | None = None
    expiration: int | None = None
    tags: TagList = dataclasses.field(default_factory=TagList)

    @property
    def key_name(self) -> str:
        """Where the signer's key record lives: ``s._domainkey.d``."""
        return f"{self.selector}._domainkey.{self.domain}"


@dataclass(frozen=True, slots=True)
class ArcAuthenticationResults:
    """An ARC-Authentication-Results field: its instance and what it recorded.

    ``results`` is None when the payload is not valid RFC 8601 text; that
    makes no difference to the chain (§5.2 does not read the payload).
    """

    field: HeaderField
    instance: int
    payload: str
    results: AuthenticationResults | None = None

    @property
    def authserv_id(self) -> str:
        """The authserv-id of the payload, or '' when it does not parse."""
        return self.results.authserv_id if self.results is not None else ""


def read_instance(header: HeaderField) -> int | str:
    """The i= of an ARC field, 1 to :data:`MAX_INSTANCE`, or why it cannot be read."""
    name = header.lower_name
    if name == AUTHENTICATION_RESULTS:
        match = _AAR_PREFIX.match(header.value)
        if match is None:
            return "ARC-Authentication-Results does not start with i=N;"
        return _instance_number(match.group(1).decode("ascii"), header.name)

    tags = parse_tag_list(without_line_end(header.value))
    if isinstance(tags, Malformed):
        return f"{header.name}: {tags.reason}"
    value = tags.get("i")
    if value is None:
        return f"{header.name} has no i= tag"
    return _instance_number(value, header.name)


def _instance_number(text: str, where: str) -> int | str:
    if not _INSTANCE.match(text):
        return f"{where} i={text[:20]!r} is not an instance number"
    number = int(text)
    if not 1 <= number <= MAX_INSTANCE:
        return f"{where} i={number} is outside 1..{MAX_INSTANCE} (RFC 8617 §4.2.1)"
    return number


def parse_seal(header: HeaderField) -> Seal | Malformed:
    """Parse and check an ARC-Seal field; never raises."""
    tags = parse_tag_list(without_line_end(header.value))
    if isinstance(tags, Malformed):
        return tags
    missing = [name for name in SEAL_REQUIRED if name not in tags]
    if missing:
        return Malformed(f"ARC-Seal: required tag {missing[0]}= is missing", tags)
    if "h" in tags:
        return Malformed("ARC-Seal: h= is not allowed (RFC 8617 §4.1.3)", tags)

    common = _read_common(tags, "ARC-Seal")
    if isinstance(common, Malformed):
        return common
    try:
        cv = ChainStatus(tags.get("cv") or "")
    except ValueError:
        cv_text = (tags.get("cv") or "")[:20]
        return Malformed(f"ARC-Seal: cv={cv_text} is not none, pass or fail", tags)
    timestamp = _number(tags, "t")
    if isinstance(timestamp, str):
        return Malformed(f"ARC-Seal: {timestamp}", tags)
    instance, algorithm, signature, domain, selector = common
    return Seal(header, instance, algorithm, signature, cv, domain, selector, timestamp, tags)


def parse_message_signature(header: HeaderField) -> MessageSignature | Malformed:
    """Parse and check an ARC-Message-Signature field; never raises."""
    tags = parse_tag_list(without_line_end(header.value))
    if isinstance(tags, Malformed):
        return tags
    missing = [name for name in AMS_REQUIRED if name not in tags]
    if missing:
        return Malformed(f"ARC-Message-Signature: required tag {missing[0]}= is missing", tags)

    def bad(reason: str) -> Malformed:
        return Malformed(f"ARC-Message-Signature: {reason}", tags)

    common = _read_common(tags, "ARC-Message-Signature")
    if isinstance(common, Malformed):
        return common
    instance, algorithm, signature, domain, selector = common
    body_hash = base64_tag(tags, "bh")
    if isinstance(body_hash, str):
        return bad(body_hash)

    # XXX(RFC 6376 §3.5): a missing c= is read as relaxed/relaxed, not DKIM's
    # simple/simple: RFC 8617 seals are relaxed throughout, and dkimpy, OpenARC
    # and the ValiMail suite (ams_fields_c_na) read the AMS that way.
    canon = parse_canonicalization(tags.get("c", "relaxed/relaxed") or "")
    if canon is None:
        return bad(f"c={(tags.get('c') or '')[:40]} names no known canonicalisation")

    headers = _header_names(tags.get("h") or "")
    if isinstance(headers, str):
        return bad(headers)
    if SEAL in headers:
        return bad("h= names ARC-Seal, which it must not sign (RFC 8617 §4.1.2)")

    numbers: dict[str, int | None] = {}
    for name in ("l", "t", "x"):
        value = _number(tags, name)
        if isinstance(value, str):
            return bad(value)
        numbers[name] = value
    return MessageSignature(
        field=header,
        instance=instance,
        algorithm=algorithm,
        signature=signature,
        body_hash=body_hash,
        domain=domain,
        selector=selector,
        headers=headers,
        header_canon=canon[0],
        body_canon=canon[1],
        body_length=numbers["l"],
        timestamp=numbers["t"],
        expiration=numbers["x"],
        tags=tags,
    )


def _read_common(tags: TagList, what: str) -> tuple[int, Algorithm, bytes, str, str] | Malformed:
    """The tags ARC-Seal and ARC-Message-Signature share: i=, a=, b=, d= and s=."""
    instance = _instance_number(tags.get("i") or "", what)
    if isinstance(instance, str):
        return Malformed(instance, tags)
    algorithm = Algorithm.from_text(tags.get("a") or "")
    if algorithm is None:
        return Malformed(f"{what}: a={(tags.get('a') or '')[:40]} is not a known algorithm", tags)
    signature = base64_tag(tags, "b")
    if isinstance(signature, str):
        return Malformed(f"{what}: {signature}", tags)
    domain, selector = tags.get("d") or "", tags.get("s") or ""
    if not is_dns_name(domain):
        return Malformed(f"{what}: d={domain[:80]} is not a domain name", tags)
    if not is_dns_name(selector):
        return Malformed(f"{what}: s={selector[:80]} is not a selector (a DNS name)", tags)
    return instance, algorithm, signature, domain, selector


def parse_aar(header: HeaderField) -> ArcAuthenticationResults | Malformed:
    """Parse an ARC-Authentication-Results field; never raises.

    Only the ``i=N;`` prefix must be right; the payload is kept as text and
    parsed where it can be.
    """
    instance = read_instance(header)
    if isinstance(instance, str):
        return Malformed(instance)
    value = header.value
    match = _AAR_PREFIX.match(value)
    assert match is not None  # read_instance matched the same pattern
    payload = without_line_end(value[match.end() :]).decode("utf-8", "replace")
    try:
        results: AuthenticationResults | None = parse_results(payload)
    except AuthResSyntaxError:
        results = None
    return ArcAuthenticationResults(header, instance, payload.strip(), results)


def _number(tags: TagList, name: str) -> int | str | None:
    """The decimal value of an optional tag, None when absent, or the problem."""
    text = tags.get(name)
    if text is None:
        return None
    if not _DIGITS.match(text):
        return f"{name}={text[:40]} is not a decimal number"
    return int(text)


def _header_names(value: str) -> tuple[str, ...] | str:
    """The h= names in lower case, or the problem.

    An empty h=, or an empty name between two colons, names no field.
    """
    # XXX(RFC 6376 §3.5): hdr-name cannot be empty; we skip empty names as
    # dkimpy does and the ValiMail suite expects (ams_fields_h_empty, _h_mis_hdr).
    names = tuple(
        name for name in (part.strip(" \t\r\n").lower() for part in value.split(":")) if name
    )
    for name in names:
        if not _FIELD_NAME.match(name):
            return f"h= holds {name[:40]!r}, which is not a field name"
    return names
