"""A message as DKIM, ARC and DMARC read it: raw header fields and the body.

Authentication works on the octets that travelled, not on a parsed and
re-serialised message: DKIM's "simple" canonicalisation hashes header
fields exactly as received, folding included. So the header section is only
split into fields here (RFC 5322 §2.2: a field is a line that does not begin
with white space, plus the continuation lines that do), each kept with its
original bytes and line ending; nothing is decoded or unfolded.

A message without an empty line is all header. Lines are split at CRLF, and
a bare LF is accepted as a line end too (messages read from files often have
them); the raw bytes of each field keep whatever ending it had.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: One field of a header section: a line, then every continuation line (one that
#: begins with white space). No line of the section is empty, so no match is.
_FIELD = re.compile(rb"[^\n]+(?:\n|\Z)(?:[ \t][^\n]*(?:\n|\Z))*")


@dataclass(frozen=True, slots=True)
class HeaderField:
    """One header field: its name as written and its raw octets, line ending included.

    ``lower_name`` is the name in lower case (field names are
    case-insensitive), computed once: DKIM, ARC and DMARC compare it dozens
    of times per message.
    """

    name: str
    raw: bytes
    lower_name: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lower_name", self.name.lower())

    @property
    def value(self) -> bytes:
        """The octets after the colon, line ending and folding kept."""
        return self.raw.split(b":", 1)[1] if b":" in self.raw else b""

    @property
    def unfolded(self) -> str:
        """The value unfolded (RFC 5322 §2.2.3) and stripped, decoded as UTF-8."""
        value = self.value.replace(b"\r\n", b"").replace(b"\n", b"")
        return value.strip(b" \t").decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Message:
    """The header fields in order, and the body octets after the empty line."""

    headers: tuple[HeaderField, ...]
    body: bytes

    def fields(self, name: str) -> list[HeaderField]:
        """Every field called ``name`` (any case), in order from the top."""
        wanted = name.lower()
        return [header for header in self.headers if header.lower_name == wanted]


def parse_message(content: bytes) -> Message:
    """Split ``content`` into header fields and body; never raises.

    A line without a colon that is not a continuation is kept as a field
    with an empty name, so that nothing of the header section is lost (and
    DKIM can still refuse to verify what it cannot canonicalise).
    """
    header, body = _split(content)
    return Message(tuple(map(_field, _FIELD.findall(header))), body)


def _split(content: bytes) -> tuple[bytes, bytes]:
    """The header section (with its last line end) and the body after the empty line."""
    for empty in (b"\r\n", b"\n"):
        if content.startswith(empty):
            return b"", content[len(empty) :]
    crlf = content.find(b"\n\r\n")
    lf = content.find(b"\n\n", 0, crlf + 1 if crlf >= 0 else len(content))
    if crlf < 0 and lf < 0:
        return content, b""
    if lf < 0 or 0 <= crlf < lf:
        return content[: crlf + 1], content[crlf + 3 :]
    return content[: lf + 1], content[lf + 2 :]


def _field(raw: bytes) -> HeaderField:
    name, colon, _ = raw.partition(b":")
    if not colon:
        return HeaderField("", raw)
    return HeaderField(name.rstrip(b" \t").decode("ascii", "replace"), raw)
