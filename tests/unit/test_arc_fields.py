"""Parsing the three ARC header fields (RFC 8617 §4.1): every problem is a reason, not a raise."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwright.auth.arc import ChainStatus
from mailwright.auth.arc.fields import (
    ArcAuthenticationResults,
    MessageSignature,
    Seal,
    parse_aar,
    parse_message_signature,
    parse_seal,
    read_instance,
)
from mailwright.auth.dkim.canonical import Canonicalization
from mailwright.auth.dkim.tags import Malformed
from mailwright.auth.message import HeaderField

SEAL = b"i=1; a=ed25519-sha256; cv=none; d=example.org; s=s; t=1; b=AAAA"
AMS = b"i=1; a=rsa-sha256; d=example.org; s=s; h=from:to; bh=AAAA; b=AAAA"


def field(name: str, value: bytes) -> HeaderField:
    return HeaderField(name, name.encode() + b": " + value + b"\r\n")


class TestSeal:
    def test_a_good_seal_parses(self) -> None:
        """Every tag of a valid ARC-Seal is read."""
        seal = parse_seal(field("ARC-Seal", SEAL))

        assert isinstance(seal, Seal)
        assert (seal.instance, seal.cv, seal.domain, seal.timestamp) == (
            1,
            ChainStatus.NONE,
            "example.org",
            1,
        )
        assert seal.key_name == "s._domainkey.example.org"

    @pytest.mark.parametrize(
        ("change", "reason"),
        [
            ((b"cv=none; ", b""), "cv= is missing"),
            ((b"cv=none", b"cv=Pass"), "not none, pass or fail"),
            ((b"b=AAAA", b"b=!!!!"), "not valid base64"),
            ((b"b=AAAA", b"b="), "b= is empty"),
            ((b"a=ed25519-sha256", b"a=rsa-md5"), "not a known algorithm"),
            ((b"d=example.org", b"d=***"), "not a domain name"),
            ((b"t=1", b"t=soon"), "not a decimal number"),
            ((b"t=1", b"t=1; h=from"), "h= is not allowed"),
            ((b"s=s", b"S=s"), "s= is missing"),
            ((b"s=s", b"s=s; s=s"), "appears twice"),
        ],
    )
    def test_a_broken_seal_says_why(self, change: tuple[bytes, bytes], reason: str) -> None:
        """Each rule of RFC 8617 §4.1.3 broken gives a Malformed naming it."""
        parsed = parse_seal(field("ARC-Seal", SEAL.replace(*change)))

        assert isinstance(parsed, Malformed)
        assert reason in parsed.reason


class TestMessageSignature:
    def test_a_good_signature_parses_with_relaxed_default(self) -> None:
        """Without c= an AMS is read as relaxed/relaxed, as sealers and the suite expect."""
        parsed = parse_message_signature(field("ARC-Message-Signature", AMS))

        assert isinstance(parsed, MessageSignature)
        assert parsed.headers == ("from", "to")
        assert parsed.header_canon is Canonicalization.RELAXED
        assert parsed.body_canon is Canonicalization.RELAXED

    def test_empty_names_in_h_select_nothing(self) -> None:
        """h=from::to and an empty h= are accepted, empty names dropped."""
        doubled = parse_message_signature(
            field("ARC-Message-Signature", AMS.replace(b"h=from:to", b"h=from::to"))
        )
        empty = parse_message_signature(
            field("ARC-Message-Signature", AMS.replace(b"h=from:to", b"h="))
        )

        assert isinstance(doubled, MessageSignature)
        assert doubled.headers == ("from", "to")
        assert isinstance(empty, MessageSignature)
        assert empty.headers == ()

    @pytest.mark.parametrize(
        ("change", "reason"),
        [
            ((b"h=from:to", b"h=from:arc-seal"), "must not sign"),
            ((b"bh=AAAA", b"bh=A A A"), "not valid base64"),
            ((b"i=1", b"i=a"), "not an instance number"),
            ((b"s=s", b"s=s; c="), "no known canonicalisation"),
            ((b"s=s", b"s=s; l=x"), "not a decimal number"),
            ((b"a=rsa-sha256; ", b""), "a= is missing"),
        ],
    )
    def test_a_broken_signature_says_why(self, change: tuple[bytes, bytes], reason: str) -> None:
        """Each rule of RFC 8617 §4.1.2 broken gives a Malformed naming it."""
        parsed = parse_message_signature(field("ARC-Message-Signature", AMS.replace(*change)))

        assert isinstance(parsed, Malformed)
        assert reason in parsed.reason


class TestAuthenticationResults:
    def test_the_payload_is_kept_and_parsed(self) -> None:
        """The i= prefix is read and the rest parsed as RFC 8601 text."""
        parsed = parse_aar(field("ARC-Authentication-Results", b"i=2; mx.example; spf=pass"))

        assert isinstance(parsed, ArcAuthenticationResults)
        assert parsed.instance == 2
        assert parsed.authserv_id == "mx.example"
        assert parsed.payload == "mx.example; spf=pass"

    def test_a_payload_that_does_not_parse_is_still_a_set_member(self) -> None:
        """Garbage after i=N; leaves results None but the field counts (§5.2 ignores it)."""
        parsed = parse_aar(field("ARC-Authentication-Results", b"i=1; ((("))

        assert isinstance(parsed, ArcAuthenticationResults)
        assert parsed.results is None
        assert parsed.authserv_id == ""

    @pytest.mark.parametrize(
        "value", [b"mx.example; i=1; spf=pass", b"i=1 mx.example; spf=pass", b"i=;", b""]
    )
    def test_a_missing_or_misplaced_instance_is_refused(self, value: bytes) -> None:
        """i=N; must come first, with its semicolon."""
        assert isinstance(read_instance(field("ARC-Authentication-Results", value)), str)


@given(st.binary(max_size=200))
def test_no_parser_raises_on_any_octets(data: bytes) -> None:
    """Arbitrary values give a parsed field or a reason, never an exception."""
    for name in ("ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results"):
        header = HeaderField(name, name.encode() + b":" + data)
        instance = read_instance(header)
        assert isinstance(instance, int | str)
        if isinstance(instance, int):
            assert 1 <= instance <= 50
    assert isinstance(parse_seal(HeaderField("ARC-Seal", b"ARC-Seal:" + data)), Seal | Malformed)
