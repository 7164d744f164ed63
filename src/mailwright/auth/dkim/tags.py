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
from dataclasses import dataclass, field

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")

#: Characters allowed in a value besides VALCHAR and non-ASCII: white space.
_WSP = " \t"

#: Folding white space as it may surround names and values.
_FWS = " \t\r\n"

#: Characters a value may not hold outside folding: C0 controls but HTAB, and DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

#: A whole valid value with its folding: runs of allowed characters, HTAB, and
#: line breaks (LF or CRLF) followed by WSP. The alternatives start with
#: different characters, so the possessive quantifiers never need to backtrack.
_FOLDED_VALUE = re.compile(r"(?:[^\x00-\x1f\x7f]++|\t|\r?\n[ \t])*+\Z")

#: One valid tag-spec, read in a single match: folding white space, the name
#: (group 1), folding white space, ``=``, and the value with its surrounding
#: white space (group 2), up to but not including the next ``;``. The folding
#: rules are those :func:`_check_value` applies (a line break must be followed
#: by WSP), so whatever this matches :func:`_read_spec` accepts, with the same
#: name, value and offsets.
_VALID_SPEC = re.compile(
    r"(?:[ \t]|\r?\n[ \t])*+"
    r"([A-Za-z][A-Za-z0-9_]*+)"
    r"(?:[ \t]|\r?\n[ \t])*+"
    r"=((?:[^\x00-\x1f\x7f;]++|\t|\r?\n[ \t])*+)"
)


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
    _by_name: dict[str, Tag] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Name to tag, for the dozens of look-ups a signature check makes; the
        # first of a name wins, as a scan in order would find it.
        by_name: dict[str, Tag] = {}
        for tag in self.tags:
            by_name.setdefault(tag.name, tag)
        object.__setattr__(self, "_by_name", by_name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._by_name

    def __iter__(self) -> Iterator[Tag]:
        return iter(self.tags)

    def __len__(self) -> int:
        return len(self.tags)

    def find(self, name: str) -> Tag | None:
        """The tag called ``name`` (case-sensitive), or None."""
        return self._by_name.get(name)

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

    Each tag-spec is first tried against :data:`_VALID_SPEC`, which reads a
    valid one in one match; a spec it does not match (empty, malformed, or
    just unusual) goes to :func:`_read_spec`, which takes it apart step by
    step and names the problem.
    """
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    decode = isinstance(data, bytes)

    tags: list[Tag] = []
    seen: set[str] = set()
    position = 0
    number = 0
    length = len(text)
    while True:
        number += 1
        match = _VALID_SPEC.match(text, position)
        stop = -1 if match is None else match.end()
        if stop == length or (stop >= 0 and text[stop] == ";"):
            assert match is not None
            # _matched_tag inlined: this branch runs for nearly every tag.
            name, value = match.group(1, 2)
            value = value.strip(_FWS)
            if decode and not value.isascii():
                value = value.encode("latin-1").decode("utf-8", "replace")
            tag = Tag(name, value, match.start(2), stop)
            last = stop == length
        else:
            stop = text.find(";", position)
            last = stop < 0
            end = length if last else stop
            spec = text[position:end]

            if not spec.strip(_FWS):
                if last and tags:
                    break
                where = "the list is empty" if not tags else f"tag-spec {number} is empty"
                return Malformed(where, TagList(tuple(tags)))

            problem, read = _read_spec(text, position, end, decode)
            if read is None:
                return Malformed(f"tag-spec {number}: {problem}", TagList(tuple(tags)))
            tag = read

        name = tag.name
        if name in seen:
            return Malformed(f"tag {name!r} appears twice", TagList(tuple(tags)))
        seen.add(name)
        tags.append(tag)

        if last:
            break
        position = stop + 1
    return TagList(tuple(tags))


def _matched_tag(match: re.Match[str], decode: bool) -> Tag:
    """The tag a :data:`_VALID_SPEC` match read."""
    name, value = match.group(1, 2)
    value = value.strip(_FWS)
    if decode and not value.isascii():
        value = value.encode("latin-1").decode("utf-8", "replace")
    start, end = match.span(2)
    return Tag(name, value, start, end)


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
    """'' when ``raw`` is a tag value with optional folding around it, else the problem.

    Values are checked by regular expressions, not character by character in
    Python (b= and p= run to hundreds of characters): a value without control
    characters is valid at once; one with line breaks is matched against
    :data:`_FOLDED_VALUE`. Only an invalid value is walked, by
    :func:`_value_problem`, to name what is wrong with it.
    """
    # XXX(RFC 6376 §3.2): VALCHAR stops at 0x7E; we also take octets above 0x7F,
    # which RFC 8616 lets into i= and z= and which real signers put elsewhere too.
    if _CONTROL.search(raw) is None or _FOLDED_VALUE.match(raw) is not None:
        return ""
    return _value_problem(raw)


def _value_problem(raw: str) -> str:
    """What makes ``raw`` an invalid value: the first bad line break or control character."""
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
