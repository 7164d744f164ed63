"""DKIM key records: the TXT record at ``selector._domainkey.domain`` (RFC 6376 §3.6.1).

A key record is a tag list::

    v=DKIM1; k=rsa; h=sha256; s=email; t=s; n=notes; p=MIGfMA0GCSqGSIb3...

Only p= is required. ``v=``, if present, must come first and be ``DKIM1``.
``k=`` defaults to ``rsa``; ``h=`` (allowed hashes) and ``s=`` (service
types, ``email`` or ``*``) restrict what the key may verify; ``t=`` holds
flags: ``y`` (the domain is testing DKIM) and ``s`` (the i= domain must be
d= itself, not a subdomain). An empty p= means the key has been revoked.

:func:`parse_key_record` checks the syntax and decodes p=; whether the key
suits a given signature (k= against a=, h=, s=, t=s, the key itself) is the
verifier's decision, so each refusal gets its own reason there.
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass, field

from mailwright.auth.dkim.tags import Malformed, TagList, parse_tag_list

#: Records longer than this are refused unread. An 8192-bit RSA key takes
#: about 1,400 octets of base64, so the limit only stops abuse.
MAX_KEY_RECORD_OCTETS = 8192


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A parsed key record; ``public_key`` is the decoded p= (empty when revoked)."""

    public_key: bytes
    key_type: str = "rsa"
    hash_algorithms: frozenset[str] | None = None
    services: frozenset[str] = frozenset({"*"})
    flags: frozenset[str] = frozenset()
    notes: str = ""
    tags: TagList = field(default_factory=TagList)

    @property
    def revoked(self) -> bool:
        """True for an empty p=: the domain has withdrawn this key (RFC 6376 §3.6.1)."""
        return not self.public_key

    @property
    def testing(self) -> bool:
        """True for t=y: the domain is testing DKIM."""
        return "y" in self.flags

    @property
    def strict(self) -> bool:
        """True for t=s: the i= domain must equal d=, subdomains are refused."""
        return "s" in self.flags

    @property
    def serves_email(self) -> bool:
        """True when s= allows email (``email`` or ``*``)."""
        return bool(self.services & {"*", "email"})

    def allows_hash(self, name: str) -> bool:
        """True when h= is absent or lists ``name``."""
        return self.hash_algorithms is None or name in self.hash_algorithms


@functools.lru_cache(maxsize=256, typed=True)
def parse_key_record(data: bytes | str) -> KeyRecord | Malformed:
    """Parse a key record (the TXT strings joined); never raises.

    A pure function of the text, memoised for the most recent records: a
    busy signer's key record is read for every message it sends, from the
    DNS cache, and parsing it (a long p= tag) costs more than the rest of
    the key check. The results are immutable, so sharing them is safe; a
    changed record is different text and is parsed afresh.
    """
    size = len(data)
    if size > MAX_KEY_RECORD_OCTETS:
        return Malformed(f"key record of {size} octets is longer than {MAX_KEY_RECORD_OCTETS}")

    tags = parse_tag_list(data)
    if isinstance(tags, Malformed):
        return tags

    version = tags.find("v")
    if version is not None:
        if tags.tags[0] is not version:
            return Malformed("v= is not the first tag", tags)
        if version.value != "DKIM1":
            return Malformed(f"v={version.value[:20]} is not DKIM1", tags)

    p = tags.find("p")
    if p is None:
        return Malformed("no p= tag", tags)
    try:
        public_key = base64.b64decode(p.compact, validate=True)
    except (binascii.Error, ValueError):
        return Malformed("p= is not valid base64", tags)

    hashes = tags.get("h")
    return KeyRecord(
        public_key=public_key,
        key_type=tags.get("k") or "rsa",
        hash_algorithms=None if hashes is None else _colon_list(hashes),
        services=_colon_list(tags.get("s") or "*"),
        flags=_colon_list(tags.get("t") or ""),
        notes=tags.get("n") or "",
        tags=tags,
    )


def _colon_list(value: str) -> frozenset[str]:
    """The items of a colon-separated tag value, white space removed."""
    return frozenset(item for item in ("".join(value.split())).split(":") if item)
