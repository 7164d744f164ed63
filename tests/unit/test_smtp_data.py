"""Tests for mailwright.smtp.data: the DATA reader, the BDAT chunk reader, dot-stuffing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwright.smtp import replies
from mailwright.smtp.data import (
    ChunkReader,
    DataReader,
    DataResult,
    dot_stuff,
    has_bare_line_ending,
    may_hold_long_line,
    normalize_line_endings,
)


def read_all(
    wire: bytes,
    *,
    pieces: int = 1,
    max_size: int = 10_000,
    max_line: int = 1000,
    normalize: bool = False,
) -> tuple[DataResult | None, int]:
    """Feed ``wire`` in ``pieces`` roughly equal parts; return the result and octets used."""
    reader = DataReader(
        max_size=max_size,
        max_line=max_line,
        bare_line_endings="normalize" if normalize else "reject",
    )
    step = max(1, len(wire) // pieces)
    used = 0
    for start in range(0, len(wire), step):
        used += reader.feed(wire[start : start + step])
        if reader.done:
            return reader.result(), used
    return None, used


class TestDataReader:
    def test_message_ends_at_crlf_dot_crlf(self) -> None:
        """The body ends at <CRLF>.<CRLF>; content keeps its last CRLF."""
        result, used = read_all(b"Subject: x\r\n\r\nbody\r\n.\r\n")

        assert result == DataResult(b"Subject: x\r\n\r\nbody\r\n", None, 20)
        assert used == 23

    def test_empty_message(self) -> None:
        """A lone "." line right after DATA is an empty message."""
        result, used = read_all(b".\r\nQUIT\r\n")

        assert result is not None
        assert result.content == b""
        assert used == 3

    def test_pipelined_bytes_after_the_end_are_not_used(self) -> None:
        """Bytes after the end marker (the next command) are left for the session."""
        wire = b"a\r\n.\r\nMAIL FROM:<x@y.example>\r\n"

        result, used = read_all(wire)

        assert result is not None
        assert wire[used:] == b"MAIL FROM:<x@y.example>\r\n"

    def test_dot_unstuffing(self) -> None:
        """A leading dot is removed from every line that has one (RFC 5321 §4.5.2)."""
        result, _ = read_all(b"..\r\n..leading\r\n.x\r\nmid.dle\r\n.\r\n")

        assert result is not None
        assert result.content == b".\r\n.leading\r\nx\r\nmid.dle\r\n"

    @pytest.mark.parametrize("pieces", [2, 3, 7, 1000])
    def test_marker_split_across_reads_is_found(self, pieces: int) -> None:
        """The end marker and stuffed dots are found however the bytes are split."""
        wire = b"line one\r\n..two\r\n" * 5 + b".\r\n"

        result, used = read_all(wire, pieces=pieces)

        assert result is not None
        assert result.content == b"line one\r\n.two\r\n" * 5
        assert used == len(wire)

    def test_oversize_message_is_read_to_the_end_then_refused(self) -> None:
        """Over max_size the reader keeps going to the marker, then answers 552 5.3.4."""
        reader = DataReader(max_size=100, max_line=1000)
        for _ in range(50):
            reader.feed(b"x" * 50 + b"\r\n")

        assert not reader.done
        reader.feed(b".\r\nQUIT\r\n")

        assert reader.done
        result = reader.result()
        assert result.error is replies.MESSAGE_TOO_BIG
        assert result.content == b""
        assert result.size == 50 * 52

    def test_oversize_content_is_not_buffered(self) -> None:
        """Past the limit the reader holds no content (memory stays bounded)."""
        reader = DataReader(max_size=1000, max_line=100)
        for _ in range(200):
            reader.feed(b"y" * 50 + b"\r\n")

        assert sum(map(len, reader._parts)) == 0
        assert len(reader._pending) <= 100

    def test_long_line_fails_the_message(self) -> None:
        """A line over max_line (with its CRLF) makes the message fail with 500 5.5.2."""
        result, _ = read_all(b"short\r\n" + b"z" * 99 + b"\r\n.\r\n", max_line=100)

        assert result is not None
        assert result.error is replies.LINE_TOO_LONG

    def test_line_at_the_limit_is_accepted(self) -> None:
        """A line of exactly max_line octets with its CRLF is fine."""
        result, _ = read_all(b"z" * 98 + b"\r\n.\r\n", max_line=100)

        assert result is not None
        assert result.error is None

    def test_endless_line_is_dropped_while_reading(self) -> None:
        """A line that never ends does not grow the buffer beyond max_line."""
        reader = DataReader(max_size=10_000_000, max_line=100)
        for _ in range(100):
            reader.feed(b"q" * 64)

        assert len(reader._pending) <= 100
        reader.feed(b"\r\n.\r\n")
        assert reader.done
        assert reader.result().error is replies.LINE_TOO_LONG

    def test_dot_after_dropped_long_line_is_not_an_end(self) -> None:
        """After a dropped over-long line, a "." is mid-line, not the end marker."""
        reader = DataReader(max_size=10_000, max_line=10)
        reader.feed(b"a" * 20)

        reader.feed(b".\r\n")

        assert not reader.done
        reader.feed(b".\r\n")
        assert reader.done

    def test_feed_after_done_uses_nothing(self) -> None:
        """Once done, the reader takes no more bytes."""
        reader = DataReader(max_size=100, max_line=100)
        reader.feed(b".\r\n")

        assert reader.feed(b"more") == 0


# Each variant would end the message on a lenient server and start a smuggled one.
SMUGGLING_ENDINGS = [
    b"\n.\n",
    b"\r.\r",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r.\r\n",
    b"\r\n.\r",
    b"\n.\r",
    b"\r.\n",
]


@pytest.mark.parametrize("ending", SMUGGLING_ENDINGS)
def test_smtp_smuggling_bare_endings_do_not_end_data(ending: bytes) -> None:
    """A bare-LF/CR end-of-data variant never ends the message; it is refused at the real end."""
    wire = (
        b"Subject: first\r\n\r\nhi" + ending + b"MAIL FROM:<evil@example.com>\r\n"
        b"RCPT TO:<victim@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\n.\r\n"
    )

    result, used = read_all(wire)

    assert result is not None
    assert used == len(wire)
    assert result.error is replies.BARE_LINE_ENDING


@pytest.mark.parametrize("ending", SMUGGLING_ENDINGS)
def test_smtp_smuggling_normalize_mode_keeps_one_message(ending: bytes) -> None:
    """With normalize, a bare-ending variant is content: one message, CRLF only."""
    wire = b"hi" + ending + b"MAIL FROM:<evil@example.com>\r\n.\r\n"

    result, used = read_all(wire, normalize=True)

    assert result is not None
    assert used == len(wire)
    assert result.error is None
    assert b"MAIL FROM:<evil@example.com>\r\n" in result.content
    assert not has_bare_line_ending(result.content)


def test_normalize_turns_bare_lf_into_crlf() -> None:
    """In normalize mode bare LF becomes CRLF in the stored content."""
    result, _ = read_all(b"a\nb\r\n.\r\n", normalize=True)

    assert result is not None
    assert result.content == b"a\r\nb\r\n"


def test_normalize_mode_measures_lines_by_bare_lf() -> None:
    """An LF-only client's short lines are not one long CRLF line in normalize mode."""
    result, _ = read_all(b"line\n" * 100 + b"\r\n.\r\n", max_line=50, normalize=True)

    assert result is not None
    assert result.error is None
    assert result.content == b"line\r\n" * 100 + b"\r\n"


class TestChunkReader:
    def test_chunks_are_joined(self) -> None:
        """Chunks of exact sizes form the message; extra bytes are not used."""
        reader = ChunkReader(max_size=100)
        reader.begin(5)
        assert reader.feed(b"ab") == 2
        assert reader.feed(b"c\r\nNEXT") == 3
        assert reader.chunk_done
        reader.begin(3)
        reader.feed(b"d\r\n")

        assert reader.result() == DataResult(b"abc\r\nd\r\n", None, 8)

    def test_oversize_is_refused_and_not_kept(self) -> None:
        """Chunks over the limit are counted and dropped, then refused with 552."""
        reader = ChunkReader(max_size=10)
        reader.begin(20)
        reader.feed(b"x" * 20)

        assert reader.too_big
        assert reader.result().error is replies.MESSAGE_TOO_BIG

    def test_bare_lf_refused_unless_binarymime(self) -> None:
        """Bare LF in BDAT content is refused, but is fine with BODY=BINARYMIME."""
        text = ChunkReader(max_size=100)
        binary = ChunkReader(max_size=100, binary=True)
        for reader in (text, binary):
            reader.begin(4)
            reader.feed(b"a\nb\0")

        assert text.result().error is replies.BARE_LINE_ENDING
        assert binary.result().content == b"a\nb\0"

    def test_crlf_split_between_chunks_is_not_bare(self) -> None:
        """A CR ending one chunk and the LF starting the next form one CRLF."""
        reader = ChunkReader(max_size=100)
        reader.begin(2)
        reader.feed(b"a\r")
        reader.begin(2)
        reader.feed(b"\nb")

        assert reader.result().error is None


def test_bare_line_ending_detection() -> None:
    """CRLF pairs are fine; a lone CR or LF anywhere is bare."""
    assert not has_bare_line_ending(b"a\r\nb\r\n")
    assert has_bare_line_ending(b"a\nb")
    assert has_bare_line_ending(b"a\rb")
    assert has_bare_line_ending(b"a\r\r\n")


def test_normalize_line_endings() -> None:
    """Bare CR and bare LF each become CRLF."""
    assert normalize_line_endings(b"a\rb\nc\r\n") == b"a\r\nb\r\nc\r\n"


crlf_lines = st.lists(
    st.binary(max_size=40).map(lambda line: line.replace(b"\r", b"").replace(b"\n", b"")),
    max_size=30,
)


@given(crlf_lines, st.integers(min_value=1, max_value=50))
def test_dot_stuffing_round_trips_through_the_reader(lines: list[bytes], pieces: int) -> None:
    """Any CRLF content, dot-stuffed and split anyhow, reads back exactly."""
    content = b"".join(line + b"\r\n" for line in lines)

    result, used = read_all(dot_stuff(content) + b"QUIT\r\n", pieces=pieces)

    assert result is not None
    assert result.content == content
    assert used == len(dot_stuff(content))


@given(st.binary(max_size=400), st.integers(min_value=1, max_value=20))
def test_reader_never_ends_before_a_real_marker(data: bytes, pieces: int) -> None:
    """On arbitrary bytes, the reader stops only right after a genuine <CRLF>.<CRLF>."""
    wire = data + b"\r\n.\r\n"

    result, used = read_all(wire, pieces=pieces, normalize=True)

    assert result is not None
    consumed = b"\r\n" + wire[:used]
    assert consumed.endswith(b"\r\n.\r\n")
    assert consumed.find(b"\r\n.\r\n") == len(consumed) - 5


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=120), st.sampled_from([b"\r\n", b"\n"])),
        min_size=1,
        max_size=40,
    ),
    st.integers(min_value=3, max_value=100),
)
def test_long_line_pre_check_never_misses_a_long_line(
    shape: list[tuple[int, bytes]], max_line: int
) -> None:
    """When a line is longer than the limit, the cheap pre-check always says "maybe"."""
    lines = b"".join(b"x" * length + end for length, end in shape)
    longest = max(len(line) + 2 for line in lines.split(b"\n"))

    if longest > max_line:
        assert may_hold_long_line(lines, max_line)


def test_long_line_pre_check_clears_ordinary_content() -> None:
    """Ten kilobytes of 72-octet lines pass the pre-check without measuring each line."""
    lines = (b"x" * 70 + b"\r\n") * 145

    assert not may_hold_long_line(lines, 1000)
    assert may_hold_long_line(b"x" * 1200 + b"\r\n", 1000)
