"""Tag lists (RFC 6376 §3.2): the ``name=value; name=value`` syntax of DKIM and ARC.

DKIM-Signature fields, key records in DNS, ARC-Seal and ARC-Message-Signature
fields all share this grammar::

    tag-list  =  tag-spec *( ";" tag-spec ) [ ";" ]
    tag-spec  =  [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS]
    tag-name  =  ALPHA *ALNUMPUNC
    tag-value =  [ tval *( 1*(WSP / FWS) tval ) ]
    tval      =  1*VALCHAR              ; %x21-3A / %x3C-7E

Names are case-sensitive; a name given twice makes the whole list invalid; a
final ``;`` is allowed but an empty tag-spec between two is not. We accept
octets above 0x7F in values too, since RFC 8616 lets UTF-8 into i= and into
copied header fields, and a folding line break may be a bare LF (messages read
from files) as well as CRLF.

:func:`parse_tag_list` never raises: it returns a :class:`TagList` or a
:class:`Malformed` naming the first problem and keeping the tags read before
it (so a verifier can still report the d= and s= of a broken signature). Each
tag remembers where its value sits in the input, which is how the b= value is
blanked for hashing (:func:`blank_value`, RFC 6376 §3.7).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")

#: Characters allowed in a value besides VALCHAR and non-ASCII: white space.
_WSP = " \t"

#: Folding white space as it may surround names and values.
_FWS = " \t\r\n"


@dataclass(frozen=True, slots=True)
class Tag:
    """One ``name=value`` of a tag list.

    ``value`` has the surrounding white space removed but keeps any folding
    inside (b=, bh=, h= and z= may be folded). ``start`` and ``end`` are the
    offsets of the whole value in the input, surrounding white space
    included: everything between the ``=`` and the next ``;`` or the end.
    """

    name: str
    value: str
    start: int
    end: int

    @property
    def compact(self) -> str:
        """The value with every white space character removed (for base64 values)."""
        return "".join(self.value.split())


@dataclass(frozen=True, slots=True)
class TagList:
    """The tags of a list, in order of appearance; names are unique."""

    tags: tuple[Tag, ...] = ()

    def __contains__(self, name: object) -> bool:
        return any(tag.name == name for tag in self.tags)

    def __iter__(self) -> Iterator[Tag]:
        return iter(self.tags)

    def __len__(self) -> int:
        return len(self.tags)

    def find(self, name: str) -> Tag | None:
        """The tag called ``name`` (case-sensitive), or None."""
        for tag in self.tags:
            if tag.name == name:
                return tag
        return None

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of ``name``, or ``default`` when the tag is absent."""
        tag = self.find(name)
        return default if tag is None else tag.value

    def as_dict(self) -> dict[str, str]:
        """Name to value, in order."""
        return {tag.name: tag.value for tag in self.tags}


@dataclass(frozen=True, slots=True)
class Malformed:
    """Text that does not parse: why, and the tags read before the problem."""

    reason: str
    partial: TagList = TagList()


def parse_tag_list(data: str | bytes) -> TagList | Malformed:
    """Parse a tag list; never raises.

    ``bytes`` are read octet by octet (offsets are octet offsets, values are
    decoded as UTF-8 with replacement); ``str`` is read as is.
    """
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    decode = isinstance(data, bytes)

    tags: list[Tag] = []
    seen: set[str] = set()
    position = 0
    number = 0
    while True:
        number += 1
        stop = text.find(";", position)
        last = stop < 0
        end = len(text) if last else stop
        spec = text[position:end]

        if not spec.strip(_FWS):
            if last and tags:
                break
            where = "the list is empty" if not tags else f"tag-spec {number} is empty"
            return Malformed(where, TagList(tuple(tags)))

        problem, tag = _read_spec(text, position, end, decode)
        if tag is None:
            return Malformed(f"tag-spec {number}: {problem}", TagList(tuple(tags)))
        if tag.name in seen:
            return Malformed(f"tag {tag.name!r} appears twice", TagList(tuple(tags)))
        seen.add(tag.name)
        tags.append(tag)

        if last:
            break
        position = stop + 1
    return TagList(tuple(tags))


def _read_spec(text: str, start: int, end: int, decode: bool) -> tuple[str, Tag | None]:
    """One tag-spec between ``start`` and ``end``: ('', tag) or (problem, None)."""
    equals = text.find("=", start, end)
    if equals < 0:
        return f"no '=' in {_show(text[start:end])}", None

    around = text[start:equals]
    name = around.strip(_FWS)
    if not _NAME.match(name):
        return f"{_show(name)} is not a tag name", None
    if _check_value(around.replace(name, "x", 1)):
        return f"bad folding around the name {name!r}", None

    raw = text[equals + 1 : end]
    problem = _check_value(raw)
    if problem:
        return f"value of {name!r} {problem}", None

    value = raw.strip(_FWS)
    if decode:
        value = value.encode("latin-1").decode("utf-8", "replace")
    return "", Tag(name, value, equals + 1, end)


def _check_value(raw: str) -> str:
    """'' when ``raw`` is a tag value with optional folding around it, else the problem."""
    # XXX(RFC 6376 §3.2): VALCHAR stops at 0x7E; we also take octets above 0x7F,
    # which RFC 8616 lets into i= and z= and which real signers put elsewhere too.
    for index, char in enumerate(raw):
        code = ord(char)
        if char in _WSP or (code > 0x20 and code != 0x7F):
            continue
        if char == "\n" and raw[index + 1 : index + 2] in (" ", "\t"):
            continue
        if char == "\r" and raw[index + 1 : index + 2] == "\n":
            continue
        if char in "\r\n":
            return "has a line break not followed by white space"
        return f"holds the control character 0x{code:02x}"
    return ""


def _show(text: str) -> str:
    """``text`` quoted and cut for an error message."""
    return repr(text[:40] + ("..." if len(text) > 40 else ""))


def format_tag_list(tags: Iterable[tuple[str, str]], separator: str = "; ") -> str:
    """Write ``(name, value)`` pairs as a tag list, the inverse of :func:`parse_tag_list`.

    Raises :class:`ValueError` for a name that is not a tag name or a value
    holding ``;`` or a control character: these are programming errors, the
    values come from our own code.
    """
    parts = []
    for name, value in tags:
        if not _NAME.match(name):
            raise ValueError(f"{name!r} is not a tag name")
        if ";" in value or _check_value(value):
            raise ValueError(f"{value[:40]!r} cannot be the value of tag {name!r}")
        parts.append(f"{name}={value}")
    return separator.join(parts)


def blank_value(data: bytes, name: str) -> bytes | None:
    """``data`` (a tag list) with the value of tag ``name`` deleted, white space and all.

    This is how the b= value leaves a signature field before it is hashed
    (RFC 6376 §3.7: "with the value of the b= tag (including all surrounding
    whitespace) deleted"). Returns None when ``data`` is not a tag list or
    has no such tag.
    """
    parsed = parse_tag_list(data)
    if isinstance(parsed, Malformed):
        return None
    tag = parsed.find(name)
    if tag is None:
        return None
    return data[: tag.start] + data[tag.end :]
