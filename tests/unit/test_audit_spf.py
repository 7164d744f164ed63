"""Tests for mailwright.audit.spf: the SPF tree walk, over fixture zones."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import dns.name

from mailwright.audit import Finding, audit_spf
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Query, run_sync

Zone = Mapping[tuple[str, str], Sequence[object]]


def answer_from(zone: Zone, failing: frozenset[str] = frozenset()) -> Callable[[Query], Answer]:
    """An answer function: records from ``zone``, NODATA for known names, else NXDOMAIN."""
    names = {name for name, _ in zone}

    def answer(query: Query) -> Answer:
        name = query.text.lower()
        if name in failing:
            return Answer(query, LookupStatus.SERVFAIL, detail="server failure")
        records = zone.get((name, query.rdtype))
        if records:
            values = tuple(r.encode() if isinstance(r, str) else r for r in records)
            return Answer(query, LookupStatus.ANSWER, values)
        status = LookupStatus.NODATA if name in names else LookupStatus.NXDOMAIN
        return Answer(query, status)

    return answer


def audit(zone: Zone, failing: frozenset[str] = frozenset()) -> list[Finding]:
    return run_sync(audit_spf("example.test"), answer_from(zone, failing))


def only(findings: list[Finding], check: str) -> Finding:
    [finding] = [f for f in findings if f.check == check]
    return finding


def test_a_simple_record_is_ok_everywhere() -> None:
    """ip4 and -all: one record, no lookups, no voids, a hard ending."""
    findings = audit({("example.test", "TXT"): ["v=spf1 ip4:192.0.2.0/24 -all"]})

    assert {f.severity for f in findings} == {"ok"}
    assert only(findings, "spf.lookups").details["lookups"] == 0


def test_lookups_are_counted_through_includes_and_redirects() -> None:
    """Terms of included and redirected-to records add to the top's total."""
    zone = {
        ("example.test", "TXT"): ["v=spf1 a mx include:a.test redirect=b.test"],
        ("example.test", "A"): ["192.0.2.1"],
        ("example.test", "MX"): [(10, dns.name.from_text("mx.example.test"))],
        ("a.test", "TXT"): ["v=spf1 exists:x.a.test ~all"],
        ("x.a.test", "A"): ["127.0.0.2"],
        ("b.test", "TXT"): ["v=spf1 a:h.b.test -all"],
        ("h.b.test", "A"): ["192.0.2.2"],
    }

    findings = audit(zone)

    lookups = only(findings, "spf.lookups")
    assert lookups.severity == "ok"
    assert lookups.details["lookups"] == 6
    assert lookups.details["by_domain"] == {"example.test": 4, "a.test": 1, "b.test": 1}
    assert only(findings, "spf.all").details["term"] == "-all"


def test_eleven_lookups_are_an_error() -> None:
    """One term over the limit of ten is permerror at receivers."""
    terms = " ".join(f"a:h{n}.example.test" for n in range(11))
    zone: dict[tuple[str, str], list[object]] = {("example.test", "TXT"): [f"v=spf1 {terms} -all"]}
    zone.update({(f"h{n}.example.test", "A"): ["192.0.2.1"] for n in range(11)})

    assert only(audit(zone), "spf.lookups").severity == "error"


def test_void_lookups_warn_then_fail_past_two() -> None:
    """Two void lookups are a warning, three an error."""
    two = {("example.test", "TXT"): ["v=spf1 a:g1.example.test mx:g2.example.test -all"]}
    three = {("example.test", "TXT"): ["v=spf1 a:g1.test a:g2.test a:g3.test -all"]}

    assert only(audit(two), "spf.void").severity == "warning"
    assert only(audit(three), "spf.void").severity == "error"


def test_an_include_loop_is_found_and_not_followed_again() -> None:
    """a includes b includes a: one loop finding with the path."""
    zone = {
        ("example.test", "TXT"): ["v=spf1 include:b.test -all"],
        ("b.test", "TXT"): ["v=spf1 include:example.test -all"],
    }

    loop = only(audit(zone), "spf.loop")

    assert loop.severity == "error"
    assert loop.details["path"] == ["example.test", "b.test", "example.test"]


def test_an_include_without_a_record_is_an_error() -> None:
    """Including a domain without SPF is permerror (RFC 7208 §5.2)."""
    zone = {("example.test", "TXT"): ["v=spf1 include:gone.test -all"]}

    finding = only(audit(zone), "spf.include")

    assert finding.severity == "error"
    assert finding.details["domain"] == "gone.test"


def test_two_records_and_syntax_errors_are_errors() -> None:
    """Two v=spf1 records, or an unknown mechanism, stop the audit with an error."""
    two = {("example.test", "TXT"): ["v=spf1 -all", "v=spf1 mx -all"]}
    bad = {("example.test", "TXT"): ["v=spf1 foo:bar -all"]}

    assert only(audit(two), "spf.multiple").severity == "error"
    assert only(audit(bad), "spf.syntax").severity == "error"


def test_no_record_is_an_error_and_other_txt_is_ignored() -> None:
    """A verification TXT record is not SPF."""
    finding = only(audit({("example.test", "TXT"): ["google-site-verification=x"]}), "spf.record")

    assert finding.severity == "error"
    assert "no SPF record" in finding.message


def test_endings_are_judged_by_qualifier() -> None:
    """+all is an error, ?all and no all are warnings, ~all is ok."""

    def ending(record: str) -> str:
        return only(audit({("example.test", "TXT"): [record]}), "spf.all").severity

    assert ending("v=spf1 +all") == "error"
    assert ending("v=spf1 ?all") == "warning"
    assert ending("v=spf1 ip4:192.0.2.1") == "warning"
    assert ending("v=spf1 ~all") == "ok"


def test_plus_all_in_an_included_record_is_an_error() -> None:
    """An include that matches everyone makes everyone pass."""
    zone = {
        ("example.test", "TXT"): ["v=spf1 include:open.test -all"],
        ("open.test", "TXT"): ["v=spf1 +all"],
    }

    severities = {f.severity for f in audit(zone) if f.check == "spf.all"}

    assert severities == {"error", "ok"}


def test_ptr_is_a_warning() -> None:
    """RFC 7208 §5.5 says ptr SHOULD NOT be used."""
    findings = audit({("example.test", "TXT"): ["v=spf1 ptr -all"]})

    assert only(findings, "spf.ptr").severity == "warning"


def test_client_dependent_macros_are_counted_not_followed() -> None:
    """exists:%{i}... depends on the client: one lookup, an info finding."""
    findings = audit({("example.test", "TXT"): ["v=spf1 exists:%{i}.spf.example.test -all"]})

    assert only(findings, "spf.lookups").details["lookups"] == 1
    assert only(findings, "spf.macros").severity == "info"


def test_redirect_with_all_is_ignored_with_a_warning() -> None:
    """RFC 7208 §6.1: redirect= is ignored when the record has 'all'."""
    findings = audit({("example.test", "TXT"): ["v=spf1 -all redirect=other.test"]})

    assert only(findings, "spf.redirect").severity == "warning"
    assert only(findings, "spf.lookups").details["lookups"] == 0


def test_a_servfail_is_a_could_not_be_checked_error() -> None:
    """A transient failure becomes spf.dns, not an exception."""
    findings = audit({}, failing=frozenset({"example.test"}))

    finding = only(findings, "spf.dns")
    assert finding.severity == "error"
    assert "could not be checked" in finding.message


def test_a_failed_term_lookup_is_a_could_not_be_checked_error() -> None:
    """A SERVFAIL for an 'a' term's name becomes spf.dns naming the term."""
    zone = {("example.test", "TXT"): ["v=spf1 a:slow.example.test -all"]}

    finding = only(audit(zone, failing=frozenset({"slow.example.test"})), "spf.dns")

    assert finding.severity == "error"
    assert "'a:slow.example.test'" in finding.message


def test_the_current_domain_macro_is_expanded_and_followed() -> None:
    """%{d} is known to an audit: the include is followed, not reported as client macros."""
    zone = {
        ("example.test", "TXT"): ["v=spf1 include:_spf.%{d} -all"],
        ("_spf.example.test", "TXT"): ["v=spf1 ptr ~all"],
    }

    findings = audit(zone)

    assert only(findings, "spf.lookups").details["by_domain"] == {
        "example.test": 1,
        "_spf.example.test": 1,
    }
    assert only(findings, "spf.ptr").details["domain"] == "_spf.example.test"
    assert not [f for f in findings if f.check == "spf.macros"]


def test_more_than_ten_mx_records_is_an_error() -> None:
    """An 'mx' term meeting eleven exchangers is permerror (RFC 7208 §4.6.4)."""
    exchangers = [(10, dns.name.from_text(f"mx{n}.example.test")) for n in range(11)]
    zone = {("example.test", "TXT"): ["v=spf1 mx -all"], ("example.test", "MX"): exchangers}

    errors = [f for f in audit(zone) if f.check == "spf.lookups" and f.severity == "error"]

    assert [f.details["term"] for f in errors] == ["mx"]
