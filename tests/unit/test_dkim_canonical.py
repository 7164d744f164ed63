"""Tests for mailwright.auth.dkim.canonical and .hashing: what a DKIM signature covers."""

from __future__ import annotations

import hashlib
import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwright.auth.dkim.canonical import (
    BodyCanonicalizer,
    Canonicalization,
    canonicalize_body,
    canonicalize_header,
    format_canonicalization,
    parse_canonicalization,
)
from mailwright.auth.dkim.hashing import (
    BodyHasher,
    blank_signature,
    body_digest,
    header_hash_input,
    select_headers,
)
from mailwright.auth.dkim.tags import TagList, parse_tag_list
from mailwright.auth.message import parse_message

SIMPLE = Canonicalization.SIMPLE
RELAXED = Canonicalization.RELAXED

#: The example of RFC 6376 §3.4.5.
RFC_HEADER = b"A: X\r\nB : Y\t\r\n\tZ  \r\n"
RFC_BODY = b" C \r\nD \t E\r\n\r\n\r\n"


def test_relaxed_headers_match_the_rfc_example() -> None:
    """RFC 6376 §3.4.5: names lower-cased, folding undone, white space squeezed."""
    fields = parse_message(RFC_HEADER + b"\r\n").headers

    canonical = b"".join(canonicalize_header(field.raw, RELAXED) for field in fields)

    assert canonical == b"a:X\r\nb:Y Z\r\n"


def test_simple_headers_match_the_rfc_example() -> None:
    """RFC 6376 §3.4.5: simple header canonicalisation changes nothing."""
    fields = parse_message(RFC_HEADER + b"\r\n").headers

    canonical = b"".join(canonicalize_header(field.raw, SIMPLE) for field in fields)

    assert canonical == RFC_HEADER


def test_relaxed_body_matches_the_rfc_example() -> None:
    """RFC 6376 §3.4.5: line-end white space gone, runs squeezed, trailing empty lines gone."""
    assert canonicalize_body(RFC_BODY, RELAXED) == b" C\r\nD E\r\n"


def test_simple_body_matches_the_rfc_example() -> None:
    """RFC 6376 §3.4.5: simple body canonicalisation drops only the empty lines at the end."""
    assert canonicalize_body(RFC_BODY, SIMPLE) == b" C \r\nD \t E\r\n"


@pytest.mark.parametrize(
    ("method", "expected"),
    [(SIMPLE, b"\r\n"), (RELAXED, b"")],
)
def test_an_empty_body_is_one_crlf_in_simple_and_nothing_in_relaxed(
    method: Canonicalization, expected: bytes
) -> None:
    """RFC 6376 §3.4.3 and §3.4.4 differ for the empty body."""
    assert canonicalize_body(b"", method) == expected
    assert canonicalize_body(b"\r\n\r\n", method) == expected


@pytest.mark.parametrize("method", list(Canonicalization))
def test_a_last_line_without_line_end_gets_one(method: Canonicalization) -> None:
    """A body not ending in CRLF is completed with one."""
    assert canonicalize_body(b"text", method) == b"text\r\n"


def test_relaxed_body_drops_white_space_only_lines_at_the_end() -> None:
    """Lines holding only white space become empty, and empty lines at the end go."""
    assert canonicalize_body(b"a\r\n \t\r\n  \r\n", RELAXED) == b"a\r\n"


def test_empty_lines_inside_the_body_are_kept() -> None:
    """Only empty lines at the end are dropped; those between lines of text stay."""
    assert canonicalize_body(b"a\r\n\r\n\r\nb\r\n", SIMPLE) == b"a\r\n\r\n\r\nb\r\n"


def test_bare_lf_counts_as_a_line_end() -> None:
    """Messages read from files end lines with LF; they hash as CRLF."""
    assert canonicalize_body(b"a\nb\n\n", SIMPLE) == b"a\r\nb\r\n"
    assert canonicalize_header(b"Subject: x\n y\n", SIMPLE) == b"Subject: x\r\n y\r\n"


def test_a_bare_cr_is_content() -> None:
    """A CR not followed by LF is not a line end and is kept."""
    assert canonicalize_body(b"a\rb\r\n", RELAXED) == b"a\rb\r\n"


def test_relaxed_header_strips_white_space_around_the_colon() -> None:
    """White space before and after the colon goes, the name is lower-cased."""
    assert canonicalize_header(b"SubJect \t:  hello   world \r\n", RELAXED) == (
        b"subject:hello world\r\n"
    )


def test_a_field_without_line_end_gets_one() -> None:
    """The last field of a message without body may lack CRLF; canonical forms end with one."""
    assert canonicalize_header(b"To: x", SIMPLE) == b"To: x\r\n"
    assert canonicalize_header(b"To: x", RELAXED) == b"to:x\r\n"


def _relaxed_header_by_the_book(raw: bytes) -> bytes:
    """RFC 6376 §3.4.2 step by step, as a reference for :func:`canonicalize_header`."""
    name, _, value = raw.partition(b":")
    unfolded = value.replace(b"\r\n", b"").replace(b"\n", b"")
    squeezed = re.sub(rb"[ \t]+", b" ", unfolded)
    return name.strip(b" \t").lower() + b":" + squeezed.strip(b" ") + b"\r\n"


@given(
    st.lists(
        st.sampled_from([b"a", b"B", b" ", b"  ", b"\t", b" \t ", b"\r\n ", b"\n\t", b"\r", b"x"]),
        max_size=12,
    )
)
def test_relaxed_header_agrees_with_the_rfc_steps(pieces: list[bytes]) -> None:
    """The relaxed header form equals the RFC's steps applied one by one, for any spacing."""
    raw = b"X-Te St \t:" + b"".join(pieces) + b"\r\n"

    assert canonicalize_header(raw, RELAXED) == _relaxed_header_by_the_book(raw)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("simple", (SIMPLE, SIMPLE)),
        ("relaxed", (RELAXED, SIMPLE)),
        ("relaxed/relaxed", (RELAXED, RELAXED)),
        ("simple/relaxed", (SIMPLE, RELAXED)),
        ("relaxed/", None),
        ("Relaxed", None),
        ("nowsp", None),
        ("simple/simple/simple", None),
    ],
)
def test_c_values_name_header_and_body_algorithms(
    value: str, expected: tuple[Canonicalization, Canonicalization] | None
) -> None:
    """c= defaults the body to simple; unknown or malformed names give None."""
    assert parse_canonicalization(value) == expected


def test_c_values_are_written_header_first() -> None:
    """format_canonicalization writes header/body."""
    assert format_canonicalization(RELAXED, SIMPLE) == "relaxed/simple"


def test_headers_are_picked_from_the_bottom_and_missing_ones_count_for_nothing() -> None:
    """RFC 6376 §5.4.2: each listed name takes the last unused instance."""
    message = parse_message(b"Received: 1\r\nTo: t\r\nReceived: 2\r\n\r\n")

    chosen = select_headers(message.headers, ["received", "RECEIVED", "received", "cc"])

    assert [field.raw for field in chosen] == [b"Received: 2\r\n", b"Received: 1\r\n"]


def test_the_field_being_verified_is_not_a_candidate() -> None:
    """A signature that lists dkim-signature does not pick itself."""
    message = parse_message(b"DKIM-Signature: new\r\nDKIM-Signature: old\r\n\r\n")
    new, old = message.headers

    chosen = select_headers(message.headers, ["dkim-signature", "dkim-signature"], skip=new)

    assert chosen == [old]


@given(
    st.lists(st.sampled_from(["From", "to", "TO", "Received", "x"]), max_size=12),
    st.lists(st.sampled_from(["from", "To", "received", "cc", "x"]), max_size=12),
    st.integers(min_value=0, max_value=12),
)
def test_header_selection_agrees_with_a_bottom_up_search(
    present: list[str], listed: list[str], skipped: int
) -> None:
    """select_headers picks, for each listed name, the lowest unused instance."""
    content = b"".join(f"{name}: {index}\r\n".encode() for index, name in enumerate(present))
    headers = parse_message(content + b"\r\n").headers
    skip = headers[skipped] if skipped < len(headers) else None

    used: set[int] = set()
    expected = []
    for name in listed:
        for index in reversed(range(len(headers))):
            field = headers[index]
            if index not in used and field is not skip and field.lower_name == name.lower():
                used.add(index)
                expected.append(field)
                break

    assert select_headers(headers, listed, skip=skip) == expected


def test_blanking_removes_the_b_value_and_its_folding() -> None:
    """RFC 6376 §3.7: the b= value and all white space around it are deleted."""
    raw = b"DKIM-Signature: v=1; bh=abc;\r\n b=dead\r\n beef ; x=1\r\n"

    assert blank_signature(raw) == b"DKIM-Signature: v=1; bh=abc;\r\n b=; x=1"


def test_blanking_gives_none_without_a_b_tag() -> None:
    """A field that is not a tag list with b= cannot be blanked."""
    assert blank_signature(b"DKIM-Signature: v=1; bh=abc\r\n") is None
    assert blank_signature(b"DKIM-Signature: v=1;; b=x\r\n") is None
    assert blank_signature(b"no colon") is None


def test_blanking_from_the_parsed_tags_gives_what_a_fresh_parse_gives() -> None:
    """blank_signature uses a TagList it is handed instead of parsing the field again."""
    raw = b"DKIM-Signature: v=1; bh=abc;\r\n b=dead\r\n beef ; x=1\r\n"
    parsed = parse_tag_list(raw.partition(b":")[2].removesuffix(b"\r\n"))
    assert isinstance(parsed, TagList)

    assert blank_signature(raw, parsed=parsed) == blank_signature(raw)


def test_blanking_with_tags_of_another_field_parses_the_field_itself() -> None:
    """Offsets that do not land on this field's = and ; are not trusted."""
    other = parse_tag_list(b"x=12345; b=zz")
    assert isinstance(other, TagList)

    raw = b"DKIM-Signature: v=1; b=dead; t=5\r\n"

    assert blank_signature(raw, parsed=other) == b"DKIM-Signature: v=1; b=; t=5"


def test_the_signature_field_is_hashed_last_and_without_crlf() -> None:
    """RFC 6376 §3.7: signed fields with CRLF, then the blanked signature field without."""
    message = parse_message(b"From: a\r\nTo: b\r\n\r\n")

    data = header_hash_input(message.headers, b"DKIM-Signature: b=", RELAXED)

    assert data == b"from:a\r\nto:b\r\ndkim-signature:b="


def test_l_limits_the_hashed_octets_but_not_the_reported_length() -> None:
    """body_digest hashes l= octets and reports the whole canonical length."""
    digest, length = body_digest(b"hello\r\nworld\r\n", SIMPLE, limit=5)

    assert digest == hashlib.sha256(b"hello").digest()
    assert length == 14


bodies = st.lists(
    st.sampled_from([b"a", b" ", b"\t", b"\r\n", b"\n", b"\r", b".", b"\xe9", b"  x  "]),
    max_size=40,
).map(b"".join)


@given(bodies, st.lists(st.integers(min_value=0, max_value=60), max_size=6))
def test_feeding_in_pieces_gives_the_one_shot_result(body: bytes, cuts: list[int]) -> None:
    """The incremental canonicaliser's output does not depend on where the body is cut."""
    for method in Canonicalization:
        canonicalizer = BodyCanonicalizer(method)
        edges = sorted({0, len(body), *(cut for cut in cuts if cut < len(body))})

        pieces = [canonicalizer.feed(body[a:b]) for a, b in itertools.pairwise(edges)]
        pieces.append(canonicalizer.finish())

        assert b"".join(pieces) == canonicalize_body(body, method)


@given(bodies, st.integers(min_value=1, max_value=7), st.none() | st.integers(0, 50))
def test_the_streaming_hasher_agrees_with_body_digest(
    body: bytes, step: int, limit: int | None
) -> None:
    """BodyHasher fed piece by piece gives body_digest's hash and length."""
    for method in Canonicalization:
        hasher = BodyHasher(method, limit=limit)

        for start in range(0, len(body), step):
            hasher.update(body[start : start + step])

        assert (hasher.digest(), hasher.length) == body_digest(body, method, limit=limit)


@given(bodies)
def test_canonical_bodies_are_fixed_points(body: bytes) -> None:
    """Canonicalising a canonical body changes nothing (except relaxed's empty form)."""
    for method in Canonicalization:
        once = canonicalize_body(body, method)

        assert canonicalize_body(once, method) == once
        assert once == b"" or once.endswith(b"\r\n")


# -- the fast canonicalisation against a literal reading of RFC 6376 ---------------------------


def _reference_lines(body: bytes) -> list[bytes]:
    """The body's lines without their line ends: LF ends a line, a CR just before it too."""
    lines = body.split(b"\n")
    unterminated = lines.pop()
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    if unterminated:
        lines.append(unterminated)
    return lines


def _reference_relaxed_line(line: bytes) -> bytes:
    """RFC 6376 §3.4.4 on one line: WSP at its end deleted, every WSP run made one SP."""
    out = bytearray()
    in_run = False
    for byte in line:
        if byte in b" \t":
            in_run = True
            continue
        if in_run:
            out += b" "
            in_run = False
        out.append(byte)
    return bytes(out)


def reference_body(body: bytes, method: Canonicalization) -> bytes:
    """RFC 6376 §3.4.3 and §3.4.4 applied one line at a time, as the RFC words them."""
    lines = _reference_lines(body)
    if method is RELAXED:
        lines = [_reference_relaxed_line(line) for line in lines]
    while lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        return b"\r\n" if method is SIMPLE else b""
    return b"".join(line + b"\r\n" for line in lines)


def reference_relaxed_header(raw: bytes) -> bytes:
    """RFC 6376 §3.4.2 step by step: name lower-cased, value unfolded, squeezed, stripped."""
    name, _, value = raw.partition(b":")
    unfolded = bytearray()
    for index, byte in enumerate(value):
        if byte == 0x0A or (byte == 0x0D and value[index + 1 : index + 2] == b"\n"):
            continue
        unfolded.append(byte)
    squeezed = _reference_relaxed_line(b"x" + bytes(unfolded) + b"x")[1:-1]
    return name.strip(b" \t").lower() + b":" + squeezed.strip(b" ") + b"\r\n"


#: Any octets, weighted towards those canonicalisation cares about.
awkward_bytes = st.lists(
    st.sampled_from([b" ", b"\t", b"\r", b"\n", b"\r\n", b"\r\r\n", b"  ", b"a", b"\x00", b"\xff"])
    | st.binary(max_size=4),
    max_size=60,
).map(b"".join)


@given(awkward_bytes)
def test_fast_body_canonicalisation_matches_the_line_by_line_reference(body: bytes) -> None:
    """Bare CR, bare LF, trailing WSP, empty lines at the end, no final CRLF: as the RFC says."""
    for method in Canonicalization:
        assert canonicalize_body(body, method) == reference_body(body, method)


@given(awkward_bytes, st.lists(st.integers(min_value=0, max_value=80), max_size=8))
def test_streamed_body_canonicalisation_matches_the_reference(
    body: bytes, cuts: list[int]
) -> None:
    """BodyCanonicalizer fed in arbitrary pieces (a CRLF may be cut) gives the reference."""
    for method in Canonicalization:
        canonicalizer = BodyCanonicalizer(method)
        edges = sorted({0, len(body), *(cut for cut in cuts if cut < len(body))})

        pieces = [canonicalizer.feed(body[a:b]) for a, b in itertools.pairwise(edges)]
        pieces.append(canonicalizer.finish())

        assert b"".join(pieces) == reference_body(body, method)


@given(st.sampled_from([b"Subject", b" SuBj \t", b"X-A"]), awkward_bytes)
def test_relaxed_header_canonicalisation_matches_the_reference(name: bytes, value: bytes) -> None:
    """canonicalize_header's relaxed form is RFC 6376 §3.4.2 step by step."""
    raw = name + b":" + value

    assert canonicalize_header(raw, RELAXED) == reference_relaxed_header(raw)


def test_a_crlf_cut_between_pieces_is_still_one_line_end() -> None:
    """A CR at the end of one piece and the LF starting the next make one CRLF."""
    canonicalizer = BodyCanonicalizer(SIMPLE)

    out = canonicalizer.feed(b"a\r") + canonicalizer.feed(b"\nb\r\r") + canonicalizer.feed(b"\n")

    assert out + canonicalizer.finish() == b"a\r\nb\r\r\n"


def test_empty_lines_held_across_pieces_are_restored_before_content() -> None:
    """Empty lines ending one piece are emitted once a later piece brings content."""
    canonicalizer = BodyCanonicalizer(RELAXED)

    first = canonicalizer.feed(b"a\r\n \r\n\r\n")
    second = canonicalizer.feed(b"\t\r\nb\r\n")

    assert (first, second) == (b"a\r\n", b"\r\n\r\n\r\nb\r\n")
    assert canonicalizer.finish() == b""
