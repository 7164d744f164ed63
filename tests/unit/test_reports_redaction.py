"""Header redaction for failure reports (mailwright.reports.redaction, RFC 6590)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwright.reports.redaction import TOKEN_PREFIX, Redaction

SECRET = b"a test secret of 32 octets......"


def test_tokens_depend_on_the_secret() -> None:
    """Without the secret, nobody can check a guessed local part against a token."""
    first = Redaction(secret=SECRET).token("alice")
    second = Redaction(secret=b"another secret of enough octets!").token("alice")

    assert first != second
    assert first.startswith(TOKEN_PREFIX)
    assert Redaction().token("alice") != first  # a random secret by default


def test_a_short_secret_is_refused() -> None:
    """A guessable secret would make tokens reversible: fewer than 16 octets is an error."""
    with pytest.raises(ValueError, match="16 octets"):
        Redaction(secret=b"short")


def test_subject_can_be_kept_with_its_addresses_redacted() -> None:
    """remove_subject=False keeps the Subject, still without local parts."""
    message = b"From: alice@example.org\r\nSubject: ask frank@example.org\r\n\r\nbody\r\n"
    redaction = Redaction(secret=SECRET, remove_subject=False)

    header, omitted = redaction.header(message)
    assert f"Subject: ask {redaction.token('frank')}@example.org\r\n".encode() in header
    assert omitted == 0


def test_display_names_can_be_kept() -> None:
    """remove_display_names=False redacts addresses in place and keeps the names."""
    redaction = Redaction(secret=SECRET, remove_display_names=False)

    header, _ = redaction.header(b"To: Bob <bob@example.net>\r\n\r\n")
    assert header == f"To: Bob <{redaction.token('bob')}@example.net>\r\n".encode()


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (b"Return-Path: <>\r\n", b"Return-Path: <>\r\n"),
        (b"To: undisclosed-recipients:;\r\n", b"To: undisclosed-recipients:;\r\n"),
        (b"To: John Smith\r\n", b"To: <redacted>\r\n"),
    ],
    ids=["null path", "empty group", "a name without address"],
)
def test_address_fields_without_addresses(field: bytes, expected: bytes) -> None:
    """An address field with no address keeps only what cannot identify anyone."""
    header, _ = Redaction(secret=SECRET).header(field + b"\r\n")

    assert header == expected


def test_structured_field_names_stay_readable() -> None:
    """name= before an address (envelope-from=, smtp.mailfrom=) is kept; SRS is not split."""
    redaction = Redaction(secret=SECRET)
    field = (
        b"Received-SPF: pass (mx: domain of alice@example.org designates 192.0.2.7)"
        b" envelope-from=alice@example.org;\r\n"
        b"Received: by fwd.example (envelope-from <SRS0=ab=cd=example.org=alice@fwd.example>)\r\n"
    )

    header, _ = redaction.header(field + b"\r\n")
    alice = redaction.token("alice")
    srs = redaction.token("SRS0=ab=cd=example.org=alice")
    assert f"envelope-from={alice}@example.org;".encode() in header
    assert f"domain of {alice}@example.org".encode() in header
    assert f"<{srs}@fwd.example>".encode() in header


def test_lines_without_a_colon_are_left_out() -> None:
    """A message without an empty line: lines that are not fields may be body text."""
    message = b"From: alice@example.org\r\nMessage-ID: <1@example.org>\r\nhello there bob\r\n"

    header, _ = Redaction(secret=SECRET).header(message)
    assert b"hello there" not in header
    assert header.startswith(b"From: <redacted-")


def test_header_past_the_limit_is_cut_and_counted() -> None:
    """Fields past the size limit are left out; the count is reported."""
    message = b"".join(b"X-Trace-%d: %s\r\n" % (n, b"x" * 90) for n in range(10)) + b"\r\n"

    header, omitted = Redaction(secret=SECRET).header(message, limit=520)  # 103 octets each
    assert omitted == 5
    assert header.count(b"\r\n") == 5


@given(local=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.!#$%&'*+/=?^_`{|}~-"))
def test_no_local_part_survives_in_an_address_field(local: str) -> None:
    """Whatever the local part (marked by a leading Q), it never reaches the output."""
    local = "Q" + local
    message = f"To: Someone <{local}@example.net>\r\nCc: {local}@example.net\r\n\r\n".encode()

    header, _ = Redaction(secret=SECRET).header(message)
    assert local.encode() not in header
    assert b"Q" not in header


@given(data=st.binary(max_size=2000))
def test_redaction_never_raises_and_never_passes_the_empty_line(data: bytes) -> None:
    """Any octets give CRLF-ended fields from before the first empty line only."""
    header, _ = Redaction(secret=SECRET).header(data + b"\r\n\r\nBODYMARK\r\n")

    assert b"BODYMARK" not in header
    assert not header or header.endswith(b"\r\n")
    assert header.count(b"\r") == header.count(b"\r\n") == header.count(b"\n")


def test_tokens_are_valid_local_parts() -> None:
    """A token is a dot-atom of the prefix and ten base32 letters, whatever it replaces."""
    token = Redaction(secret=SECRET).token('"with space"')

    assert len(token) == len(TOKEN_PREFIX) + 10
    assert token[len(TOKEN_PREFIX) :].isalnum()
    assert token.isascii()


@pytest.mark.parametrize(
    ("address", "expected_domain"),
    [("alice@example.org", "@example.org"), ("a@b@example.org", "@example.org")],
)
def test_address_keeps_the_domain_after_the_last_at(address: str, expected_domain: str) -> None:
    """address() replaces everything before the last @ and keeps the domain."""
    redacted = Redaction(secret=SECRET).address(address)

    assert redacted.endswith(expected_domain)
    assert redacted.startswith(TOKEN_PREFIX)


def test_an_address_without_at_becomes_one_token() -> None:
    """A bare local part (a postmaster-style path) is itself replaced."""
    assert Redaction(secret=SECRET).address("postmaster").startswith(TOKEN_PREFIX)
    assert Redaction(secret=SECRET).address("") == ""


def test_urls_can_be_left_alone() -> None:
    """defang_urls=False keeps http links as they were."""
    redaction = Redaction(secret=SECRET, defang_urls=False)

    header, _ = redaction.header(b"List-Help: <https://lists.example.org/help>\r\n\r\n")
    assert header == b"List-Help: <https://lists.example.org/help>\r\n"


def test_an_undecodable_encoded_word_is_replaced_whole() -> None:
    """An encoded-word in an unknown charset could hide anything: it goes."""
    redaction = Redaction(secret=SECRET, remove_subject=False)

    header, _ = redaction.header(b"Subject: =?x-nonesuch?b?YWxpY2VAZXhhbXBsZS5vcmc=?= hi\r\n\r\n")
    assert header == b"Subject: =?us-ascii?q?redacted?= hi\r\n"


def test_message_id_fields_are_kept_as_they_are() -> None:
    """Message-ID, In-Reply-To and References identify messages, not people."""
    message = (
        b"Message-ID: <1.alice@example.org>\r\n"
        b"In-Reply-To: <0.bob@example.net>\r\n"
        b"References: <0.bob@example.net>\n <1.alice@example.org>\r\n\r\n"
    )

    header, _ = Redaction(secret=SECRET).header(message)
    assert header == message.replace(b"\r\n\r\n", b"\r\n").replace(b">\n ", b">\r\n ")


def test_header_copies_in_a_dkim_signature_are_emptied() -> None:
    """z= copies From and Subject quoted-printable, "@" as "=40": the copies go, b= stays."""
    message = (
        b"DKIM-Signature: v=1; d=example.org; s=s1;\r\n"
        b"\tz=From:alice=40example.org|Subject:secret=20plans; bh=YWJj; b=ZGVm\r\n\tz=\r\n\r\n"
    )

    header, _ = Redaction(secret=SECRET).header(message)
    assert header == (
        b"DKIM-Signature: v=1; d=example.org; s=s1;\r\n\tz=; bh=YWJj; b=ZGVm\r\n\tz=\r\n"
    )
