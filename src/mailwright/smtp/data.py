"""Readers for message content: the DATA body and BDAT chunks.

DATA (RFC 5321 §4.1.1.4, §4.5.2) ends at the line holding a single period,
and ONLY at ``<CRLF>.<CRLF>``. Servers that also accepted ``<LF>.<LF>``,
``<CR>.<CR>``, ``<LF>.<CRLF>`` or similar let a sender hide a second message
inside the first one, which a stricter next hop then splits apart ("SMTP
smuggling", 2023). Here bare CR and bare LF are content, never line breaks:
with ``bare_line_endings="reject"`` the message is read to its real end and
then refused with 550 5.6.11; with ``"normalize"`` they become CRLF in the
stored content (and still never end the message or trigger dot-unstuffing).

The reader works on whole chunks with ``bytes.find``/``count``/``replace``
rather than per byte. It holds back only the unfinished last line, so a
marker split across reads is still found. Content beyond ``max_size`` is
discarded as it arrives (never buffered) while the reader keeps looking for
the end, so the client gets its 552 5.3.4 at the right moment (RFC 5321
§4.5.3.1.10). Lines longer than ``max_line`` (counted with CRLF, before
unstuffing) make the message fail with 500 5.5.2 after its end.

BDAT (RFC 3030) chunks carry an exact octet count and no dot-stuffing;
:class:`ChunkReader` gathers them under the same size limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mailwright.smtp import replies
from mailwright.smtp.replies import Reply

BareLineEndings = Literal["reject", "normalize"]

_END_MARKER = b"\r\n.\r\n"


@dataclass(frozen=True, slots=True)
class DataResult:
    """A finished message: ``content`` (CRLF lines, unstuffed) or the ``error`` to reply.

    ``size`` counts every content octet received, also those discarded after
    the limit was passed. ``content`` is empty when ``error`` is set.
    """

    content: bytes
    error: Reply | None
    size: int


def has_bare_line_ending(content: bytes) -> bool:
    """True when ``content`` holds a CR not followed by LF or an LF not preceded by CR."""
    pairs = content.count(b"\r\n")
    return content.count(b"\r") != pairs or content.count(b"\n") != pairs


def may_hold_long_line(lines: bytes, max_line: int) -> bool:
    """False when no line of ``lines`` can be longer than ``max_line`` octets.

    A line that long holds at least ``2 * block`` octets without an LF, so it
    covers one whole aligned block of ``block`` octets; when every aligned
    block holds an LF (``bytes.find`` is a memchr), no line is too long. True
    means "maybe": the caller measures the lines exactly. Splitting a 10 KB
    message into its lines only to measure them cost more than the rest of
    the DATA reader together.
    """
    block = max(1, (max_line - 2) // 2)
    find = lines.find
    for start in range(0, len(lines) - block + 1, block):
        if find(b"\n", start, start + block) < 0:
            return True
    return False


def normalize_line_endings(content: bytes) -> bytes:
    """Turn every bare CR and bare LF into CRLF, leaving CRLF pairs alone."""
    return content.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def crlf_lines(content: bytes, *, crlf_checked: bool = False) -> bytes:
    """``content`` as CRLF lines: bare CR or LF made CRLF, and a CRLF at the end.

    This is what a DATA receiver stores (see :func:`dot_stuff`), and what a
    BDAT chunk of text content carries, so that the transfer chosen never
    changes the message delivered. Text with bare line endings is refused by
    strict receivers (ours answers 550 5.6.11). ``crlf_checked`` skips the
    scan (three passes over the message) for content known to have none,
    such as what our own server accepted over SMTP.
    """
    if not crlf_checked and has_bare_line_ending(content):
        content = normalize_line_endings(content)
    if content and not content.endswith(b"\r\n"):
        content += b"\r\n"
    return content


def dot_stuff(content: bytes, *, crlf_checked: bool = False) -> bytes:
    """``content`` as DATA sends it: transparent dots and the final ``.`` line.

    The content is made CRLF lines first (:func:`crlf_lines`): a lone LF
    before a dot is how SMTP smuggling slips a second message past lenient
    receivers. Then every line that starts with a dot gets a second one (RFC
    5321 §4.5.2) and ``.CRLF`` is appended. This is the inverse of
    :class:`DataReader`; the work is a few ``bytes`` methods running in C.
    """
    content = crlf_lines(content, crlf_checked=crlf_checked)
    stuffed = content.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"


class DataReader:
    """Reads one DATA body from successive chunks of client bytes.

    Call :meth:`feed` with each chunk; it returns how many octets it used.
    Once :attr:`done` is true the rest of the chunk (pipelined commands) was
    not used, and :meth:`result` gives the message or the reply for its fault.
    """

    def __init__(
        self,
        *,
        max_size: int,
        max_line: int,
        bare_line_endings: BareLineEndings = "reject",
    ) -> None:
        self.done = False
        self._max_size = max_size
        self._max_line = max_line
        self._normalize = bare_line_endings == "normalize"
        self._parts: list[bytes] = []
        self._pending = b""  # the unfinished last line; always starts a line unless _midline
        self._midline = False  # _pending continues a line that was too long and dropped
        self._size = 0
        self._too_big = False
        self._line_too_long = False
        self._bare = False

    def feed(self, data: bytes) -> int:
        """Consume ``data`` up to and including the end marker; return the octets used."""
        if self.done:
            return 0
        held = len(self._pending)
        buffer = self._pending + data if held else data

        # The marker is "." alone on a line: at the start of a fresh line, or after CRLF.
        if not self._midline and buffer.startswith(b".\r\n"):
            end, after = 0, 3
        else:
            found = buffer.find(_END_MARKER)
            end, after = (found + 2, found + 5) if found >= 0 else (-1, -1)

        if end >= 0:
            self._take_lines(buffer[:end])
            self._pending = b""
            self.done = True
            return after - held

        cut = buffer.rfind(b"\r\n") + 2
        rest = buffer
        if cut >= 2:
            self._take_lines(buffer[:cut])
            self._midline = False
            rest = buffer[cut:]

        if len(rest) > self._max_line and self._normalize:
            # Bare LFs are line breaks of the content when normalising: keep what precedes one.
            bare_lf = rest.rfind(b"\n") + 1
            if bare_lf:
                self._take_lines(rest[:bare_lf])
                self._midline = True
                rest = rest[bare_lf:]
        if len(rest) > self._max_line:
            # A line without end: drop it but keep a trailing CR that may start the CRLF.
            self._line_too_long = True
            self._midline = True
            rest = b"\r" if rest.endswith(b"\r") else b""
        self._pending = rest
        return len(data)

    def _take_lines(self, lines: bytes) -> None:
        """Check, unstuff and keep complete lines.

        ``lines`` ends with CRLF (or, when normalising, a bare LF) and starts a
        line unless ``_midline``.
        """
        if not lines:
            return
        if (
            len(lines) >= self._max_line
            and not self._line_too_long
            and may_hold_long_line(lines, self._max_line)
        ):
            separator = b"\n" if self._normalize else b"\r\n"
            longest = max(map(len, lines.split(separator))) + 2
            if longest > self._max_line:
                self._line_too_long = True
        if not self._bare and has_bare_line_ending(lines):
            self._bare = True

        # Dot-unstuffing (RFC 5321 §4.5.2): drop the first "." of every line starting with one.
        if not self._midline and lines.startswith(b"."):
            lines = lines[1:]
        lines = lines.replace(b"\r\n.", b"\r\n")
        if self._normalize and self._bare:
            lines = normalize_line_endings(lines)

        self._size += len(lines)
        if self._size > self._max_size:
            self._too_big = True
            self._parts.clear()
        elif not self._too_big:
            self._parts.append(lines)

    def result(self) -> DataResult:
        """The message, or the reply for the first fault found (size, line length, line ends)."""
        if self._too_big:
            return DataResult(b"", replies.MESSAGE_TOO_BIG, self._size)
        if self._line_too_long:
            return DataResult(b"", replies.LINE_TOO_LONG, self._size)
        if self._bare and not self._normalize:
            return DataResult(b"", replies.BARE_LINE_ENDING, self._size)
        return DataResult(b"".join(self._parts), None, self._size)


class ChunkReader:
    """Gathers the chunks of one BDAT transaction (RFC 3030 §2).

    Call :meth:`begin` for each ``BDAT n`` and :meth:`feed` with client bytes
    until :attr:`chunk_done`. Octets past ``max_size`` are counted and dropped.
    Unless ``binary`` (BODY=BINARYMIME), bare CR or LF is treated as in DATA,
    because the content may later be relayed with DATA to a lenient server.
    """

    def __init__(
        self,
        *,
        max_size: int,
        bare_line_endings: BareLineEndings = "reject",
        binary: bool = False,
    ) -> None:
        self._max_size = max_size
        self._normalize = bare_line_endings == "normalize"
        self._binary = binary
        self._parts: list[bytes] = []
        self._size = 0
        self._left = 0

    @property
    def chunk_done(self) -> bool:
        """True when the current chunk has all its octets."""
        return self._left == 0

    @property
    def remaining(self) -> int:
        """Octets still missing from the current chunk."""
        return self._left

    @property
    def size(self) -> int:
        """Octets received in all chunks so far."""
        return self._size

    @property
    def too_big(self) -> bool:
        """True once the chunks so far exceed the size limit."""
        return self._size > self._max_size

    def begin(self, size: int) -> None:
        """Expect a chunk of ``size`` octets."""
        self._left = size

    def feed(self, data: bytes) -> int:
        """Take at most the rest of the current chunk from ``data``; return the octets used."""
        take = min(self._left, len(data))
        if take == 0:
            return 0
        part = data[:take] if take < len(data) else data
        self._left -= take
        self._size += take
        if self._size > self._max_size:
            self._parts.clear()
        else:
            self._parts.append(part)
        return take

    def result(self) -> DataResult:
        """The whole message, or the reply for its fault (size, bare line endings)."""
        if self.too_big:
            return DataResult(b"", replies.MESSAGE_TOO_BIG, self._size)
        content = b"".join(self._parts)
        if not self._binary and has_bare_line_ending(content):
            if not self._normalize:
                return DataResult(b"", replies.BARE_LINE_ENDING, self._size)
            content = normalize_line_endings(content)
        return DataResult(content, None, self._size)
