"""Tests for mailwright.auth.message: header fields kept as they travelled."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailwright.auth.message import HeaderField, parse_message


def test_fields_keep_their_raw_octets_and_folding() -> None:
    """A folded field is one field whose raw bytes hold both lines."""
    message = parse_message(b"Subject: one\r\n two\r\nFrom: a@example.test\r\n\r\nbody\r\n")

    subject, sender = message.headers
    assert subject.raw == b"Subject: one\r\n two\r\n"
    assert subject.unfolded == "one two"
    assert sender.name == "From"
    assert message.body == b"body\r\n"


def test_fields_are_found_by_name_in_any_case() -> None:
    """fields() matches names without regard to case, in order from the top."""
    message = parse_message(b"Received: a\r\nreceived: b\r\nX: c\r\n\r\n")

    assert [f.unfolded for f in message.fields("RECEIVED")] == ["a", "b"]


def test_a_message_without_body_is_all_header() -> None:
    """No empty line: every line is header, the body is empty."""
    message = parse_message(b"From: a@example.test\r\nTo: b@example.test\r\n")

    assert len(message.headers) == 2
    assert message.body == b""


@given(st.binary(max_size=500))
def test_nothing_of_the_header_section_is_lost(content: bytes) -> None:
    """The fields' raw octets, an empty line and the body give back the input."""
    message = parse_message(content)

    rebuilt = b"".join(field.raw for field in message.headers)
    assert content.startswith(rebuilt)
    assert content.endswith(message.body)


@given(st.binary(max_size=500))
def test_each_field_keeps_its_name_in_lower_case(content: bytes) -> None:
    """lower_name, computed once at parse time, is the name in lower case."""
    message = parse_message(content)

    for field in message.headers:
        assert field.lower_name == field.name.lower()
    assert HeaderField("X-Mixed-Case", b"X-Mixed-Case: 1\r\n").lower_name == "x-mixed-case"
