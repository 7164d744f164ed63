"""Tests for mailwright.auth.authres: writing and reading Authentication-Results (RFC 8601)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwright.auth.authres import (
    AuthenticationResults,
    AuthResSyntaxError,
    MethodResult,
    Property,
    format_results,
    header_field,
    parse_results,
    remove_ours,
    result,
)


def test_a_full_field_is_written_folded_with_every_method() -> None:
    """SPF, DKIM, DMARC and ARC results go into one field, one line each once it is long."""
    field = AuthenticationResults(
        "mx.example.com",
        (
            result("spf", "pass", [("smtp", "mailfrom", "bounce@example.net")]),
            result("dkim", "pass", [("header", "d", "example.net"), ("header", "s", "s1")]),
            result("dmarc", "pass", [("header", "from", "example.net")]),
            result("arc", "none"),
        ),
    )

    text = format_results(field)

    assert text == (
        "mx.example.com; spf=pass smtp.mailfrom=bounce@example.net;\r\n"
        "\tdkim=pass header.d=example.net header.s=s1;\r\n"
        "\tdmarc=pass header.from=example.net; arc=none"
    )
    assert header_field(field).startswith(b"Authentication-Results: mx.example.com;")


def test_nothing_checked_is_written_as_none() -> None:
    """A field without results says "none" (RFC 8601 §2.2)."""
    assert format_results(AuthenticationResults("mx.example.com")) == "mx.example.com; none"


def test_reasons_and_values_that_need_it_are_quoted() -> None:
    """A reason with spaces, and an authserv-id with a colon, become quoted strings."""
    field = AuthenticationResults(
        "mx:1", (result("dkim", "fail", [("header", "d", "example.net")], reason='bad "sig"'),)
    )

    assert format_results(field) == (
        '"mx:1"; dkim=fail reason="bad \\"sig\\"" header.d=example.net'
    )


def test_a_wrong_result_word_is_refused() -> None:
    """result() knows each method's words, so "passed" never reaches a header."""
    with pytest.raises(ValueError, match="not a spf result"):
        result("spf", "passed")


@pytest.mark.parametrize(
    ("text", "method", "outcome", "prop"),
    [
        ("example.com;\r\n   spf=pass smtp.mailfrom=example.net", "spf", "pass",
         ("smtp", "mailfrom", "example.net")),
        ("example.com;\r\n  auth=pass (cram-md5) smtp.auth=sender@example.net;\r\n"
         "  spf=pass smtp.mailfrom=example.net", "auth", "pass", ("smtp", "auth",
                                                                 "sender@example.net")),
        ("example.com; iprev=pass\r\n  policy.iprev=192.0.2.200", "iprev", "pass",
         ("policy", "iprev", "192.0.2.200")),
        ("example.com;\r\n  dkim=pass (good signature) header.d=mail-router.example.net",
         "dkim", "pass", ("header", "d", "mail-router.example.net")),
        ("example.com 1; dkim = pass ( ok ) header . i = @example.net", "dkim", "pass",
         ("header", "i", "@example.net")),
    ],
)  # fmt: skip
def test_the_rfc_examples_are_read(
    text: str, method: str, outcome: str, prop: tuple[str, str, str]
) -> None:
    """The field forms of RFC 8601 Appendix B parse, comments and spacing included."""
    parsed = parse_results(text)

    assert parsed.authserv_id == "example.com"
    [first] = parsed.of(method)
    assert first.result == outcome
    assert first.get(prop[0], prop[1]) == prop[2]


def test_none_and_a_version_are_read() -> None:
    """``id 1; none`` is a field with a version and no results."""
    parsed = parse_results("mx.example.com 1; none")

    assert (parsed.authserv_id, parsed.version, parsed.results) == ("mx.example.com", "1", ())


@pytest.mark.parametrize(
    "text",
    ["", "example.com", "example.com; =pass", "example.com; spf pass", "example.com; spf=pass x",
     "example.com; none extra", 'example.com; spf=pass reason="open', "example.com; (unclosed"],
)  # fmt: skip
def test_text_that_is_no_field_raises_a_syntax_error(text: str) -> None:
    """Malformed values raise AuthResSyntaxError naming where, never anything else."""
    with pytest.raises(AuthResSyntaxError, match="offset"):
        parse_results(text)


def test_fields_claiming_our_authserv_id_are_found_for_removal() -> None:
    """Only Authentication-Results fields with our id (any case) are picked (RFC 8601 §5)."""
    fields = [
        ("Authentication-Results", b" MX.example.com; spf=pass smtp.mailfrom=evil.test"),
        ("Subject", b" mx.example.com; spf=pass"),
        ("Authentication-Results", b" other.example; dkim=pass header.d=x.test"),
        ("authentication-results", b" mx.example.com; none"),
        ("Authentication-Results", b" garbage without results"),
    ]

    assert remove_ours(fields, "mx.example.com") == [0, 3]


keywords = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
values = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=20)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["spf", "dkim", "dmarc", "arc", "x-custom"]),
            keywords,
            st.lists(st.tuples(st.sampled_from(["smtp", "header", "policy"]), keywords, values)),
            st.none() | values,
        ),
        max_size=5,
    )
)
def test_whatever_we_write_reads_back_the_same(
    items: list[tuple[str, str, list[tuple[str, str, str]], str | None]],
) -> None:
    """format_results then parse_results gives back every method, result, reason and property."""
    field = AuthenticationResults(
        "mx.example.com",
        tuple(
            MethodResult(method, word, tuple(Property(*p) for p in props), reason)
            for method, word, props, reason in items
        ),
    )

    parsed = parse_results(format_results(field))

    assert parsed == field


@given(st.text(max_size=200))
def test_arbitrary_text_parses_or_raises_the_syntax_error(text: str) -> None:
    """The parser never raises anything but AuthResSyntaxError."""
    with contextlib.suppress(AuthResSyntaxError):
        parse_results(text)
