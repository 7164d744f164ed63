"""Canonicalisation of header fields and bodies (RFC 6376 §3.4), for DKIM and ARC.

A signature survives transport only if signer and verifier hash the same
octets, so both first rewrite the message into a canonical form. "simple"
tolerates almost nothing: header fields are hashed as they are, and the body
loses only its empty lines at the end. "relaxed" forgives what mail systems
commonly do to a message: header field names are lower-cased, folding is
undone and runs of white space become one space; body lines lose white space
at their ends and runs of white space inside them shrink to one space.

Line ends. Hashing is defined over CRLF lines (RFC 6376 §5.3 asks signers to
convert local line ends first). A message read from a file may end its lines
with a bare LF, so both here and in :mod:`mailwright.auth.message` a bare LF
counts as a line end and is hashed as CRLF; a bare CR is content.

:class:`BodyCanonicalizer` works incrementally, so a body can be hashed as it
streams in (SMTP DATA, a spool file) without being held twice; the one-shot
:func:`canonicalize_body` is built on it. :func:`canonicalize_header` takes a
field's raw octets as :class:`~mailwright.auth.message.HeaderField` keeps
them, name and folding included.
"""

from __future__ import annotations

import enum
import re

_WSP_RUN = re.compile(rb"[ \t]+")
_BARE_LF = re.compile(rb"(?<!\r)\n")
_FOLD = re.compile(rb"\r?\n")


class Canonicalization(enum.Enum):
    """A canonicalisation algorithm, as c= names it (RFC 6376 §3.4)."""

    SIMPLE = "simple"
    RELAXED = "relaxed"


def parse_canonicalization(
    value: str,
) -> tuple[Canonicalization, Canonicalization] | None:
    """The header and body algorithms a c= value names, or None if it names none.

    ``relaxed`` alone means relaxed headers and simple body (RFC 6376 §3.5).
    Algorithm names are case-sensitive, as tag values are unless a tag says
    otherwise.
    """
    header, slash, body = value.partition("/")
    if slash and not body:
        return None
    try:
        return Canonicalization(header), Canonicalization(body or "simple")
    except ValueError:
        return None


def format_canonicalization(header: Canonicalization, body: Canonicalization) -> str:
    """The c= value for ``header`` and ``body``: ``relaxed/simple`` and so on."""
    return f"{header.value}/{body.value}"


def crlf_lines(data: bytes) -> bytes:
    """``data`` with every bare LF turned into CRLF (a CR already there is kept)."""
    if data.count(b"\n") == data.count(b"\r\n"):
        return data
    return _BARE_LF.sub(b"\r\n", data)


def canonicalize_header(raw: bytes, method: Canonicalization) -> bytes:
    """One header field in canonical form, ending in CRLF (RFC 6376 §3.4.1, §3.4.2).

    ``raw`` is the whole field: name, colon, value and its line ending (a
    missing final line ending is supplied). Relaxed: the name in lower case
    without white space around it, then ``:``, then the value unfolded, its
    white space runs reduced to one space and stripped at both ends.
    """
    if method is Canonicalization.SIMPLE:
        field = crlf_lines(raw)
        return field if field.endswith(b"\r\n") else field + b"\r\n"

    name, _, value = raw.partition(b":")
    value = _WSP_RUN.sub(b" ", _FOLD.sub(b"", value)).strip(b" ")
    return name.strip(b" \t").lower() + b":" + value + b"\r\n"


def canonicalize_body(body: bytes, method: Canonicalization) -> bytes:
    """The whole body in canonical form (RFC 6376 §3.4.3, §3.4.4)."""
    canonicalizer = BodyCanonicalizer(method)
    return canonicalizer.feed(body) + canonicalizer.finish()


class BodyCanonicalizer:
    """Turns a body, fed in pieces of any size, into its canonical form.

    Each call returns the canonical octets that are settled so far. Empty
    lines are held back until a line with content follows, since empty lines
    at the end of the body are dropped (both algorithms); the unfinished last
    line is held until its line end arrives or :meth:`finish` is called.

    The two algorithms differ at the end: "simple" turns an empty body into
    one CRLF (RFC 6376 §3.4.3), "relaxed" leaves it empty (§3.4.4).
    A last line without a line end is completed with CRLF by both.
    """

    def __init__(self, method: Canonicalization) -> None:
        self.method = method
        self._relaxed = method is Canonicalization.RELAXED
        self._partial: list[bytes] = []
        self._blank_lines = 0
        self._started = False
        self._finished = False

    def feed(self, data: bytes) -> bytes:
        """Take the next piece of the body; return the canonical octets now settled."""
        if self._finished:
            raise RuntimeError("feed() after finish()")
        if b"\n" not in data:
            if data:
                self._partial.append(data)
            return b""

        self._partial.append(data)
        lines = b"".join(self._partial).split(b"\n")
        tail = lines.pop()
        self._partial = [tail] if tail else []

        out: list[bytes] = []
        for line in lines:
            self._emit(line[:-1] if line.endswith(b"\r") else line, out)
        return b"".join(out)

    def finish(self) -> bytes:
        """The canonical octets still held: the last line, or the empty-body form."""
        if self._finished:
            return b""
        self._finished = True

        out: list[bytes] = []
        if self._partial:
            self._emit(b"".join(self._partial), out)
            self._partial = []
        if not self._started and not self._relaxed:
            out.append(b"\r\n")
        return b"".join(out)

    def _emit(self, line: bytes, out: list[bytes]) -> None:
        """Append one line (without its line end) in canonical form to ``out``."""
        if self._relaxed:
            line = _WSP_RUN.sub(b" ", line).rstrip(b" ")
        if not line:
            self._blank_lines += 1
            return
        if self._blank_lines:
            out.append(b"\r\n" * self._blank_lines)
            self._blank_lines = 0
        out.append(line + b"\r\n")
        self._started = True
