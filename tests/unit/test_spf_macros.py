"""Tests for mailwright.auth.spf.macros: macro-string syntax and expansion (RFC 7208 §7)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwright.auth.spf.macros import (
    MAX_DOMAIN_LENGTH,
    MacroError,
    MacroString,
    MacroValues,
    expand,
    expand_domain,
    parse_domain_spec,
    parse_explanation,
    parse_macro_string,
)

#: The values of RFC 7208 §7.4's examples.
EXAMPLE = MacroValues(
    sender="strong-bad@email.example.com",
    local_part="strong-bad",
    sender_domain="email.example.com",
    domain="email.example.com",
    ip=ipaddress.ip_address("192.0.2.3"),
    helo="mx.example.org",
    receiver="mx.example.net",
    timestamp=1_400_000_000,
)


def spec(text: str) -> MacroString:
    """``text`` parsed as a domain-spec, which the test expects to be valid."""
    parsed = parse_domain_spec(text)
    assert isinstance(parsed, MacroString), parsed
    return parsed


def explanation(text: str) -> MacroString:
    """``text`` parsed as an explanation, which the test expects to be valid."""
    parsed = parse_explanation(text)
    assert isinstance(parsed, MacroString), parsed
    return parsed


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("%{s}", "strong-bad@email.example.com"),
        ("%{o}", "email.example.com"),
        ("%{d}", "email.example.com"),
        ("%{d4}", "email.example.com"),
        ("%{d3}", "email.example.com"),
        ("%{d2}", "example.com"),
        ("%{d1}", "com"),
        ("%{dr}", "com.example.email"),
        ("%{d2r}", "example.email"),
        ("%{l}", "strong-bad"),
        ("%{l-}", "strong.bad"),
        ("%{lr}", "strong-bad"),
        ("%{lr-}", "bad.strong"),
        ("%{l1r-}", "strong"),
        ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
        ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
        ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
        ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
        ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
    ],
)
def test_the_rfc_examples_expand_as_printed(macro: str, expected: str) -> None:
    """Each example of RFC 7208 §7.4 expands to the text the RFC gives for it."""
    assert expand(spec(macro), EXAMPLE) == expected


def test_ipv6_addresses_expand_to_nibbles_for_i_and_to_text_for_c() -> None:
    """%{i} of an IPv6 client is dot-separated nibbles, %{c} its usual text (§7.3)."""
    values = replace(EXAMPLE, ip=ipaddress.ip_address("2001:db8::cb01"))

    assert expand(spec("%{ir}.%{v}._spf.%{d2}"), values) == (
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
    )
    assert expand(explanation("%{c}"), values) == "2001:db8::cb01"


def test_escapes_give_percent_space_and_an_encoded_space() -> None:
    """``%%`` is '%', ``%_`` a space and ``%-`` '%20' (§7.1)."""
    assert expand(spec("a%%b%_c%-d.example.com"), EXAMPLE) == "a%b c%20d.example.com"


def test_upper_case_letters_are_url_escaped() -> None:
    """An upper-case macro expands as its lower-case twin, then is URL-escaped (§7.3)."""
    values = replace(EXAMPLE, local_part="~jack&jill=up-a_b3.c")

    assert expand(explanation("l=%{L}"), values) == "l=~jack%26jill%3Dup-a_b3.c"


def test_c_r_and_t_expand_in_explanations() -> None:
    """The explanation-only letters give the client text, receiver and timestamp (§7.3)."""
    text = expand(explanation("%{c} at %{r} on %{t}"), EXAMPLE)

    assert text == "192.0.2.3 at mx.example.net on 1400000000"


@pytest.mark.parametrize("letter", ["c", "r", "t"])
def test_c_r_and_t_are_refused_in_domain_specs(letter: str) -> None:
    """A domain-spec may not use an explanation-only letter (§7.2)."""
    parsed = parse_domain_spec(f"%{{{letter}}}.example.com")

    assert isinstance(parsed, MacroError)
    assert "only allowed in explanations" in parsed.reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("%(ir).example.com", "is not followed by"),
        ("foo%.example.com", "is not followed by"),
        ("foo.example.com%", "is not followed by"),
        ("%{ir.example.com", "no closing"),
        ("%{a}.example.com", "unknown macro letter"),
        ("%{}.example.com", "malformed macro"),
        ("%{d0}.example.com", "keeps zero parts"),
        ("%{d2x}.example.com", "malformed macro"),
        ("%{dr2}.example.com", "malformed macro"),
        ("foo bar.example.com", "is not allowed"),
        ("foo\x00.example.com", "is not allowed"),
        ("caf\xe9.example.com", "is not allowed"),
        ("", "empty domain-spec"),
        ("museum", "top-level label"),
        ("museum.", "top-level label"),
        ("example.123", "top-level label"),
        ("example.-com", "top-level label"),
        ("example.com-", "top-level label"),
        ("example.com:8080", "top-level label"),
        ("example.com/24", "top-level label"),
        ("%{d}.", "top-level label"),
    ],
)
def test_invalid_domain_specs_are_errors_with_a_reason(text: str, reason: str) -> None:
    """Every syntax error of §7.1 is reported as a MacroError naming the problem."""
    parsed = parse_domain_spec(text)

    assert isinstance(parsed, MacroError)
    assert reason in parsed.reason


@pytest.mark.parametrize(
    "text",
    [
        "example.com",
        "example.com.",
        "foo:bar/baz.example.com",
        "example.xn--zckzah",
        "example.123-456",
        "%{d}",
        "%{ir}.%{v}._spf.%{d2}",
        "macro%%",
        "%{l2r+-}.user.%{d2}",
        "%{D99999999999999}.example.com",
    ],
)
def test_valid_domain_specs_parse(text: str) -> None:
    """Domain-specs ending in a macro or in a top label, with any delimiters, are valid."""
    assert isinstance(parse_domain_spec(text), MacroString)


def test_a_digit_count_beyond_the_parts_keeps_them_all() -> None:
    """Asking for more right-hand parts than there are gives every part (§7.3)."""
    assert expand(spec("%{d128}"), EXAMPLE) == "email.example.com"
    assert expand(spec("%{d99999999999999}"), EXAMPLE) == "email.example.com"


def test_an_explanation_may_hold_spaces_but_a_domain_spec_may_not() -> None:
    """explain-string allows SP between macro-strings; domain-spec does not (§7.1)."""
    assert isinstance(parse_explanation("not from %{i}"), MacroString)
    assert isinstance(parse_domain_spec("not from.example.com"), MacroError)


def test_unknown_modifier_values_need_only_valid_macro_syntax() -> None:
    """A macro-string for an unknown modifier may use any letter but not a bad '%' (§A)."""
    assert isinstance(parse_macro_string("%{c}:dog/cat"), MacroString)
    assert isinstance(parse_macro_string("+"), MacroString)
    assert isinstance(parse_macro_string("%abc"), MacroError)


def test_a_trailing_dot_is_dropped_from_expanded_names() -> None:
    """The name to query loses one trailing dot (§7.3), the explanation keeps it."""
    assert expand_domain(spec("%{d}.d.spf.example.com."), EXAMPLE) == (
        "email.example.com.d.spf.example.com"
    )
    assert expand(explanation("This is a test."), EXAMPLE) == "This is a test."


def test_long_names_lose_labels_from_the_left() -> None:
    """An expansion over 253 characters is cut at label boundaries from the left (§7.3)."""
    values = replace(EXAMPLE, sender_domain="somewhat.long.exp.example.com")

    name = expand_domain(spec("foobar." + "%{o}." * 8 + "example.com"), values)

    assert name == "somewhat.long.exp.example.com." * 8 + "example.com"
    assert len(name) <= MAX_DOMAIN_LENGTH


def test_a_name_without_a_short_enough_suffix_becomes_empty() -> None:
    """A last label too long to fit leaves nothing to query."""
    values = replace(EXAMPLE, local_part="x" * 300)

    assert expand_domain(spec("%{l}"), values) == ""


def test_thousands_of_macros_build_only_the_kept_name() -> None:
    """A record of thousands of long macros expands to a name of at most 253 characters."""
    values = replace(EXAMPLE, local_part="y" * 60)
    many = spec("%{l}." * 5000 + "example.com")

    name = expand_domain(many, values)

    assert name.endswith(".example.com")
    assert len(name) <= MAX_DOMAIN_LENGTH


def test_an_explanation_is_cut_at_the_limit() -> None:
    """expand() with a limit stops building text once the limit is reached."""
    text = expand(explanation("%{s} " * 1000), EXAMPLE, limit=100)

    assert len(text) == 100


def test_p_is_reported_only_when_used() -> None:
    """uses_ptr tells the evaluator when the validated name must be looked up."""
    assert spec("%{p}.example.com").uses_ptr
    assert not spec("%{d}.example.com").uses_ptr


@given(st.text(max_size=300))
def test_parsing_never_raises(text: str) -> None:
    """Every parser returns a MacroString or a MacroError for any text."""
    for parse in (parse_domain_spec, parse_explanation, parse_macro_string):
        assert isinstance(parse(text), MacroString | MacroError)


MACRO_TEXT = st.lists(
    st.one_of(
        st.sampled_from(["%%", "%_", "%-", ".", "-", "example", "com", "%{"]),
        st.builds(
            lambda letter, digits, reverse, delimiters: (
                f"%{{{letter}{digits}{reverse}{delimiters}}}"
            ),
            st.sampled_from("slodiphvcrtSLODIPHVCRT"),
            st.sampled_from(["", "1", "2", "10", "300"]),
            st.sampled_from(["", "r", "R"]),
            st.text(alphabet=".-+,/_=", max_size=3),
        ),
    ),
    max_size=20,
).map("".join)


@given(
    MACRO_TEXT,
    st.text(max_size=80),
    st.text(max_size=80),
    st.sampled_from(["192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"]),
)
def test_expansion_never_raises(text: str, local_part: str, helo: str, ip: str) -> None:
    """Whatever parses expands, for any sender or HELO text; names stay within 253."""
    values = MacroValues(
        sender=f"{local_part}@example.com",
        local_part=local_part,
        sender_domain="example.com",
        domain="example.com",
        ip=ipaddress.ip_address(ip),
        helo=helo,
    )

    for parsed in (parse_explanation(text), parse_domain_spec(text)):
        if isinstance(parsed, MacroString):
            assert isinstance(expand(parsed, values), str)
            assert len(expand_domain(parsed, values)) <= MAX_DOMAIN_LENGTH
