"""Header edits on a message's raw octets (policy/edits.py and the Message context)."""

from __future__ import annotations

import pytest

from mailwright.envelope import Envelope, Recipient
from mailwright.policy import Connection, Message, Transaction
from mailwright.policy.context import HeaderEdit, parse_headers, split_header
from mailwright.policy.edits import apply_edits

HEADER = (
    b"Received: from a.example (a.example [192.0.2.1])\r\n"
    b"\tby mx.example.test; Thu, 3 Dec 2026 10:00:00 +0000\r\n"
    b"X-Spam: yes\r\n"
    b"From: Alice <a@example.org>\r\n"
    b"Subject: a long subject\r\n"
    b"  folded on two lines\r\n"
    b"x-spam: also\r\n"
    b"To: b@example.test\r\n"
)
# A body with what looks like header fields, trailing spaces, a bare CR and a final line
# without CRLF: none of it may change.
BODY = b"\r\nX-Spam: in the body\r\nline with spaces   \r\nbare\rcr\r\n\r\nlast"
CONTENT = HEADER + BODY


def _message(content: bytes = CONTENT) -> Message:
    connection = Connection("s1", "192.0.2.1", 4000, "127.0.0.1", 25, "inbound")
    transaction = Transaction(connection, "a@example.org", {})
    envelope = Envelope("a@example.org", [Recipient("b@example.test")])
    return Message(transaction, envelope, content)


def _edited(message: Message) -> bytes:
    return apply_edits(message.content, message.edits)


def _body(content: bytes) -> bytes:
    return content[content.index(b"\r\n\r\n") + 2 :]


class TestAdd:
    """add_header prepends fields in the order they were asked for."""

    def test_added_fields_go_on_top_in_order(self) -> None:
        """Two fields added come first, in order; the rest is the original octets."""
        message = _message()
        message.add_header("X-Tenant", "acme")
        message.add_header("X-Campaign", "spring")

        edited = _edited(message)

        assert edited == b"X-Tenant: acme\r\nX-Campaign: spring\r\n" + CONTENT

    def test_prepend_goes_above_the_added_fields(self) -> None:
        """Our own Authentication-Results (``prepend``) sits above what hooks added."""
        edits = [HeaderEdit("add", "X-A", "1")]

        edited = apply_edits(b"S: x\r\n\r\nb", edits, b"Authentication-Results: mx; none\r\n")

        assert edited == b"Authentication-Results: mx; none\r\nX-A: 1\r\nS: x\r\n\r\nb"

    def test_a_value_over_998_octets_is_folded(self) -> None:
        """A long value is folded at spaces into lines RFC 5322 allows."""
        message = _message(b"S: x\r\n\r\nbody")
        value = " ".join(f"word{index}" for index in range(300))
        message.add_header("X-Long", value)

        edited = _edited(message)

        header, _, body = edited.partition(b"\r\n\r\n")
        assert body == b"body"
        assert all(len(line) <= 998 for line in header.split(b"\r\n"))
        assert parse_headers(edited)[0] == ("X-Long", value)

    @pytest.mark.parametrize(
        ("name", "value", "why"),
        [
            ("X Bad", "v", "not a header field name"),
            ("X-Bad:", "v", "not a header field name"),
            ("", "v", "not a header field name"),
            ("X-Ok", "one\r\nBcc: injected@example.org", "line break"),
            ("X-Ok", "one\nSecond: line", "line break"),
            ("X-Ok", "nul\x00", "NUL"),
            ("X-Ok", "x" * 1200, "longer than 998 octets"),
        ],
    )
    def test_a_bad_name_or_value_raises_at_once(self, name: str, value: str, why: str) -> None:
        """Header injection and unfoldable lines fail in the hook, not on the wire."""
        message = _message()

        with pytest.raises(ValueError, match=why):
            message.add_header(name, value)
        assert message.edits == []


class TestRemove:
    """remove_header drops received fields by name, any case, folded lines included."""

    def test_every_field_of_the_name_is_removed_in_any_case(self) -> None:
        """``X-Spam`` and ``x-spam`` both go; the body's look-alike stays."""
        message = _message()
        message.remove_header("X-SPAM")

        edited = _edited(message)

        assert b"X-Spam: yes" not in edited
        assert b"x-spam: also" not in edited
        assert edited == CONTENT.replace(b"X-Spam: yes\r\n", b"").replace(b"x-spam: also\r\n", b"")
        assert b"X-Spam: in the body" in edited

    def test_a_folded_field_goes_with_all_its_lines(self) -> None:
        """The continuation lines of Subject and Received are removed with them."""
        message = _message()
        message.remove_header("Subject")
        message.remove_header("Received")

        edited = _edited(message)

        assert b"folded on two lines" not in edited
        assert b"by mx.example.test" not in edited
        assert edited.startswith(b"X-Spam: yes\r\nFrom: Alice <a@example.org>\r\nx-spam: also\r\n")

    def test_matches_selects_fields_by_their_unfolded_value(self) -> None:
        """Only fields whose unfolded value matches are removed."""
        message = _message()
        seen: list[str] = []

        def matches(value: str) -> bool:
            seen.append(value)
            return value == "a long subject folded on two lines"

        message.remove_header("subject", matches)
        message.remove_header("X-Spam", lambda value: value == "also")

        edited = _edited(message)

        assert seen == ["a long subject folded on two lines"]
        assert b"Subject:" not in edited
        assert b"X-Spam: yes" in edited
        assert b"x-spam: also" not in edited

    def test_matches_sees_the_value_headers_shows(self) -> None:
        """Comparing with ``message.header()`` works even with inner runs of spaces."""
        message = _message(b"X-Id:   a  b\r\n\tc\r\nS: x\r\n\r\nbody")
        value = message.header("X-Id")
        message.remove_header("X-Id", lambda candidate: candidate == value)

        assert value == "a  b c"
        assert _edited(message) == b"S: x\r\n\r\nbody"

    def test_add_and_remove_of_the_same_name_keeps_the_added_field(self) -> None:
        """Replacing a field: the received ones go, the one added stays."""
        message = _message()
        message.remove_header("X-Spam")
        message.add_header("X-Spam", "no")

        edited = _edited(message)

        assert edited.startswith(b"X-Spam: no\r\nReceived: ")
        assert edited.count(b"pam: ") == 2  # ours, and the body's look-alike

    def test_a_message_without_a_body_loses_only_the_field(self) -> None:
        """A header with no empty line after it: the last field can still be removed."""
        message = _message(b"A: 1\r\nB: 2")
        message.remove_header("B")

        assert _edited(message) == b"A: 1\r\n"

    def test_a_line_that_is_not_a_field_does_not_end_the_header(self) -> None:
        """A line without a colon is kept; fields after it are read and edited (as DMARC reads)."""
        content = b"A: 1\r\nnot a field\r\nFrom: x@example.org\r\nB: 2\r\n\r\nbody"
        message = _message(content)
        message.remove_header("B")

        assert message.headers == [("A", "1"), ("From", "x@example.org"), ("B", "2")]
        assert _edited(message) == b"A: 1\r\nnot a field\r\nFrom: x@example.org\r\n\r\nbody"

    def test_the_header_ends_only_at_the_empty_line(self) -> None:
        """A white-space-only line continues the field above it; it does not end the header."""
        content = b"A: 1\r\n \r\nB: 2\r\n\r\nB: body\r\n"
        message = _message(content)
        message.remove_header("A")

        assert _edited(message) == b"B: 2\r\n\r\nB: body\r\n"


class TestBodyUntouched:
    """Edits never change one octet after the header."""

    def test_the_body_is_byte_for_byte_the_same(self) -> None:
        """Adds and removes together leave the body, bare CR and missing final CRLF intact."""
        message = _message()
        message.add_header("X-Tenant", "acme")
        message.remove_header("X-Spam")
        message.remove_header("Subject")

        assert _body(_edited(message)) == BODY

    def test_kept_fields_keep_their_octets(self) -> None:
        """Folding, tabs and case of the fields not removed are as received."""
        message = _message()
        message.remove_header("To")

        assert _edited(message) == CONTENT.replace(b"To: b@example.test\r\n", b"")

    def test_no_edits_returns_the_content_itself(self) -> None:
        """Without edits the octets are passed through unchanged."""
        assert apply_edits(CONTENT, []) == CONTENT


class TestHeaders:
    """What hooks read: unfolded, stripped values in order."""

    def test_headers_are_unfolded_in_order(self) -> None:
        """Folded values are joined by single spaces; order and duplicates are kept."""
        message = _message()

        assert message.headers == [
            ("Received", "from a.example (a.example [192.0.2.1]) by mx.example.test; "
             "Thu, 3 Dec 2026 10:00:00 +0000"),
            ("X-Spam", "yes"),
            ("From", "Alice <a@example.org>"),
            ("Subject", "a long subject folded on two lines"),
            ("x-spam", "also"),
            ("To", "b@example.test"),
        ]  # fmt: skip
        assert message.header("x-SPAM") == "yes"
        assert message.header_all("X-Spam") == ["yes", "also"]
        assert message.header("Cc") is None

    def test_a_field_with_an_empty_first_line_has_no_leading_space(self) -> None:
        """``X:`` then a folded value reads as the value alone."""
        assert parse_headers(b"X:\r\n  folded\r\n\r\n") == [("X", "folded")]

    def test_split_header_loses_nothing(self) -> None:
        """The raw fields and the rest join back into the content."""
        fields, rest = split_header(CONTENT)

        assert b"".join(fields) + rest == CONTENT
        assert rest == BODY
        assert len(fields) == 6
