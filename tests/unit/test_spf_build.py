"""Tests for mailwright.auth.spf.build: SPF records written from options (RFC 7208 §3, §5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwright.auth.spf import BuildError, RecordOptions, build_record, parse_record
from mailwright.auth.spf.build import MAX_STRING, split_strings
from mailwright.auth.spf.record import Record


def test_terms_are_written_cheapest_first_and_parse_back() -> None:
    """Networks come first, then DNS terms, then all and the modifiers; the text parses."""
    options = RecordOptions(
        include=["_spf.example.net"],
        mx=[""],
        a=["mail.example.com/24"],
        ip6=["2001:db8::/32"],
        ip4=["192.0.2.0/24", "198.51.100.7"],
        exists=["%{i}._spf.example.com"],
        exp="why.example.com",
    )

    built = build_record(options)

    assert built.text == (
        "v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.7 ip6:2001:db8::/32 a:mail.example.com/24 mx "
        "include:_spf.example.net exists:%{i}._spf.example.com -all exp=why.example.com"
    )
    assert isinstance(parse_record(built.text), Record)
    assert built.record == parse_record(built.text)
    assert built.lookups.total == 4


@pytest.mark.parametrize(
    ("word", "term"),
    [("fail", "-all"), ("softfail", "~all"), ("neutral", "?all"), ("pass", "+all"), ("~", "~all")],
)
def test_the_all_qualifier_is_spelled_as_a_sign(word: str, term: str) -> None:
    """Qualifier words and signs both give the closing term."""
    assert build_record(RecordOptions(all=word)).text == f"v=spf1 {term}"


def test_a_redirect_goes_without_all() -> None:
    """redirect= is written last and only in a record without 'all' (§6.1)."""
    built = build_record(RecordOptions(ip4=["192.0.2.1"], redirect="_spf.example.com", all=None))

    assert built.text == "v=spf1 ip4:192.0.2.1 redirect=_spf.example.com"


def test_duplicates_are_written_once() -> None:
    """The same include given twice is one term."""
    built = build_record(RecordOptions(include=["a.example.com", "a.example.com"]))

    assert built.text == "v=spf1 include:a.example.com -all"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (RecordOptions(ip4=["192.0.2.1/24"]), "host bits set; the network is 192.0.2.0/24"),
        (RecordOptions(ip4=["2001:db8::1"]), "give it as ip6"),
        (RecordOptions(ip6=["192.0.2.1"]), "give it as ip4"),
        (RecordOptions(ip4=["banana"]), "not an address or network"),
        (RecordOptions(include=["localhost"]), "include: 'localhost' is not a domain name"),
        (RecordOptions(a=["mail.example.com/33"]), "CIDR length 33 is over 32"),
        (RecordOptions(exists=["%{x}.example.com"]), "unknown macro letter"),
        (RecordOptions(all="maybe"), "all: 'maybe' is not fail"),
        (RecordOptions(redirect="r.example.com"), "never uses redirect="),
        (RecordOptions(all=None), "nothing to write"),
        (RecordOptions(exp="not a domain"), "exp:"),
    ],
)
def test_invalid_options_are_refused_naming_the_option(
    options: RecordOptions, message: str
) -> None:
    """Each invalid part raises BuildError with the option and the value."""
    with pytest.raises(BuildError) as raised:
        build_record(options)

    assert message in str(raised.value)


def test_more_than_ten_dns_terms_is_a_warning() -> None:
    """The static count warns past ten DNS-querying terms (§4.6.4)."""
    built = build_record(RecordOptions(include=[f"i{n}.example.com" for n in range(11)]))

    assert built.lookups.total == 11
    assert any("11 DNS-querying terms" in warning for warning in built.warnings)


def test_a_long_record_is_split_into_strings_with_warnings() -> None:
    """Over 255 octets the record becomes several strings; over 450 it may not fit UDP."""
    built = build_record(RecordOptions(ip6=[f"2001:db8:{n:x}::/48" for n in range(30)]))

    assert len(built.text) > 450
    assert len(built.strings) == 3
    assert "".join(built.strings) == built.text
    assert any("3 strings" in warning for warning in built.warnings)
    assert any("450 octets" in warning for warning in built.warnings)
    assert built.zone_text().count('"') == 6


def test_plus_all_is_a_warning() -> None:
    """+all authorizes everyone, which is legal and almost always a mistake."""
    assert any(
        "every host" in warning for warning in build_record(RecordOptions(all="+")).warnings
    )


@given(
    st.lists(
        st.sampled_from(["include:example.com", "a", "ip4:192.0.2.1", "x" * 300]), max_size=12
    )
)
def test_split_strings_join_back_and_fit(terms: list[str]) -> None:
    """Split strings are at most 255 octets and join to the original text (§3.3)."""
    text = " ".join(["v=spf1", *terms])

    strings = split_strings(text)

    assert "".join(strings) == text
    assert all(len(piece) <= MAX_STRING for piece in strings)
