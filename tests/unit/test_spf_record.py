"""Tests for mailwright.auth.spf.record: choosing the SPF record and parsing it (RFC 7208)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwright.auth.spf.record import (
    A,
    All,
    Exists,
    Include,
    Ip4,
    Ip6,
    Mx,
    Ptr,
    Record,
    RecordError,
    is_spf_record,
    parse_record,
    spf_records,
)
from mailwright.auth.spf.result import Result


def parsed(text: str | bytes) -> Record:
    """``text`` parsed, which the test expects to be a valid record."""
    record = parse_record(text)
    assert isinstance(record, Record), record
    return record


def test_every_mechanism_parses_with_its_arguments() -> None:
    """The eight mechanisms of §5 parse into their own values, in order."""
    record = parsed(
        "v=spf1 a a:mail.example.com/24 mx//64 ptr ptr:example.com ip4:192.0.2.0/24 "
        "ip6:2001:db8::/32 include:_spf.example.com exists:%{i}.bl.example.com -all"
    )

    kinds = [type(directive.mechanism) for directive in record.directives]
    assert kinds == [A, A, Mx, Ptr, Ptr, Ip4, Ip6, Include, Exists, All]
    assert record.directives[1].mechanism == A(
        record.directives[1].mechanism.target, ip4_prefix=24, ip6_prefix=128
    )
    assert record.directives[5].mechanism == Ip4(ipaddress.IPv4Network("192.0.2.0/24"))
    assert str(record.directives[8].mechanism.target) == "%{i}.bl.example.com"  # type: ignore[union-attr]


def test_qualifiers_give_their_results_and_plus_is_the_default() -> None:
    """'+', '-', '~' and '?' map to pass, fail, softfail and neutral (§4.6.2)."""
    record = parsed("v=spf1 +a -a ~a ?a a")

    assert [d.qualifier for d in record.directives] == [
        Result.PASS,
        Result.FAIL,
        Result.SOFTFAIL,
        Result.NEUTRAL,
        Result.PASS,
    ]


def test_dual_cidr_lengths_default_to_whole_addresses() -> None:
    """Without lengths, a and mx compare whole addresses; each length is independent."""
    record = parsed("v=spf1 a a/24 a//64 mx:example.com/16//48")

    lengths = [(d.mechanism.ip4_prefix, d.mechanism.ip6_prefix) for d in record.directives]  # type: ignore[union-attr]
    assert lengths == [(32, 128), (24, 128), (32, 64), (16, 48)]


def test_an_ip4_network_with_host_bits_covers_its_network() -> None:
    """ip4:192.0.2.77/24 covers 192.0.2.0/24, as the RFC's examples assume (§5.6)."""
    record = parsed("v=spf1 ip4:192.0.2.77/24")

    assert record.directives[0].mechanism == Ip4(ipaddress.IPv4Network("192.0.2.0/24"))


def test_names_are_case_insensitive() -> None:
    """Mechanism names, modifier names and the version ignore case (§4.5, §4.6.1)."""
    record = parsed("V=SpF1 IP4:192.0.2.1 MX Redirect=example.com EXP=exp.example.com")

    assert [type(d.mechanism) for d in record.directives] == [Ip4, Mx]
    assert str(record.redirect) == "example.com"
    assert str(record.explanation) == "exp.example.com"


def test_terms_may_be_separated_by_several_spaces_and_trail_them() -> None:
    """One or more spaces separate terms, and trailing spaces are allowed (§4.6.1)."""
    record = parsed("v=spf1  a   -all  ")

    assert [d.text for d in record.directives] == ["a", "-all"]


def test_unknown_modifiers_are_ignored_when_their_syntax_is_valid() -> None:
    """name=macro-string modifiers other than redirect and exp change nothing (§6)."""
    record = parsed("v=spf1 moo.cow-far_out=man:dog/cat default=+ ip4:192.0.2.1")

    assert len(record.directives) == 1
    assert record.redirect is None


def test_a_bare_version_is_an_empty_record() -> None:
    """``v=spf1`` alone is a valid record without terms."""
    assert parsed("v=spf1") == Record((), text="v=spf1")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("v=spf1 ip4:1.2.3.4 -all moo", "unknown mechanism 'moo'"),
        ("v=spf1 moo.cow/far_out=man:dog/cat", "unknown mechanism 'moo.cow'"),
        ("v=spf1 redirect:example.com", "unknown mechanism 'redirect'"),
        ("v=spf1 -all.", "unknown mechanism 'all.'"),
        ("v=spf1 -all:foobar", "'all' takes no argument"),
        ("v=spf1 -all/8", "'all' takes no argument"),
        ("v=spf1 1up=foo", "neither a mechanism nor a modifier"),
        ("v=spf1 =all", "neither a mechanism nor a modifier"),
        ("v=spf1 +", "neither a mechanism nor a modifier"),
        ("v=spf1 include", "needs ':'"),
        ("v=spf1 include:", "empty domain-spec"),
        ("v=spf1 include:example.com/24", "top-level label"),
        ("v=spf1 exists", "needs ':'"),
        ("v=spf1 exists:example.com/24", "top-level label"),
        ("v=spf1 ptr/0", "'ptr' takes only"),
        ("v=spf1 ptr:", "empty domain-spec"),
        ("v=spf1 a:", "empty domain-spec"),
        ("v=spf1 a:/24", "empty domain-spec"),
        ("v=spf1 a/33", "over 32"),
        ("v=spf1 a//129", "over 128"),
        ("v=spf1 a/24/64", "is not '/<ip4-length>'"),
        ("v=spf1 mx:example.com:8080", "top-level label"),
        ("v=spf1 a:111.222.33.44", "top-level label"),
        ("v=spf1 ip4", "needs ':'"),
        ("v=spf1 ip4:1.2.3", "not an IPv4 address"),
        ("v=spf1 ip4:1.2.3.04", "not an IPv4 address"),
        ("v=spf1 ip4:1.2.3.256", "not an IPv4 address"),
        ("v=spf1 ip4:1.2.3.4:8080", "not an IPv4 address"),
        ("v=spf1 ip4:1.2.3.4/33", "over 32"),
        ("v=spf1 ip4:1.2.3.4/032", "leading zeros"),
        ("v=spf1 ip4:1.2.3.4//32", "leading zeros"),
        ("v=spf1 ip6", "needs ':'"),
        ("v=spf1 ip6::CAFE::BABE", "not an IPv6 address"),
        ("v=spf1 ip6:fe80::1%eth0", "not an IPv6 address"),
        ("v=spf1 ip6:::1/129", "over 128"),
        ("v=spf1 ip6:::1//33", "leading zeros"),
        ("v=spf1 redirect=", "empty domain-spec"),
        ("v=spf1 redirect=-all", "top-level label"),
        ("v=spf1 exp=", "empty domain-spec"),
        ("v=spf1 exp=%{r}.example.com", "only allowed in explanations"),
        ("v=spf1 exp=a.example.com exp=b.example.com", "exp= appears more than once"),
        ("v=spf1 redirect=a.example.com redirect=a.example.com", "more than once"),
        ("v=spf1 foo=%abc", "is not followed by"),
        ("v=spf1 a:%{a}.example.com", "unknown macro letter"),
        ("v=spf1 a:ctrl.example.com\rptr", "0x0d"),
        ("v=spf1 ip4:192.0.2.5\n include:example.com", "0x0a"),
        ("v=spf1\ta", "0x09"),
        ("v=spf10", "does not start with 'v=spf1'"),
        (b"v=spf1 a:\xef\xbb\xbfgarbage.example.net", "0xef"),
        (b"v=spf1 \x80a:example.net", "0x80"),
    ],
)
def test_syntax_errors_are_reported_with_the_offending_part(
    text: str | bytes, reason: str
) -> None:
    """Every syntax error is a RecordError whose reason names what is wrong (§4.6)."""
    record = parse_record(text)

    assert isinstance(record, RecordError)
    assert reason in record.reason


def test_an_error_after_valid_terms_still_fails_the_record() -> None:
    """A syntax error anywhere makes the whole record invalid, not just the term (§4.6)."""
    assert isinstance(parse_record("v=spf1 ip4:192.0.2.1 +all foo=%"), RecordError)


@pytest.mark.parametrize(
    ("text", "is_record"),
    [
        (b"v=spf1", True),
        (b"v=spf1 -all", True),
        (b"V=SPF1 -all", True),
        (b"v=spf10", False),
        (b"v=spf1mx", False),
        (b"v=spf1\t-all", False),
        (b" v=spf1 -all", False),
        (b"spf2.0/pra -all", False),
        (b"", False),
    ],
)
def test_the_version_must_end_with_a_space_or_the_record(text: bytes, is_record: bool) -> None:
    """Only 'v=spf1' followed by a space or nothing starts an SPF record (§4.5)."""
    assert is_spf_record(text) is is_record


def test_only_spf_records_are_selected_from_the_txt_records() -> None:
    """Other TXT data, even non-ASCII, is left out of the selection (§4.5)."""
    texts = [b"google-site-verification=abc", b"\x96", b"v=spf1 -all", b"v=spf10 +all"]

    assert spf_records(texts) == [b"v=spf1 -all"]


def test_a_giant_record_parses_in_one_pass() -> None:
    """A 60 kB record of thousands of terms is parsed without trouble."""
    terms = " ".join(f"ip4:10.{i // 256}.{i % 256}.0/24" for i in range(4000))

    record = parsed(f"v=spf1 {terms} -all")

    assert len(record.directives) == 4001


@given(st.binary(max_size=400))
def test_parsing_bytes_never_raises(text: bytes) -> None:
    """parse_record returns a Record or a RecordError for any octets."""
    assert isinstance(parse_record(b"v=spf1 " + text), Record | RecordError)
    assert isinstance(parse_record(text), Record | RecordError)


@given(st.text(max_size=400))
def test_parsing_text_never_raises(text: str) -> None:
    """parse_record returns a Record or a RecordError for any text, surrogates included."""
    assert isinstance(parse_record("v=spf1 " + text), Record | RecordError)


TERMS = st.sampled_from(
    [
        "a",
        "mx/24",
        "ptr",
        "a:%{d2}.example.com//64",
        "ip4:192.0.2.0/24",
        "ip6:2001:db8::/48",
        "include:_spf.example.com",
        "exists:%{ir}.%{v}.bl.example.com",
        "all",
        "foo=bar",
    ]
)


@given(st.lists(st.tuples(st.sampled_from(["", "+", "-", "~", "?"]), TERMS), max_size=30))
def test_records_built_from_valid_terms_parse_term_for_term(
    terms: list[tuple[str, str]],
) -> None:
    """A record of valid directives keeps each of them, in order, with its qualifier."""
    texts = [qualifier + term for qualifier, term in terms if term != "foo=bar" or not qualifier]

    record = parsed("v=spf1 " + " ".join(texts))

    assert [d.text for d in record.directives] == [t for t in texts if t != "foo=bar"]


# -- the cache of parsed records ------------------------------------------------------


def test_a_record_parsed_again_is_the_kept_result() -> None:
    """Parsing the same text twice gives the same immutable record, text or octets alike."""
    text = "v=spf1 include:_spf.example.net ip4:192.0.2.0/24 -all"

    first = parse_record(text)
    again = parse_record(text)
    from_octets = parse_record(text.encode())

    assert again is first
    assert from_octets == first
    assert isinstance(first, Record)
    assert [d.text for d in first.directives] == [
        "include:_spf.example.net",
        "ip4:192.0.2.0/24",
        "-all",
    ]


def test_an_invalid_record_parsed_again_gives_the_same_error() -> None:
    """The kept result of an invalid record is the same error, not a record."""
    assert parse_record(b"v=spf1 bogus:x") == parse_record(b"v=spf1 bogus:x")
    assert isinstance(parse_record(b"v=spf1 bogus:x"), RecordError)
