"""What a DKIM (or ARC) signature covers, and its hashes (RFC 6376 §3.7, §5.4.2).

Two hashes make a signature. The body hash (bh=) is taken over the
canonical body, cut to l= octets when the signature says so. The header hash
is taken over the signed header fields, canonicalised and in the order h=
lists them, followed by the signature field itself with its b= value
deleted and without its final CRLF; that digest is what the key signs.

Choosing the fields (RFC 6376 §5.4.2): for each name in h=, the last
instance of that name not yet used, counting from the bottom of the header;
a name with no instance left stands for nothing (which is how over-signing
works: listing From once more than it occurs means an added From breaks the
signature). The signature field being verified is never one of the
candidates, since it did not exist when the signer chose.

ARC-Message-Signature uses the same algorithm (RFC 8617 §4.1.2), so every
helper here takes the signature field and the canonicalisation as
parameters and knows nothing of DKIM-Signature in particular.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from mailwright.auth.dkim.canonical import (
    BodyCanonicalizer,
    Canonicalization,
    canonicalize_body,
    canonicalize_header,
)
from mailwright.auth.dkim.tags import Tag, TagList, blank_value
from mailwright.auth.message import HeaderField


def select_headers(
    headers: Sequence[HeaderField],
    names: Sequence[str],
    *,
    skip: HeaderField | None = None,
) -> list[HeaderField]:
    """The fields that ``names`` (h=, any case) pick from ``headers``, in h= order.

    ``skip`` (compared by identity) is left out of the candidates: the
    signature field being verified. Runs in time linear in both lengths.
    """
    wanted = [name.lower() for name in names]
    # One stack per name h= lists; fields by other names are never collected.
    stacks: dict[str, list[HeaderField]] = {name: [] for name in wanted}
    for field in headers:
        stack = stacks.get(field.lower_name)
        if stack is not None and field is not skip:
            stack.append(field)

    chosen: list[HeaderField] = []
    for name in wanted:
        stack = stacks[name]
        if stack:
            chosen.append(stack.pop())
    return chosen


def blank_signature(raw: bytes, tag: str = "b", parsed: TagList | None = None) -> bytes | None:
    """A signature field with its ``tag`` value deleted and no final line ending.

    ``raw`` is the whole field (name, colon, value, line ending). Returns
    None when the value is not a tag list holding ``tag``.

    ``parsed`` is the tag list already read from this field's value, line
    ending removed, as bytes (what :func:`~.signature.parse_signature` keeps
    in ``Signature.tags``, and ARC's field parsers likewise): its offsets
    then locate the value, and the field is not parsed a second time. If the
    offsets do not fall on an ``=`` and a ``;`` (or the end) of ``raw``, the
    tag list was not this field's and it is parsed after all.
    """
    name, colon, value = raw.partition(b":")
    if not colon:
        return None
    if value.endswith(b"\r\n"):
        value = value[:-2]
    elif value.endswith(b"\n"):
        value = value[:-1]

    found = None if parsed is None else parsed.find(tag)
    if found is not None and _delimits(value, found):
        return name + b":" + value[: found.start] + value[found.end :]
    blanked = blank_value(value, tag)
    return None if blanked is None else name + b":" + blanked


def _delimits(value: bytes, tag: Tag) -> bool:
    """True when ``tag``'s offsets fit ``value``: just after an ``=``, before ``;`` or the end."""
    return (
        0 < tag.start <= tag.end <= len(value)
        and value[tag.start - 1 : tag.start] == b"="
        and value[tag.end : tag.end + 1] in (b";", b"")
    )


def header_hash_input(
    fields: Sequence[HeaderField],
    signature_field: bytes,
    method: Canonicalization,
) -> bytes:
    """The octets the header hash covers.

    ``fields`` are the selected fields (see :func:`select_headers`);
    ``signature_field`` is the signature field with its b= value already
    deleted (:func:`blank_signature`), hashed last and without CRLF.
    """
    parts = [canonicalize_header(field.raw, method) for field in fields]
    parts.append(canonicalize_header(signature_field, method)[:-2])
    return b"".join(parts)


def header_digest(
    fields: Sequence[HeaderField],
    signature_field: bytes,
    method: Canonicalization,
    hash_name: str = "sha256",
) -> bytes:
    """The digest of :func:`header_hash_input`, which the signing key signs."""
    return hashlib.new(hash_name, header_hash_input(fields, signature_field, method)).digest()


def body_digest(
    body: bytes,
    method: Canonicalization,
    hash_name: str = "sha256",
    limit: int | None = None,
) -> tuple[bytes, int]:
    """The body hash, and the length of the whole canonical body (to check l= against)."""
    canonical = canonicalize_body(body, method)
    covered = memoryview(canonical)[:limit] if limit is not None else memoryview(canonical)
    return hashlib.new(hash_name, covered).digest(), len(canonical)


class BodyHasher:
    """The body hash computed as the body streams in, in pieces of any size.

    ``limit`` hashes only the first so many canonical octets (l=); :attr:`length`
    counts them all, so a verifier can tell when l= is longer than the body.
    """

    def __init__(
        self,
        method: Canonicalization,
        hash_name: str = "sha256",
        limit: int | None = None,
    ) -> None:
        self._canonicalizer = BodyCanonicalizer(method)
        self._hash = hashlib.new(hash_name)
        self.limit = limit
        self.length = 0

    def update(self, data: bytes) -> None:
        """Canonicalise and hash the next piece of the body."""
        self._take(self._canonicalizer.feed(data))

    def digest(self) -> bytes:
        """Finish the body and return its hash; further calls return the same digest."""
        self._take(self._canonicalizer.finish())
        return self._hash.digest()

    def _take(self, canonical: bytes) -> None:
        if self.limit is None:
            self._hash.update(canonical)
        elif self.length < self.limit:
            self._hash.update(canonical[: self.limit - self.length])
        self.length += len(canonical)
