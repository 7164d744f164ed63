"""Tests for mailwright.auth.spf.lookups: the worst-case DNS cost of a record (RFC 7208 §4.6.4)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dns.name
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwright.auth.spf import LookupCount, count_lookups, count_static
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Evaluation, Query


class Zone:
    """Answers by (name, type); other names NXDOMAIN; failures injected; questions kept."""

    def __init__(self, records: Mapping[str, Sequence[tuple[str, Any]]]) -> None:
        self.records: dict[tuple[str, str], list[Any]] = {}
        self.failing: set[str] = set()
        self.questions: list[tuple[str, str]] = []
        for name, entries in records.items():
            for rdtype, value in entries:
                if rdtype == "TXT":
                    value = value.encode()
                elif rdtype == "MX":
                    value = (10, dns.name.from_text(value))
                self.records.setdefault((name, rdtype), []).append(value)

    def __call__(self, query: Query) -> Answer:
        self.questions.append((query.text, query.rdtype))
        if query.text in self.failing:
            return Answer(query, LookupStatus.SERVFAIL, detail="injected")
        values = self.records.get((query.text, query.rdtype))
        if values:
            return Answer(query, LookupStatus.ANSWER, tuple(values))
        if any(name == query.text for name, _ in self.records):
            return Answer(query, LookupStatus.NODATA)
        return Answer(query, LookupStatus.NXDOMAIN)

    def run(self, evaluation: Evaluation[LookupCount]) -> LookupCount:
        try:
            step = next(evaluation)
            while True:
                step = evaluation.send(tuple(self(query) for query in step))
        except StopIteration as done:
            counted: LookupCount = done.value
            return counted


def spf(record: str) -> tuple[str, Any]:
    return ("TXT", record)


def test_every_dns_querying_term_counts_one_and_networks_none() -> None:
    """a, mx, ptr, exists, include and redirect count; ip4, ip6 and all do not."""
    count = count_static(
        "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a mx ptr exists:x.example.com "
        "include:i.example.com ?all"
    )

    assert count.total == 5
    assert [term.term for term in count.terms] == [
        "a",
        "mx",
        "ptr",
        "exists:x.example.com",
        "include:i.example.com",
    ]
    assert not count.followed


def test_a_static_count_warns_that_includes_were_not_followed() -> None:
    """Without DNS the total of a record with includes is only a lower bound."""
    count = count_static("v=spf1 include:i.example.com -all")

    assert any("not followed" in warning for warning in count.warnings())


def test_includes_and_redirects_are_followed_through_dns() -> None:
    """Each include costs one and its target's terms; the redirect too (§5.2, §6.1)."""
    zone = Zone(
        {
            "example.com": [spf("v=spf1 include:a.example.com redirect=b.example.com")],
            "a.example.com": [spf("v=spf1 a:h.example.com mx:h.example.com -all")],
            "b.example.com": [spf("v=spf1 exists:h.example.com -all")],
            "h.example.com": [("A", "192.0.2.1"), ("MX", "h.example.com.")],
        }
    )

    count = zone.run(count_lookups("example.com"))

    assert count.total == 5
    assert count.ok
    assert [(term.term, term.depth, term.lookups) for term in count.terms] == [
        ("include:a.example.com", 0, 3),
        ("a:h.example.com", 1, 1),
        ("mx:h.example.com", 1, 1),
        ("redirect=b.example.com", 0, 2),
        ("exists:h.example.com", 1, 1),
    ]


def test_a_chain_of_includes_over_ten_is_over_the_limit() -> None:
    """Eleven includes in a chain are over the limit of ten (§4.6.4)."""
    records = {
        f"d{n}.example.com": [spf(f"v=spf1 include:d{n + 1}.example.com -all")] for n in range(11)
    }
    records["d11.example.com"] = [spf("v=spf1 -all")]
    zone = Zone(records)

    count = zone.run(count_lookups("d0.example.com"))

    assert count.total == 11
    assert count.over_limit
    assert not count.ok
    assert "11 DNS-querying terms" in count.warnings()[0]


def test_loops_are_reported_and_not_entered() -> None:
    """An include leading back to a record on its path is a loop; the walk stops there."""
    zone = Zone(
        {
            "example.com": [spf("v=spf1 include:a.example.com -all")],
            "a.example.com": [spf("v=spf1 include:example.com -all")],
        }
    )

    count = zone.run(count_lookups("example.com"))

    assert count.loops == ("example.com -> a.example.com -> example.com",)
    assert count.total == 2
    assert len(zone.questions) == 2


def test_a_record_including_its_own_domain_is_a_loop() -> None:
    """A record given as text with its domain sees an include of that domain as a loop."""
    zone = Zone({})

    count = zone.run(count_lookups("v=spf1 include:example.com -all", domain="example.com"))

    assert count.loops == ("example.com -> example.com",)
    assert zone.questions == []


def test_a_domain_included_twice_is_fetched_once_and_counted_twice() -> None:
    """The evaluator counts every include it evaluates, so the count does too."""
    zone = Zone(
        {
            "example.com": [spf("v=spf1 include:a.example.com include:b.example.com -all")],
            "a.example.com": [spf("v=spf1 include:c.example.com -all")],
            "b.example.com": [spf("v=spf1 include:c.example.com -all")],
            "c.example.com": [spf("v=spf1 a:c.example.com -all")],
        }
    )

    count = zone.run(count_lookups("example.com"))

    assert count.total == 6
    assert zone.questions.count(("c.example.com", "TXT")) == 1


def test_lookups_that_find_nothing_are_void() -> None:
    """a, mx and exists whose names hold nothing are void lookups; three are too many."""
    zone = Zone(
        {
            "example.com": [
                spf("v=spf1 a:n1.example.com mx:n2.example.com exists:n3.example.com -all")
            ]
        }
    )

    count = zone.run(count_lookups("example.com"))

    assert count.voids == 3
    assert count.over_limit
    assert [term.void for term in count.terms] == [True, True, True]
    assert any("3 void lookups" in warning for warning in count.warnings())


def test_an_include_target_without_a_record_is_an_error() -> None:
    """A check reaching an include of a domain without SPF is permerror (§5.2)."""
    zone = Zone({"example.com": [spf("v=spf1 include:gone.example.com -all")]})

    count = zone.run(count_lookups("example.com"))

    assert count.errors == (
        "'include:gone.example.com': gone.example.com does not exist: permerror (RFC 7208 §5.2)",
    )


def test_syntax_errors_in_included_records_are_errors() -> None:
    """An included record that does not parse is reported with its reason."""
    zone = Zone(
        {
            "example.com": [spf("v=spf1 include:bad.example.com -all")],
            "bad.example.com": [spf("v=spf1 frobnicate")],
        }
    )

    count = zone.run(count_lookups("example.com"))

    assert "invalid" in count.errors[0]
    assert "frobnicate" in count.errors[0]


def test_a_failed_lookup_is_reported_as_temperror() -> None:
    """A SERVFAIL on the way is an error a check would meet as temperror."""
    zone = Zone({"example.com": [spf("v=spf1 include:slow.example.com -all")]})
    zone.failing.add("slow.example.com")

    count = zone.run(count_lookups("example.com"))

    assert "temperror" in count.errors[0]


def test_more_than_ten_mx_records_is_an_error() -> None:
    """An mx term meeting eleven MX records is permerror (§4.6.4)."""
    records: dict[str, list[tuple[str, Any]]] = {"example.com": [spf("v=spf1 mx -all")]}
    records["example.com"] += [("MX", f"mx{n}.example.com.") for n in range(11)]
    zone = Zone(records)

    count = zone.run(count_lookups("example.com"))

    assert "11 MX records" in count.errors[0]


def test_terms_after_all_and_a_redirect_beside_all_are_not_counted() -> None:
    """Nothing after 'all' is ever evaluated, nor a redirect in a record with 'all' (§6.1)."""
    count = count_static("v=spf1 a -all mx redirect=r.example.com", domain="example.com")

    assert count.total == 1
    assert len(count.notes) == 2


def test_terms_with_macros_are_counted_without_being_followed() -> None:
    """A target built from the client's data cannot be looked up ahead of time."""
    zone = Zone(
        {"example.com": [spf("v=spf1 exists:%{i}.bl.example.com include:%{l}.example.net -all")]}
    )

    count = zone.run(count_lookups("example.com"))

    assert count.total == 2
    assert all("macros" in term.note for term in count.terms)
    assert [term.problem for term in count.terms] == ["macros", "macros"]
    assert zone.questions == [("example.com", "TXT")]


def test_the_current_and_the_sender_domain_macros_are_expanded_and_followed() -> None:
    """%{d} is the domain of the record walked, %{o} the domain at the top (§7.3)."""
    zone = Zone(
        {
            "example.com": [spf("v=spf1 include:_spf.%{d} -all")],
            "_spf.example.com": [spf("v=spf1 exists:%{d}.%{o}.example.net -all")],
            "_spf.example.com.example.com.example.net": [("A", "127.0.0.2")],
        }
    )

    count = zone.run(count_lookups("example.com"))

    assert count.total == 2
    assert count.ok
    assert ("_spf.example.com.example.com.example.net", "A") in zone.questions


def test_a_domain_without_a_record_is_an_error() -> None:
    """Counting a domain that publishes nothing says so."""
    count = Zone({}).run(count_lookups("nothing.example.com"))

    assert count.errors == ("nothing.example.com does not exist",)
    assert count.total == 0


@pytest.mark.parametrize("source", ["", "localhost", "192.0.2.1", "v=spf1 bogus:"])
def test_unusable_input_is_an_error_not_an_exception(source: str) -> None:
    """A name that cannot be checked or a record that does not parse gives an error."""
    count = Zone({}).run(count_lookups(source))

    assert count.errors
    assert not count.ok


def test_a_hostile_tree_of_includes_is_cut_off() -> None:
    """A tree of distinct includes stops after max_records records, saying so."""
    records = {
        f"n{n}.example.com": [
            spf(f"v=spf1 include:n{2 * n + 1}.example.com include:n{2 * n + 2}.example.com")
        ]
        for n in range(200)
    }
    zone = Zone(records)

    count = zone.run(count_lookups("n0.example.com", max_records=20))

    assert sum(1 for _, rdtype in zone.questions if rdtype == "TXT") == 20
    assert any("stopped after 20 records" in error for error in count.errors)


TERMS = st.sampled_from(
    ["a", "mx", "ptr", "ip4:192.0.2.1", "include:x.example.com", "exists:%{i}.example.com", "-all"]
)


@settings(max_examples=100)
@given(st.lists(TERMS, max_size=15))
def test_the_total_is_the_number_of_terms_listed(terms: list[str]) -> None:
    """Every counted term has an entry, and the voids are the entries marked void."""
    zone = Zone({"x.example.com": [spf("v=spf1 " + " ".join(terms))]})

    count = zone.run(count_lookups("v=spf1 " + " ".join(terms), domain="example.com"))

    assert count.total == len(count.terms)
    assert count.voids == sum(term.void for term in count.terms)
