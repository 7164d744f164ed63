"""Parsing SMTP replies as a client receives them (RFC 5321 §4.2).

A reply is one or more lines that share a three-digit code; every line but the
last has a hyphen after the code, the last a space (§4.2.1). When the server
speaks ENHANCEDSTATUSCODES (RFC 2034 §3) the text of each line starts with a
``class.subject.detail`` code (RFC 3463), which is lifted into
:attr:`Reply.status` so callers never parse text.

Peers are not always tidy, so the parser tolerates what is harmless: bare LF
line endings, a last line with nothing after the code (``"250"``), stray CRs
inside the text, text that is not UTF-8, an enhanced code whose class
disagrees with the reply code (kept as text). What cannot be understood
(a line that does not start with a code in 200-599, lines of one reply with
different codes, a line or a reply past the size limits) raises
:class:`ReplySyntaxError`: the conversation is then out of step and the
connection must be dropped.

Theory of operation: :class:`ReplyParser` buffers bytes and hands out whole
replies; nothing is decoded until a reply is complete, and a reply is found by
searching for LF in C (``bytes.find``), never byte by byte.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mailwright.smtp.replies import Reply

MAX_LINE = 8192
"""Longest reply line accepted (RFC 5321 §4.5.3.1.5 says 512; peers exceed it)."""

MAX_REPLY = 65536
"""Largest multi-line reply accepted, all lines together (a bound on memory)."""

_LINE = re.compile(rb"([2-5][0-9][0-9])([ -]?)(.*)", re.DOTALL)
_ENHANCED = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?: +|$)")
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


class ReplySyntaxError(ValueError):
    """The peer sent bytes that are not an SMTP reply; the message quotes them."""


def parse_reply(lines: Sequence[bytes]) -> Reply:
    """Build a :class:`Reply` from the raw lines of one complete reply.

    ``lines`` hold the bytes of each line without its line ending. The enhanced
    status code is taken from the first line when it agrees in class with the
    reply code (RFC 3463 §2) and removed from every line that repeats it.

    Raises :class:`ReplySyntaxError` when a line does not start with a reply
    code, the lines disagree on the code, or a line other than the last is
    not marked as a continuation.
    """
    if not lines:
        raise ReplySyntaxError("empty reply")

    code = b""
    texts: list[str] = []
    last = len(lines) - 1
    for index, raw in enumerate(lines):
        match = _LINE.fullmatch(raw)
        if match is None:
            raise ReplySyntaxError(f"not a reply line: {raw[:80]!r}")
        line_code, separator, text = match.groups()
        if not separator and text:
            raise ReplySyntaxError(f"no separator after the code: {raw[:80]!r}")
        if code and line_code != code:
            raise ReplySyntaxError(f"reply lines with codes {code!r} and {line_code!r}")
        if (separator == b"-") != (index < last):
            raise ReplySyntaxError(f"continuation marks out of place: {raw[:80]!r}")
        code = line_code
        texts.append(text.decode("utf-8", "replace").replace("\r", " "))

    number = int(code)
    status = None
    found = _ENHANCED.match(texts[0])
    if found is not None and int(found.group(1)) == number // 100:
        status = ".".join(str(int(part)) for part in found.groups())
        prefix = found.group(0).rstrip()
        texts = [_strip_status(text, prefix) for text in texts]
    return Reply(number, status, *texts)


def _strip_status(text: str, prefix: str) -> str:
    """``text`` without a leading enhanced code ``prefix`` and the spaces after it."""
    if text.startswith(prefix):
        return text[len(prefix) :].lstrip(" ")
    return text


def parse_extensions(reply: Reply) -> dict[str, str]:
    """The service extensions an EHLO or LHLO reply announces (RFC 5321 §4.1.1.1).

    The first line is the greeting; each further line is a keyword and its
    parameters, returned as ``{"SIZE": "10240000", "PIPELINING": ""}`` with
    keywords in upper case. Lines that do not start with a keyword are
    skipped: an odd line must not cost the whole session.
    """
    extensions: dict[str, str] = {}
    for line in reply.lines[1:]:
        keyword, _, params = line.strip().partition(" ")
        if _KEYWORD.fullmatch(keyword):
            extensions[keyword.upper()] = params.strip()
    return extensions


#: Single-line replies already parsed, by their bytes. A peer answers every message
#: with the same few lines ("250 2.1.0 Ok", "354 End data ..."); replies are values,
#: so one parse serves them all. Bounded: emptied when it reaches this size.
_SINGLE_CACHE_SIZE = 512
_single_cache: dict[bytes, Reply] = {}


def _parse_single(line: bytes) -> Reply:
    """:func:`parse_reply` of one line, through :data:`_single_cache`."""
    found = _single_cache.get(line)
    if found is None:
        found = parse_reply([line])  # raises ReplySyntaxError: nothing cached then
        if len(_single_cache) >= _SINGLE_CACHE_SIZE:
            _single_cache.clear()
        _single_cache[line] = found
    return found


class ReplyParser:
    """Buffers bytes from a server and yields complete replies in order."""

    __slots__ = ("_buffer", "_lines", "_size")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._lines: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> None:
        """Append bytes received from the server."""
        self._buffer += data

    @property
    def pending(self) -> bool:
        """True when bytes of an unfinished reply are buffered."""
        return bool(self._buffer) or bool(self._lines)

    def clear(self) -> None:
        """Forget everything buffered (after STARTTLS, RFC 3207 §4.2)."""
        self._buffer.clear()
        self._lines.clear()
        self._size = 0

    def next_reply(self) -> Reply | None:
        """The next complete reply, or None when more bytes are needed.

        Raises :class:`ReplySyntaxError` for bytes that are not a reply or a
        line or reply past :data:`MAX_LINE` / :data:`MAX_REPLY`.
        """
        buffer = self._buffer
        start = 0
        try:
            while True:
                end = buffer.find(b"\n", start)
                if end < 0:
                    if len(buffer) - start > MAX_LINE:
                        raise ReplySyntaxError(f"reply line longer than {MAX_LINE} bytes")
                    return None

                stop = end - 1 if end > start and buffer[end - 1] == 0x0D else end
                line = bytes(buffer[start:stop])
                start = end + 1
                if not line[:3].isdigit():
                    raise ReplySyntaxError(f"not a reply line: {line[:80]!r}")
                if len(line) > MAX_LINE:
                    raise ReplySyntaxError(f"reply line longer than {MAX_LINE} bytes")
                self._size += len(line)
                if self._size > MAX_REPLY:
                    raise ReplySyntaxError(f"reply longer than {MAX_REPLY} bytes")
                self._lines.append(line)

                if line[3:4] != b"-":
                    lines, self._lines, self._size = self._lines, [], 0
                    if len(lines) == 1:
                        return _parse_single(lines[0])
                    return parse_reply(lines)
        finally:
            del buffer[:start]
