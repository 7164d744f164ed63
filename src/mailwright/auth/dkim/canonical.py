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

Speed. Bodies are rewritten a whole run of lines at a time, never line by
line in Python: bare LFs become CRLF in one pass, relaxed's white-space
runs are squeezed by a few ``bytes.replace`` passes (:func:`_squeeze_wsp`),
the single space a run leaves before CRLF is removed by one more, and the
empty lines at the end are found from the end of the text
(:func:`_settle`). Every step is a C loop over the whole buffer, so a 10 KB
body costs tens of microseconds rather than one regex call per line. (A
regular expression over the whole body is no faster: ``re`` has no quick
scan for a class like ``[ \t]{2,}`` and tries it at every octet.)

:class:`BodyCanonicalizer` works incrementally, so a body can be hashed as it
streams in (SMTP DATA, a spool file) without being held twice: it cuts each
piece at its last line end and hands the complete lines to the same
:func:`_settle` as the one-shot :func:`canonicalize_body`, so the two cannot
disagree. :func:`canonicalize_header` takes a field's raw octets as
:class:`~mailwright.auth.message.HeaderField` keeps them, name and folding
included.
"""

from __future__ import annotations

import enum
import functools
import re

_BARE_LF = re.compile(rb"(?<!\r)\n")


class Canonicalization(enum.Enum):
    """A canonicalisation algorithm, as c= names it (RFC 6376 §3.4)."""

    SIMPLE = "simple"
    RELAXED = "relaxed"


@functools.lru_cache(maxsize=64)
def parse_canonicalization(
    value: str,
) -> tuple[Canonicalization, Canonicalization] | None:
    """The header and body algorithms a c= value names, or None if it names none.

    ``relaxed`` alone means relaxed headers and simple body (RFC 6376 §3.5).
    Algorithm names are case-sensitive, as tag values are unless a tag says
    otherwise. Memoised: a handful of values occur in practice, and every
    signature (DKIM and ARC) asks.
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


def _squeeze_wsp(data: bytes) -> bytes:
    """``data`` with every run of WSP (SP, HTAB) made one SP, as relaxed wants.

    Relaxed treats SP and HTAB alike, so tabs become spaces first; then
    each pass of ``bytes.replace`` merges pairs of spaces, halving every
    run, until a pass changes nothing. A run of n spaces takes about
    log2(n) passes, each one C loop; text without double spaces takes one.
    """
    if b"\t" in data:
        data = data.replace(b"\t", b" ")
    if b"  " not in data:
        return data
    while True:
        merged = data.replace(b"  ", b" ")
        if len(merged) == len(data):
            return data
        data = merged


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
    # Unfolding deletes every LF and a CR just before one: the same as
    # removing each CRLF and then each remaining (bare) LF.
    value = value.replace(b"\r\n", b"")
    if b"\n" in value:
        value = value.replace(b"\n", b"")
    value = _squeeze_wsp(value)
    return name.strip(b" \t").lower() + b":" + value.strip(b" ") + b"\r\n"


def canonicalize_body(body: bytes, method: Canonicalization) -> bytes:
    """The whole body in canonical form (RFC 6376 §3.4.3, §3.4.4).

    Gives exactly what :class:`BodyCanonicalizer` gives when fed ``body``
    in any pieces, without its bookkeeping.
    """
    relaxed = method is Canonicalization.RELAXED
    if body and not body.endswith(b"\n"):
        body += b"\r\n"
    canonical, _ = _settle(body, relaxed)
    if not canonical and not relaxed:
        return b"\r\n"
    return canonical


def _settle(lines: bytes, relaxed: bool) -> tuple[bytes, int]:
    """Complete lines in canonical form, split into what is settled and what is held.

    ``lines`` is empty or ends with a line end (LF or CRLF). Returns the
    canonical octets up to and including the last line that is not empty
    once canonicalised, and the number of empty lines after it, which are
    dropped at the end of a body and restored when more content follows.

    How the end is found without walking the lines: strip every CR and LF
    from the end of the text; what was stripped holds only line ends, empty
    lines and the CRs that end the content of a line (a bare CR is
    content). A line with such content ends in CR CR LF, so the last
    occurrence of CR CR LF in the stripped part ends the last non-empty
    line; without one, that line is the one the strip cut into, and its
    CRLF comes first in the stripped part.
    """
    text = crlf_lines(lines)
    if relaxed:
        # Runs never cross a line end (CR and LF are not WSP); once each is
        # a single space, the one left at a line end goes.
        text = _squeeze_wsp(text).replace(b" \r\n", b"\r\n")

    content_end = len(text.rstrip(b"\r\n"))
    last_cr_line = text.rfind(b"\r\r\n", content_end)
    if last_cr_line >= 0:
        keep = last_cr_line + 3
    elif content_end:
        keep = content_end + 2
    else:
        keep = 0
    held = (len(text) - keep) // 2
    return (text if keep == len(text) else text[:keep]), held


class BodyCanonicalizer:
    """Turns a body, fed in pieces of any size, into its canonical form.

    Each call returns the canonical octets that are settled so far. Empty
    lines are held back until a line with content follows, since empty lines
    at the end of the body are dropped (both algorithms); the unfinished last
    line is held until its line end arrives or :meth:`finish` is called.

    The two algorithms differ at the end: "simple" turns an empty body into
    one CRLF (RFC 6376 §3.4.3), "relaxed" leaves it empty (§3.4.4).
    A last line without a line end is completed with CRLF by both.

    Each piece is cut after its last LF; the complete lines before the cut
    (with the held start of the first one) go to :func:`_settle` in one
    call, the rest waits for the next piece.
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
        cut = data.rfind(b"\n") + 1
        if not cut:
            if data:
                self._partial.append(data)
            return b""

        complete = data if cut == len(data) else data[:cut]
        if self._partial:
            self._partial.append(complete)
            complete = b"".join(self._partial)
        self._partial = [data[cut:]] if cut < len(data) else []
        return self._take(complete)

    def finish(self) -> bytes:
        """The canonical octets still held: the last line, or the empty-body form."""
        if self._finished:
            return b""
        self._finished = True

        out = b""
        if self._partial:
            out = self._take(b"".join(self._partial) + b"\r\n")
            self._partial = []
        if not self._started and not self._relaxed:
            out += b"\r\n"
        return out

    def _take(self, lines: bytes) -> bytes:
        """Canonicalise complete ``lines``; return them after any empty lines held so far."""
        canonical, blank_after = _settle(lines, self._relaxed)
        if not canonical:
            self._blank_lines += blank_after
            return b""
        held, self._blank_lines = self._blank_lines, blank_after
        self._started = True
        return b"\r\n" * held + canonical if held else canonical
