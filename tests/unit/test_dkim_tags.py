"""Tests for the DKIM parsers: tag lists, DKIM-Signature fields and key records."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwright.auth.dkim.algorithms import Algorithm
from mailwright.auth.dkim.canonical import Canonicalization
from mailwright.auth.dkim.keyrecord import MAX_KEY_RECORD_OCTETS, KeyRecord, parse_key_record
from mailwright.auth.dkim.signature import (
    Signature,
    _header_names,
    _header_names_checked,
    decode_quoted_printable,
    parse_signature,
)
from mailwright.auth.dkim.tags import (
    _VALID_SPEC,
    Malformed,
    Tag,
    TagList,
    _check_value,
    _matched_tag,
    _read_spec,
    _value_problem,
    format_tag_list,
    parse_tag_list,
)

B64 = base64.b64encode(b"\x01" * 32).decode()
GOOD = f"v=1; a=rsa-sha256; d=example.com; s=sel; h=from:to; bh={B64}; b={B64}"

#: Bits of tag values around folding: line breaks with and without the WSP
#: that makes them folding, control characters, octets above 0x7F.
FOLDING_PIECES = [" ", "\t", "\r", "\n", "\r\n", "\r\n ", "\n\t", "a", "=", "\x00", "\x7f", "\xe9"]


def signature(text: str) -> Signature:
    """Parse ``text``, failing the test if it does not parse."""
    parsed = parse_signature(text)
    assert isinstance(parsed, Signature), parsed
    return parsed


def problem(text: str) -> str:
    """The reason ``text`` does not parse as a signature."""
    parsed = parse_signature(text)
    assert isinstance(parsed, Malformed), parsed
    return parsed.reason


class TestTagList:
    def test_tags_keep_their_order_and_values_lose_surrounding_space(self) -> None:
        """Names and values are read with the FWS around them removed."""
        parsed = parse_tag_list(" v = 1 ;\r\n\ta=b c ; ")

        assert isinstance(parsed, TagList)
        assert parsed.as_dict() == {"v": "1", "a": "b c"}

    def test_folding_inside_a_value_is_kept(self) -> None:
        """A folded value keeps its folding; compact removes all white space."""
        parsed = parse_tag_list("b=ab\r\n cd")

        assert isinstance(parsed, TagList)
        tag = parsed.find("b")
        assert tag is not None
        assert (tag.value, tag.compact) == ("ab\r\n cd", "abcd")

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("", "the list is empty"),
            ("v=1;;a=2", "tag-spec 2 is empty"),
            ("v=1; a", "tag-spec 2: no '=' in ' a'"),
            ("v=1; 9a=2", "tag-spec 2: '9a' is not a tag name"),
            ("v=1; a b=2", "tag-spec 2: 'a b' is not a tag name"),
            ("v=1; v=2", "tag 'v' appears twice"),
            ("v=1\x07", "tag-spec 1: value of 'v' holds the control character 0x07"),
            ("v=1\r\nx", "tag-spec 1: value of 'v' has a line break not followed by white space"),
        ],
    )
    def test_errors_name_the_tag_spec_and_the_rule(self, text: str, reason: str) -> None:
        """Each syntax error of RFC 6376 §3.2 has its own reason."""
        parsed = parse_tag_list(text)

        assert isinstance(parsed, Malformed)
        assert parsed.reason == reason

    def test_names_are_case_sensitive(self) -> None:
        """RFC 6376 §3.2: V and v are different tags."""
        parsed = parse_tag_list("v=1; V=2")

        assert isinstance(parsed, TagList)
        assert parsed.get("V") == "2"

    def test_tags_read_before_an_error_are_kept(self) -> None:
        """A Malformed keeps the tags before the problem, for reporting."""
        parsed = parse_tag_list("d=example.com; s=sel; oops")

        assert isinstance(parsed, Malformed)
        assert parsed.partial.as_dict() == {"d": "example.com", "s": "sel"}

    def test_bytes_values_are_decoded_as_utf8_and_offsets_are_octets(self) -> None:
        """Octet offsets let b= be cut from raw bytes; values decode as UTF-8."""
        data = "i=jos\u00e9@example.com; b=xy".encode()

        parsed = parse_tag_list(data)

        assert isinstance(parsed, TagList)
        assert parsed.get("i") == "jos\u00e9@example.com"
        tag = parsed.find("b")
        assert tag is not None
        assert data[tag.start : tag.end] == b"xy"

    def test_format_is_the_inverse_of_parse(self) -> None:
        """format_tag_list writes what parse_tag_list reads back."""
        text = format_tag_list([("v", "1"), ("h", "from:to")])

        parsed = parse_tag_list(text)
        assert text == "v=1; h=from:to"
        assert isinstance(parsed, TagList)
        assert parsed.as_dict() == {"v": "1", "h": "from:to"}

    @pytest.mark.parametrize(("name", "value"), [("1x", "v"), ("a", "x;y"), ("a", "x\x00")])
    def test_format_refuses_what_cannot_be_read_back(self, name: str, value: str) -> None:
        """Names and values that would not parse are programming errors."""
        with pytest.raises(ValueError, match="tag"):
            format_tag_list([(name, value)])

    @given(st.text(max_size=200) | st.binary(max_size=200))
    def test_parsing_never_raises(self, data: str | bytes) -> None:
        """Any input gives a TagList or a Malformed."""
        assert isinstance(parse_tag_list(data), TagList | Malformed)

    def test_a_hand_built_list_finds_the_first_of_a_repeated_name(self) -> None:
        """TagList's name index keeps the first tag of a name, as a scan in order would."""
        tags = TagList((Tag("a", "1", 2, 3), Tag("b", "2", 6, 7), Tag("a", "3", 10, 11)))

        assert tags.get("a") == "1"
        assert "b" in tags
        assert "c" not in tags

    @given(st.lists(st.sampled_from(FOLDING_PIECES) | st.text(max_size=3), max_size=20))
    def test_the_fast_value_check_agrees_with_the_character_walk(self, pieces: list[str]) -> None:
        """_check_value's regular expressions accept exactly what the walk accepts."""
        value = "".join(pieces)

        assert _check_value(value) == _value_problem(value)

    @given(
        st.sampled_from(["", " ", "\r\n ", "\n\t", "\r\n"]),
        st.sampled_from(["v", "bh", "x_1", "1a"]),
        st.lists(st.sampled_from(FOLDING_PIECES), max_size=8),
    )
    def test_a_spec_read_in_one_match_is_read_alike_step_by_step(
        self, before: str, name: str, pieces: list[str]
    ) -> None:
        """Whatever _VALID_SPEC reads, _read_spec reads with the same name, value and offsets."""
        spec = before + name + "=" + "".join(pieces)
        match = _VALID_SPEC.match(spec)

        if match is not None and match.end() == len(spec):
            for decode in (False, True):
                assert _read_spec(spec, 0, len(spec), decode) == ("", _matched_tag(match, decode))

    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["", " ", "\r\n ", "\n\t"]),
                st.sampled_from(["v", "bh", "x_1", "a", "b", "d"]),
                st.lists(st.sampled_from(FOLDING_PIECES), max_size=6),
            ),
            min_size=1,
            max_size=5,
            unique_by=lambda spec: spec[1],
        ),
        st.booleans(),
    )
    def test_a_valid_list_parses_as_its_specs_read_step_by_step(
        self, specs: list[tuple[str, str, list[str]]], as_bytes: bool
    ) -> None:
        """Each tag of a parsed list is what _read_spec makes of its spec, offsets included."""
        texts = [before + name + "=" + "".join(pieces) for before, name, pieces in specs]
        text = ";".join(texts)
        if any(";" in piece for piece in texts):
            return

        parsed = parse_tag_list(text.encode("latin-1") if as_bytes else text)

        expected: list[Tag] = []
        position = 0
        for spec in texts:
            _, tag = _read_spec(text, position, position + len(spec), as_bytes)
            if tag is None:
                assert isinstance(parsed, Malformed)
                return
            expected.append(tag)
            position += len(spec) + 1
        assert parsed == TagList(tuple(expected))


class TestSignature:
    def test_a_minimal_signature_gets_the_defaults(self) -> None:
        """c= defaults to simple/simple, i= to @d=."""
        parsed = signature(GOOD)

        assert parsed.algorithm is Algorithm.RSA_SHA256
        assert (parsed.header_canon, parsed.body_canon) == (
            Canonicalization.SIMPLE,
            Canonicalization.SIMPLE,
        )
        assert parsed.identity == "@example.com"
        assert parsed.headers == ("from", "to")
        assert parsed.key_name == "sel._domainkey.example.com"

    def test_every_tag_is_read(self) -> None:
        """All tags of RFC 6376 §3.5 land in their fields."""
        text = (
            GOOD + "; c=relaxed; i=joe=40x@mail.example.com; l=10; q=dns/txt;"
            " t=100; x=200; z=From:=20a|To:b"
        )

        parsed = signature(text)

        assert parsed.header_canon is Canonicalization.RELAXED
        assert parsed.body_canon is Canonicalization.SIMPLE
        assert parsed.identity == "joe@x@mail.example.com"
        assert parsed.identity_domain == "mail.example.com"
        assert (parsed.body_length, parsed.timestamp, parsed.expiration) == (10, 100, 200)
        assert parsed.copied_headers == ("From: a", "To:b")

    def test_h_may_be_folded_around_colons(self) -> None:
        """FWS is allowed around the colons of h=; names are compared in lower case."""
        parsed = signature(GOOD.replace("h=from:to", "h=From :\r\n To"))

        assert parsed.headers == ("from", "to")

    def test_rsa_sha1_parses_so_that_it_can_be_reported(self) -> None:
        """rsa-sha1 is a known algorithm; refusing it is the verifier's decision."""
        assert signature(GOOD.replace("rsa-sha256", "rsa-sha1")).algorithm is Algorithm.RSA_SHA1

    @pytest.mark.parametrize(
        ("change", "reason"),
        [
            (("v=1; ", ""), "required tag v= is missing"),
            (("; s=sel", ""), "required tag s= is missing"),
            (("v=1", "v=2"), "v=2 is not 1 (RFC 6376 §3.5)"),
            (("rsa-sha256", "rsa-md5"), "a=rsa-md5 is not a known algorithm"),
            ((f"b={B64}", "b=!!"), "b= is not valid base64"),
            ((f"b={B64}", "b="), "b= is empty"),
            ((f"bh={B64}", "bh=abc"), "bh= is not valid base64"),
            (("d=example.com", "d=exa mple.com"), "d=exa mple.com is not a domain name"),
            (("d=example.com", "d=example..com"), "d=example..com is not a domain name"),
            (("s=sel", "s=se/l"), "s=se/l is not a selector (a DNS name)"),
            (("h=from:to", "h=to:subject"), "h= does not include From (RFC 6376 §5.4)"),
            (("h=from:to", "h=from::to"), "h= holds an empty name, which is not a field name"),
        ],
    )
    def test_each_broken_rule_has_its_reason(self, change: tuple[str, str], reason: str) -> None:
        """Precise reasons for every check of RFC 6376 §6.1.1 that needs no key."""
        assert problem(GOOD.replace(*change, 1)) == reason

    @pytest.mark.parametrize(
        ("extra", "reason"),
        [
            ("c=nowsp/simple", "c=nowsp/simple names no known canonicalisation"),
            ("i=joe@example.org", "i= domain example.org is not d=example.com or below it"),
            ("i=joe@badexample.com", "i= domain badexample.com is not d=example.com or below"),
            ("i=joe", "i=joe has no @"),
            ("i=joe=4@example.com", "i= is not valid dkim-quoted-printable"),
            ("l=-1", "l=-1 is not a decimal number"),
            ("t=soon", "t=soon is not a decimal number"),
            ("t=200; x=100", "x=100 is not after t=200 (RFC 6376 §3.5)"),
            ("q=http/well-known", "q=http/well-known offers no known query method (dns/txt)"),
        ],
    )
    def test_optional_tags_are_checked_too(self, extra: str, reason: str) -> None:
        """Optional tags, when present, must be valid."""
        assert problem(f"{GOOD}; {extra}").startswith(reason)

    def test_a_final_line_ending_is_not_part_of_the_value(self) -> None:
        """The field's value may come with its CRLF, as HeaderField.value gives it."""
        assert isinstance(parse_signature((GOOD + "\r\n").encode()), Signature)

    def test_quoted_printable_decodes_octets_as_utf8(self) -> None:
        """RFC 6376 §2.11 with RFC 8616: =XX octets, white space dropped."""
        assert decode_quoted_printable("jos=C3=A9 @x") == "jos\u00e9@x"
        assert decode_quoted_printable("a=Z1") is None

    @given(st.binary(max_size=400))
    def test_parsing_never_raises(self, data: bytes) -> None:
        """Any octets give a Signature or a Malformed."""
        assert isinstance(parse_signature(data), Signature | Malformed)

    @given(
        st.lists(
            st.sampled_from(
                [
                    "v=1",
                    "a=rsa-sha256",
                    "a=ed25519-sha256",
                    "d=example.com",
                    "s=s",
                    "h=from",
                    f"b={B64}",
                    f"bh={B64}",
                    "c=relaxed",
                    "i=@example.com",
                    "l=5",
                    "t=1",
                    "x=2",
                    "q=dns/txt",
                    "z=a",
                    "i=@",
                    "t=x",
                    "h=",
                    "c=",
                    "d=",
                    "b==",
                ]
            ),
            max_size=14,
        )
    )
    def test_parsing_plausible_signatures_never_raises(self, tags: list[str]) -> None:
        """Near-valid signatures reach every check without an exception."""
        assert isinstance(parse_signature("; ".join(tags)), Signature | Malformed)

    @given(
        st.lists(
            st.sampled_from(["from", "To", "x-a_b", "", " ", "\t", "\r\n ", "\n", "\u212a", "é"])
            | st.text(max_size=3),
            max_size=10,
        )
    )
    def test_the_fast_h_list_agrees_with_the_name_by_name_check(self, pieces: list[str]) -> None:
        """_header_names' one-pattern fast path gives what checking each name gives."""
        value = ":".join(pieces)

        assert _header_names(value) == _header_names_checked(value)


class TestKeyRecord:
    def test_defaults_apply_when_only_p_is_given(self) -> None:
        """Only p= is required; k= defaults to rsa, s= to *, no h= restriction."""
        parsed = parse_key_record(f"p={B64}".encode())

        assert isinstance(parsed, KeyRecord)
        assert parsed.key_type == "rsa"
        assert parsed.allows_hash("sha256")
        assert parsed.serves_email
        assert not (parsed.revoked)
        assert not (parsed.testing)
        assert not (parsed.strict)

    def test_every_tag_is_read(self) -> None:
        """v h k n p s t of RFC 6376 §3.6.1."""
        text = f"v=DKIM1; h=sha1 : sha256; k=ed25519; n=hi; s=email:tlsrpt; t=y:s; p={B64}"

        parsed = parse_key_record(text.encode())

        assert isinstance(parsed, KeyRecord)
        assert parsed.key_type == "ed25519"
        assert parsed.hash_algorithms == frozenset({"sha1", "sha256"})
        assert parsed.services == {"email", "tlsrpt"}
        assert parsed.testing
        assert parsed.strict
        assert parsed.serves_email
        assert parsed.notes == "hi"
        assert parsed.public_key == b"\x01" * 32

    def test_an_empty_p_means_revoked(self) -> None:
        """RFC 6376 §3.6.1: an empty p= revokes the key."""
        parsed = parse_key_record(b"v=DKIM1; p=")

        assert isinstance(parsed, KeyRecord)
        assert parsed.revoked

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("k=rsa", "no p= tag"),
            (f"k=rsa; v=DKIM1; p={B64}", "v= is not the first tag"),
            (f"v=DKIM2; p={B64}", "v=DKIM2 is not DKIM1"),
            (f"v=DKIM1: g=*; p={B64}", "v=DKIM1: g=* is not DKIM1"),
            ("p=abc", "p= is not valid base64"),
            (f"p={B64};;", "tag-spec 2 is empty"),
        ],
    )
    def test_errors_have_reasons(self, text: str, reason: str) -> None:
        """Each broken rule of RFC 6376 §3.6.1 is named."""
        parsed = parse_key_record(text.encode())

        assert isinstance(parsed, Malformed)
        assert parsed.reason == reason

    def test_giant_records_are_refused_unread(self) -> None:
        """A record over the limit is refused by its size alone."""
        parsed = parse_key_record(b"p=" + b"A" * MAX_KEY_RECORD_OCTETS)

        assert isinstance(parsed, Malformed)
        assert "longer than" in parsed.reason

    @given(st.binary(max_size=300) | st.text(max_size=300))
    def test_parsing_never_raises(self, data: bytes | str) -> None:
        """Any input gives a KeyRecord or a Malformed."""
        assert isinstance(parse_key_record(data), KeyRecord | Malformed)

    @given(st.binary(max_size=300) | st.text(max_size=300))
    def test_the_memoised_parse_agrees_with_a_fresh_one(self, data: bytes | str) -> None:
        """parse_key_record's cache returns what parsing the text afresh returns."""
        fresh = parse_key_record.__wrapped__(data)

        assert parse_key_record(data) == fresh
        assert parse_key_record(data) == fresh
