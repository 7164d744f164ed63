"""Tests for mailwright.auth.spf.result: what a check ends with and how it is recorded."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mailwright.auth.authres import AuthenticationResults, format_results, parse_results
from mailwright.auth.spf import Result, SpfResult, check_host
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Query, run_sync


def _answer(records: dict[str, bytes]) -> Callable[[Query], Answer]:
    def answer(query: Query) -> Answer:
        text = records.get(query.text)
        if query.rdtype == "TXT" and text is not None:
            return Answer(query, LookupStatus.ANSWER, (text,))
        return Answer(query, LookupStatus.NXDOMAIN)

    return answer


def _check(record: str, more: dict[str, bytes] | None = None) -> SpfResult:
    answer = _answer({"example.com": record.encode(), **(more or {})})
    return run_sync(check_host("192.0.2.1", "example.com", "alice@example.com"), answer)


def test_a_pass_is_written_with_the_sender_and_no_reason() -> None:
    """spf=pass carries smtp.mailfrom with the sender checked, and no reason (RFC 8601)."""
    outcome = _check("v=spf1 ip4:192.0.2.0/24 -all")

    method = outcome.to_method_result()

    assert method.method == "spf"
    assert method.result == "pass"
    assert method.get("smtp", "mailfrom") == "alice@example.com"
    assert method.reason is None


def test_a_fail_carries_its_reason() -> None:
    """Results other than pass say why in reason=, as dkim= entries do."""
    outcome = _check("v=spf1 -all")

    method = outcome.to_method_result()

    assert method.result == "fail"
    assert method.reason == outcome.reason
    assert "-all matched" in (method.reason or "")


def test_the_local_part_can_be_left_out() -> None:
    """local_part=False writes only the domain (RFC 8601 §2.2 allows it for privacy)."""
    outcome = _check("v=spf1 +all")

    assert outcome.to_method_result(local_part=False).get("smtp", "mailfrom") == "example.com"


def test_the_helo_identity_is_written_as_smtp_helo() -> None:
    """A HELO check is recorded as smtp.helo with the HELO name (RFC 7208 §9.2)."""
    answer = _answer({"mail.example.net": b"v=spf1 +all"})
    outcome = run_sync(
        check_host(
            "192.0.2.1", "mail.example.net", "postmaster@mail.example.net", identity="helo"
        ),
        answer,
    )

    method = outcome.to_method_result()

    assert method.get("smtp", "helo") == "mail.example.net"
    assert method.get("smtp", "mailfrom") is None


def test_the_entry_round_trips_through_an_authentication_results_field() -> None:
    """The entry formats into a field that parses back to the same result and property."""
    outcome = _check("v=spf1 ~all")

    text = format_results(AuthenticationResults("mx.example.org", (outcome.to_method_result(),)))
    [parsed] = parse_results(text).of("spf")

    assert parsed.result == "softfail"
    assert parsed.get("smtp", "mailfrom") == "alice@example.com"


@pytest.mark.parametrize(
    ("record", "mechanism"),
    [
        ("v=spf1 ip4:192.0.2.1 -all", "ip4:192.0.2.1"),
        ("v=spf1 include:inc.example.com -all", "include:inc.example.com"),
        ("v=spf1 ip4:10.0.0.1", "default"),
        ("v=spf1 -all", "-all"),
        ("v=spf1 bogus", ""),
    ],
)
def test_the_deciding_mechanism_is_kept(record: str, mechanism: str) -> None:
    """``mechanism`` names the term that decided, ``default`` for no match, empty for errors."""
    outcome = _check(record, {"inc.example.com": b"v=spf1 +all"})

    assert outcome.mechanism == mechanism


def test_passed_is_true_only_for_pass() -> None:
    """SpfResult.passed is the one-word question a caller asks."""
    assert _check("v=spf1 +all").passed
    assert not _check("v=spf1 ?all").passed
    assert _check("v=spf1 ?all").result is Result.NEUTRAL
