"""Tests for mailwright.audit.mtasts, .tlsrpt and ._https: records, policies, responses."""

from __future__ import annotations

import pytest

from mailwright.audit._https import HttpResponse, parse_response
from mailwright.audit.mtasts import (
    StsPolicy,
    StsRecord,
    mx_matches,
    parse_policy,
    parse_sts_record,
    policy_findings,
    record_findings,
)
from mailwright.audit.tlsrpt import tlsrpt_findings

POLICY = (
    "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\n"
    "mx: *.mx.example.test\r\nmax_age: 604800\r\n"
)


def test_a_policy_file_parses() -> None:
    """CRLF lines, two mx patterns."""
    assert parse_policy(POLICY) == StsPolicy(
        "enforce", 604800, ("mx1.example.test", "*.mx.example.test")
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("mode: enforce\nmx: a.test\nmax_age: 1\n", "version"),
        ("version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n", "mode"),
        ("version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 99999999999\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmax_age: 86400\n", "no mx"),
        ("version: STSv1\nmode enforce\n", "not 'key: value'"),
    ],
)
def test_invalid_policies_say_why(text: str, reason: str) -> None:
    """Each required field is checked (RFC 8461 §3.2)."""
    result = parse_policy(text)

    assert isinstance(result, str)
    assert reason in result


def test_mode_none_needs_no_mx() -> None:
    """A withdrawn policy lists no hosts."""
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 86400\n") == StsPolicy(
        "none", 86400, ()
    )


@pytest.mark.parametrize(
    ("host", "pattern", "expected"),
    [
        ("mx1.example.test", "mx1.example.test", True),
        ("MX1.Example.Test.", "mx1.example.test", True),
        ("a.mx.example.test", "*.mx.example.test", True),
        ("a.b.mx.example.test", "*.mx.example.test", False),
        ("mx.example.test", "*.mx.example.test", False),
        ("mx2.example.test", "mx1.example.test", False),
    ],
)
def test_mx_patterns_match_one_label_for_the_star(host: str, pattern: str, expected: bool) -> None:
    """RFC 8461 §4.1: a wildcard stands for exactly one leftmost label."""
    assert mx_matches(host, pattern) is expected


def test_the_sts_record_needs_version_and_id() -> None:
    """v=STSv1 first, id of 1 to 32 letters and digits."""
    assert parse_sts_record(b"v=STSv1; id=20240101T1") == StsRecord("20240101T1")
    assert isinstance(parse_sts_record(b"v=STSv1;"), str)
    assert isinstance(parse_sts_record(b"v=STSv1; id=not-valid"), str)


def test_record_findings_cover_absent_duplicate_and_valid() -> None:
    """No record is info; two are an error; one valid one is ok and announced."""
    absent, fetch_absent = record_findings("example.test", [b"other"])
    twice, _ = record_findings("example.test", [b"v=STSv1; id=1", b"v=STSv1; id=2"])
    valid, fetch_valid = record_findings("example.test", [b"v=STSv1; id=1"])

    assert (absent[0].severity, fetch_absent) == ("info", False)
    assert twice[0].severity == "error"
    assert (valid[0].severity, fetch_valid) == ("ok", True)


def test_an_unmatched_mx_host_is_an_error_in_enforce_and_a_warning_in_testing() -> None:
    """The MX host mx9 matches no pattern."""
    hosts = ["mx1.example.test", "mx9.example.test"]
    enforce = StsPolicy("enforce", 604800, ("mx1.example.test",))
    testing = StsPolicy("testing", 604800, ("mx1.example.test",))

    [enforced] = [
        f for f in policy_findings("example.test", enforce, hosts) if f.check == "mta-sts.mx"
    ]
    [tested] = [
        f for f in policy_findings("example.test", testing, hosts) if f.check == "mta-sts.mx"
    ]

    assert enforced.severity == "error"
    assert enforced.details["unmatched"] == ["mx9.example.test"]
    assert tested.severity == "warning"


def test_a_short_max_age_warns() -> None:
    """A day is shorter than the week recommended."""
    findings = policy_findings("example.test", StsPolicy("enforce", 86400, ("*.test",)), [])

    assert [f.severity for f in findings if f.check == "mta-sts.max-age"] == ["warning"]


def test_http_responses_parse_plain_and_chunked() -> None:
    """Status, headers and body; a chunked body is decoded."""
    plain = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nversion: STSv1\n"
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )

    assert parse_response(plain) == HttpResponse(
        200, {"content-type": "text/plain"}, b"version: STSv1\n"
    )
    parsed = parse_response(chunked)
    assert isinstance(parsed, HttpResponse)
    assert parsed.body == b"hello world"


def test_malformed_http_responses_say_why() -> None:
    """No header end, no status line, a broken chunk."""
    assert isinstance(parse_response(b"HTTP/1.1 200 OK\r\n"), str)
    assert isinstance(parse_response(b"SSH-2.0\r\n\r\n"), str)
    broken = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    assert isinstance(parse_response(broken), str)


def test_tls_reporting_records() -> None:
    """None is info, a record without usable rua warns, a good one is ok."""
    assert tlsrpt_findings("example.test", [])[0].severity == "info"
    assert tlsrpt_findings("example.test", [b"v=TLSRPTv1; rua=ftp://x"])[0].severity == "warning"
    [good] = tlsrpt_findings("example.test", [b"v=TLSRPTv1; rua=mailto:t@example.test"])
    assert good.severity == "ok"
    assert good.details["rua"] == ["mailto:t@example.test"]
