"""Tests for mailwright.headers: the Message-ID the event log reports."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailwright.headers import message_id


def test_message_id_is_found_in_any_case_and_trimmed() -> None:
    """The field name is case-insensitive; spaces around the value go."""
    content = b"Subject: x\r\nmessage-ID:   <a.b@example.test>  \r\n\r\nbody\r\n"

    assert message_id(content) == "<a.b@example.test>"


def test_a_folded_message_id_is_unfolded() -> None:
    """A value continued on the next line (RFC 5322 folding) comes back in one piece."""
    content = b"Message-ID:\r\n <folded@example.test>\r\nSubject: x\r\n\r\n"

    assert message_id(content) == "<folded@example.test>"


def test_only_the_header_section_counts() -> None:
    """A Message-ID line in the body, or a field that merely ends in Message-ID, is not it."""
    in_body = b"Subject: x\r\n\r\nMessage-ID: <body@example.test>\r\n"
    lookalike = b"X-Original-Message-ID: <other@example.test>\r\n\r\n"

    assert message_id(in_body) is None
    assert message_id(lookalike) is None


def test_the_first_line_may_be_the_message_id() -> None:
    """A header section that starts with the field is read from its first octet."""
    assert message_id(b"Message-ID: <first@example.test>\r\n\r\n") == "<first@example.test>"


@given(st.binary(max_size=300))
def test_any_bytes_give_an_unfolded_string_or_none(content: bytes) -> None:
    """Arbitrary content never raises; a value holds no CRLF and fits one line."""
    found = message_id(content)

    assert found is None or ("\r\n" not in found and 0 < len(found) <= 998)
