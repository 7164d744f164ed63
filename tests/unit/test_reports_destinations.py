"""Tests for mailwright.reports.destinations: rua URIs checked, external ones verified."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from tests.dmarc_reports import zone_answers

from mailwright.dns.queries import Answer, Query, run_sync
from mailwright.reports.destinations import (
    MAX_DESTINATIONS,
    Destination,
    Verdict,
    apply_size_limit,
    check_destinations,
    parse_report_uri,
)

#: DMARC records of the domains the tests use (the Tree Walk reads them).
RECORDS = {
    "_dmarc.example.com": ["v=DMARC1; p=reject; rua=mailto:dmarc@example.com"],
    "_dmarc.vendor.example": ["v=DMARC1; p=none"],
}


def check(
    rua: Sequence[str],
    extra: Mapping[str, Sequence[str]] | None = None,
    *,
    domain: str = "example.com",
    failing: Sequence[str] = (),
    asked: list[str] | None = None,
) -> tuple[Destination, ...]:
    answer = zone_answers({**RECORDS, **(extra or {})}, failing)

    def recording(query: Query) -> Answer:
        if asked is not None:
            asked.append(query.text)
        return answer(query)

    return run_sync(check_destinations(domain, rua), recording)


def verdicts(destinations: Sequence[Destination]) -> list[tuple[str | None, Verdict]]:
    return [(d.mailbox, d.verdict) for d in destinations]


def test_the_policy_domains_own_mailbox_needs_no_dns() -> None:
    """A mailbox at the policy domain itself is accepted without a query."""
    asked: list[str] = []

    [destination] = check(["mailto:dmarc@example.com"], asked=asked)

    assert destination.verdict is Verdict.ACCEPTED
    assert not destination.external
    assert asked == []


def test_a_mailbox_in_the_same_organizational_domain_is_accepted() -> None:
    """reports.example.com shares example.com's Organizational Domain: no agreement needed."""
    asked: list[str] = []

    [destination] = check(["mailto:agg@reports.example.com"], asked=asked)

    assert destination.verdict is Verdict.ACCEPTED
    assert not any("_report._dmarc" in name for name in asked)
    assert "_dmarc.reports.example.com" in asked


def test_an_external_destination_with_an_agreement_record_is_accepted() -> None:
    """example.com._report._dmarc.vendor.example holding v=DMARC1 authorises the vendor."""
    asked: list[str] = []

    [destination] = check(
        ["mailto:rua@vendor.example"],
        {"example.com._report._dmarc.vendor.example": ["v=DMARC1"]},
        asked=asked,
    )

    assert destination.verdict is Verdict.ACCEPTED
    assert destination.external
    assert asked[-1] == "example.com._report._dmarc.vendor.example"


def test_an_external_destination_without_agreement_is_refused() -> None:
    """No record at the agreement name: the destination is dropped, and the reason says where."""
    [destination] = check(["mailto:victim@vendor.example"])

    assert destination.verdict is Verdict.REFUSED
    assert "example.com._report._dmarc.vendor.example" in destination.reason


def test_a_txt_record_that_is_not_dmarc_does_not_agree() -> None:
    """Only records starting v=DMARC1 count (RFC 9990 §4 step 6)."""
    [destination] = check(
        ["mailto:rua@vendor.example"],
        {"example.com._report._dmarc.vendor.example": ["v=spf1 -all", "hello"]},
    )

    assert destination.verdict is Verdict.REFUSED
    assert "v=DMARC1" in destination.reason


def test_a_wildcard_agreement_covers_every_policy_domain() -> None:
    """*._report._dmarc.vendor.example, as the fixture zone serves it for any name below."""
    answer = zone_answers(RECORDS)

    def wildcard(query: Query) -> Answer:
        if query.text.endswith("._report._dmarc.vendor.example"):
            return zone_answers({query.text: ["v=DMARC1;"]})(query)
        return answer(query)

    [destination] = run_sync(
        check_destinations("example.com", ["mailto:a@vendor.example"]), wildcard
    )

    assert destination.verdict is Verdict.ACCEPTED


def test_a_transient_failure_leaves_the_verdict_unknown() -> None:
    """SERVFAIL on the agreement name: UNKNOWN, to be tried again later."""
    [destination] = check(
        ["mailto:rua@vendor.example"], failing=["example.com._report._dmarc.vendor.example"]
    )

    assert destination.verdict is Verdict.UNKNOWN


def test_a_failed_tree_walk_leaves_the_verdict_unknown() -> None:
    """When the Organizational Domain cannot be found, neither can the need for an agreement."""
    [destination] = check(["mailto:rua@vendor.example"], failing=["_dmarc.vendor.example"])

    assert destination.verdict is Verdict.UNKNOWN
    assert "Organizational Domain unknown" in destination.reason


def test_the_agreement_may_replace_the_destination_on_the_same_host() -> None:
    """An agreeing record's rua on the same host replaces the published URI (§4 step 9)."""
    [destination] = check(
        ["mailto:rua@vendor.example"],
        {
            "example.com._report._dmarc.vendor.example": [
                "v=DMARC1; rua=mailto:customer-42@vendor.example!5m"
            ]
        },
    )

    assert destination.mailbox == "customer-42@vendor.example"
    assert destination.verdict is Verdict.ACCEPTED
    assert destination.size_limit == 5 * 1024 * 1024
    assert destination.replaces == "mailto:rua@vendor.example"


def test_a_replacement_on_another_host_refuses_both() -> None:
    """Pointing elsewhere again is refused: neither the original nor the override is used."""
    [destination] = check(
        ["mailto:rua@vendor.example"],
        {"example.com._report._dmarc.vendor.example": ["v=DMARC1; rua=mailto:x@elsewhere.test"]},
    )

    assert destination.verdict is Verdict.REFUSED
    assert destination.mailbox == "rua@vendor.example"
    assert "another host" in destination.reason


def test_only_mailto_uris_are_supported() -> None:
    """https: and other schemes are refused with a reason; the mailto: beside them is kept."""
    destinations = check(["https://reports.example.com/dmarc", "mailto:dmarc@example.com"])

    assert verdicts(destinations) == [
        (None, Verdict.REFUSED),
        ("dmarc@example.com", Verdict.ACCEPTED),
    ]
    assert "only mailto:" in destinations[0].reason


@pytest.mark.parametrize("uri", ["not a uri", "mailto:", "mailto:a@b@c", "mailto:a@b,mailto:c@d"])
def test_unusable_uris_are_refused(uri: str) -> None:
    """Malformed URIs and URIs naming no single mailbox are refused, never raised."""
    [destination] = check([uri])

    assert destination.verdict is Verdict.REFUSED


def test_a_mailbox_listed_twice_is_used_once() -> None:
    """The second mention of the same mailbox (domain case aside) is refused."""
    destinations = check(["mailto:dmarc@example.com", "mailto:dmarc@EXAMPLE.com!1m"])

    assert verdicts(destinations) == [
        ("dmarc@example.com", Verdict.ACCEPTED),
        ("dmarc@example.com", Verdict.REFUSED),
    ]


def test_destinations_beyond_the_limit_are_refused() -> None:
    """At most MAX_DESTINATIONS URIs are used."""
    rua = [f"mailto:r{i}@example.com" for i in range(MAX_DESTINATIONS + 2)]

    destinations = check(rua)

    assert [d.verdict for d in destinations].count(Verdict.ACCEPTED) == MAX_DESTINATIONS
    assert "more than" in destinations[-1].reason


def test_an_agreement_name_too_long_for_dns_is_refused() -> None:
    """RFC 9990 §4 step 4: a name past DNS limits cannot show agreement."""
    long_domain = ".".join(["a" * 60] * 3 + ["b" * 40]) + ".example.com"  # 235 octets
    records = {f"_dmarc.{long_domain}": ["v=DMARC1; p=none"]}

    [destination] = check(["mailto:r@vendor.example"], records, domain=long_domain)

    assert destination.verdict is Verdict.REFUSED
    assert "too long" in destination.reason


def test_unicode_domains_are_asked_as_a_labels() -> None:
    """A mailbox domain in U-labels (percent-encoded in the URI) is converted (§4 step 3)."""
    asked: list[str] = []

    [destination] = check(["mailto:r@b%C3%BCcher.example"], asked=asked)

    assert destination.mailbox == "r@xn--bcher-kva.example"

    assert "example.com._report._dmarc.xn--bcher-kva.example" in asked


def test_results_keep_the_published_order() -> None:
    """Destinations come back in the rua's order, however they were decided."""
    destinations = check(
        ["mailto:v@vendor.example", "ftp://x", "mailto:dmarc@example.com"],
        {"example.com._report._dmarc.vendor.example": ["v=DMARC1"]},
    )

    assert [d.uri for d in destinations] == [
        "mailto:v@vendor.example",
        "ftp://x",
        "mailto:dmarc@example.com",
    ]


def test_a_report_larger_than_the_size_limit_skips_that_destination() -> None:
    """The obsolete !size limit is honoured against the encoded attachment size."""
    destinations = check(["mailto:small@example.com!1k", "mailto:big@example.com!10m"])

    limited = apply_size_limit(destinations, 1025)

    assert verdicts(limited) == [
        ("small@example.com", Verdict.REFUSED),
        ("big@example.com", Verdict.ACCEPTED),
    ]
    assert "1025 octets" in limited[0].reason
    assert apply_size_limit(destinations, 1024)[0].verdict is Verdict.ACCEPTED


def test_parse_report_uri_reads_the_size_suffix() -> None:
    """mailto:a@b.example!10m is the URI and a limit of 10 MiB; a list is not one URI."""
    uri = parse_report_uri("mailto:a@b.example!10m")

    assert uri is not None
    assert (uri.uri, uri.size_limit) == ("mailto:a@b.example", 10 * 1024 * 1024)
    assert parse_report_uri("mailto:a@b.example; p=none") is None
