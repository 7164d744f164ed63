"""Tests for mailwright.audit.bulk: the bulk-sender checks on a message and an address."""

from __future__ import annotations

from collections.abc import Callable

import dns.name
import dns.reversename
from cryptography.hazmat.primitives.asymmetric import ed25519

from mailwright.audit import Finding, Report
from mailwright.audit.bulk import fcrdns, message_findings, spf_finding
from mailwright.auth.dkim import DEFAULT_HEADERS, DkimResult, Outcome, Signer
from mailwright.auth.dmarc import Record, parse_record
from mailwright.auth.message import parse_message
from mailwright.auth.spf import Result, SpfResult
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Query, run_sync

KEY = ed25519.Ed25519PrivateKey.generate()
HEADERS = list(DEFAULT_HEADERS)


def message(
    *extra: bytes, sign_headers: list[str] | None = HEADERS, author: bytes = b"n@example.test"
) -> bytes:
    """A bulk message with ``extra`` header lines, signed by example.test unless told not to."""
    lines = [b"From: " + author, b"To: r@reader.test", b"Subject: hi", *extra]
    content = b"\r\n".join(lines) + b"\r\n\r\nbody\r\n"
    if sign_headers is None:
        return content
    signer = Signer(domain="example.test", selector="s", key=KEY, headers=sign_headers)
    return signer.sign(content) + content


ONE_CLICK = (
    b"List-Unsubscribe: <https://example.test/u>",
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
)
PASSED = [DkimResult(Outcome.PASS, "good signature", domain="example.test", selector="s")]


def findings_for(
    content: bytes,
    dkim: list[DkimResult] = PASSED,
    mail_from: str | None = "b@bounce.example.test",
    record: Record | None = None,
) -> dict[str, Finding]:
    found = message_findings(
        "example.test", parse_message(content), dkim, mail_from=mail_from, record=record
    )
    return {f.check: f for f in found}


def test_a_compliant_message_passes_every_check() -> None:
    """Signed, aligned, with one-click unsubscribe covered by the signature."""
    found = findings_for(message(*ONE_CLICK))

    assert {check: f.severity for check, f in found.items()} == {
        "bulk.from": "ok",
        "bulk.dkim": "ok",
        "bulk.dkim-aligned": "ok",
        "bulk.spf-aligned": "ok",
        "bulk.list-unsubscribe": "ok",
        "bulk.one-click": "ok",
        "bulk.unsubscribe-signed": "ok",
    }


def test_unsubscribe_fields_outside_h_are_an_error() -> None:
    """A signature that does not cover the unsubscribe fields does not protect them."""
    field = (
        b"DKIM-Signature: v=1; a=ed25519-sha256; d=example.test; s=s; h=from:to; bh=AA==; b=AA=="
    )
    found = findings_for(field + b"\r\n" + message(*ONE_CLICK, sign_headers=None))

    assert found["bulk.unsubscribe-signed"].severity == "error"


def test_a_mailto_only_list_unsubscribe_and_no_post_are_errors() -> None:
    """One-click needs an https URI and the Post field."""
    found = findings_for(message(b"List-Unsubscribe: <mailto:u@example.test>"))

    assert found["bulk.list-unsubscribe"].severity == "error"
    assert found["bulk.one-click"].severity == "error"


def test_unsigned_and_failing_signatures_are_errors() -> None:
    """No signature, or none that verifies."""
    failed = [DkimResult(Outcome.FAIL, "body hash did not verify", domain="example.test")]

    assert (
        findings_for(message(*ONE_CLICK, sign_headers=None), dkim=[])["bulk.dkim"].severity
        == "error"
    )
    assert findings_for(message(*ONE_CLICK), dkim=failed)["bulk.dkim"].severity == "error"


def test_a_third_party_signature_is_not_aligned() -> None:
    """d=esp.test verifies but does not count for example.test."""
    esp = [DkimResult(Outcome.PASS, "good signature", domain="esp.test", selector="s")]

    found = findings_for(message(*ONE_CLICK), dkim=esp)

    assert found["bulk.dkim-aligned"].severity == "error"
    assert found["bulk.unsubscribe-signed"].severity == "error"


def test_strict_alignment_refuses_a_subdomain() -> None:
    """aspf=s: bounce.example.test is not example.test; DKIM still aligns, so a warning."""
    record = parse_record("v=DMARC1; p=reject; aspf=s")
    assert isinstance(record, Record)

    found = findings_for(message(*ONE_CLICK), record=record)

    assert found["bulk.spf-aligned"].severity == "warning"


def test_another_from_domain_and_no_envelope_are_reported() -> None:
    """From in another domain is an error; no Return-Path or --mail-from is info."""
    found = findings_for(message(*ONE_CLICK, author=b"n@other.test"), mail_from=None)

    assert found["bulk.from"].severity == "error"
    assert found["bulk.spf-aligned"].severity == "info"


def test_the_return_path_gives_the_envelope_domain() -> None:
    """Without --mail-from the Return-Path field is used."""
    found = findings_for(message(b"Return-Path: <x@elsewhere.test>", *ONE_CLICK), mail_from=None)

    assert found["bulk.spf-aligned"].details["mail_from_domain"] == "elsewhere.test"


def reverse_zone(ptr: str | None, forward: str | None) -> Callable[[Query], Answer]:
    reverse = dns.reversename.from_address("192.0.2.1")

    def answer(query: Query) -> Answer:
        if query.name == reverse and ptr is not None:
            return Answer(query, LookupStatus.ANSWER, (dns.name.from_text(ptr),))
        if query.rdtype == "A" and forward is not None:
            return Answer(query, LookupStatus.ANSWER, (forward,))
        return Answer(query, LookupStatus.NXDOMAIN)

    return answer


def test_forward_confirmed_reverse_dns() -> None:
    """PTR and A agree: ok with the name; no PTR or a PTR name elsewhere: error."""
    good, name = run_sync(fcrdns("192.0.2.1"), reverse_zone("mx.example.test", "192.0.2.1"))
    unconfirmed, _ = run_sync(fcrdns("192.0.2.1"), reverse_zone("mx.example.test", "192.0.2.2"))
    missing, _ = run_sync(fcrdns("192.0.2.1"), reverse_zone(None, None))

    assert (good[0].severity, name) == ("ok", "mx.example.test")
    assert unconfirmed[0].severity == "error"
    assert "no PTR" in missing[0].message


def test_spf_results_for_an_address() -> None:
    """pass is ok, softfail an error, temperror could not be checked."""

    def result(word: Result) -> SpfResult:
        return SpfResult(word, "example.test", "p@example.test", "mailfrom", "192.0.2.1", "r")

    assert spf_finding("192.0.2.1", "p@example.test", result(Result.PASS)).severity == "ok"
    assert spf_finding("192.0.2.1", "p@example.test", result(Result.SOFTFAIL)).severity == "error"
    temp = spf_finding("192.0.2.1", "p@example.test", result(Result.TEMPERROR))
    assert "could not be checked" in temp.message


def test_a_report_summarises_and_groups_by_area() -> None:
    """Summary counts every severity; areas come in the documented order."""
    report = Report(
        "example.test",
        (
            Finding("mx.records", "ok", "fine"),
            Finding("spf.all", "error", "bad", "fix it"),
            Finding("spf.ptr", "warning", "meh", "fix it"),
        ),
    )

    assert report.summary == {"error": 1, "warning": 1, "info": 0, "ok": 1}
    assert [area for area, _ in report.by_area()] == ["spf", "mx"]
    assert report.has_errors
    assert report.to_dict()["findings"][1]["check"] == "spf.all"
