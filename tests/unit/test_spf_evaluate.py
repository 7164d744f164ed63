"""Tests for mailwright.auth.spf.evaluate: check_host() against fixture zones (RFC 7208)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import dns.asyncresolver
import dns.name
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwright.auth.spf import (
    Limits,
    Result,
    SpfResult,
    check_host,
    check_spf,
    helo_identity,
    identity_for,
)
from mailwright.auth.spf.identity import _VISIBLE_NOT_AT, checkable_domain
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, CachingResolver, Evaluation, Query

Records = Mapping[str, Sequence[tuple[str, Any]]]


class Zone:
    """A fixture zone: answers by name and type, injected failures, every step kept.

    Names not held are NXDOMAIN, held names asked for another type NODATA.
    Values are written as in a zone file (``("MX", "10 mx.example.com")``)
    and decoded the way :class:`~mailwright.dns.queries.CachingResolver`
    decodes answers.
    """

    def __init__(self, records: Records | None = None) -> None:
        self.records: dict[tuple[bytes, str], list[Any]] = {}
        self.names: set[bytes] = set()
        self.faults: dict[tuple[bytes, str], LookupStatus] = {}
        self.steps: list[list[tuple[str, str]]] = []
        for name, entries in (records or {}).items():
            for rdtype, value in entries:
                self.add(name, rdtype, value)

    def add(self, name: str, rdtype: str, value: Any) -> None:
        key = _key(name)
        self.names.add(key)
        self.records.setdefault((key, rdtype), []).append(_decode(rdtype, value))

    def fail(self, name: str, rdtype: str, status: LookupStatus = LookupStatus.SERVFAIL) -> None:
        self.faults[(_key(name), rdtype)] = status

    def __call__(self, query: Query) -> Answer:
        key = (b".".join(query.name.labels[:-1]).lower(), query.rdtype)
        if key in self.faults:
            return Answer(query, self.faults[key], detail="injected")
        if key in self.records:
            return Answer(query, LookupStatus.ANSWER, tuple(self.records[key]))
        if key[0] in self.names:
            return Answer(query, LookupStatus.NODATA)
        return Answer(query, LookupStatus.NXDOMAIN)

    def run(self, evaluation: Evaluation[SpfResult]) -> SpfResult:
        """Drive ``evaluation`` to its result, keeping each step's questions."""
        try:
            step = next(evaluation)
            while True:
                self.steps.append([(query.text, query.rdtype) for query in step])
                step = evaluation.send(tuple(self(query) for query in step))
        except StopIteration as done:
            result: SpfResult = done.value
            return result

    @property
    def questions(self) -> list[tuple[str, str]]:
        return [question for step in self.steps for question in step]


def _key(name: str) -> bytes:
    return name.rstrip(".").lower().encode("utf-8")


def _decode(rdtype: str, value: Any) -> Any:
    if rdtype == "TXT":
        return value if isinstance(value, bytes) else value.encode("utf-8")
    if rdtype == "MX":
        preference, exchange = value.split()
        return (int(preference), dns.name.from_text(exchange))
    if rdtype in ("PTR", "CNAME"):
        return dns.name.from_text(value)
    return value


def check(
    zone: Zone, ip: str = "192.0.2.1", sender: str = "alice@example.com", **options: Any
) -> SpfResult:
    """check_host() for ``sender``'s domain, driven against ``zone``."""
    domain = sender.rpartition("@")[2]
    options.setdefault("helo", "mail.example.net")
    return zone.run(check_host(ip, domain, sender, **options))


def spf(record: str, more: Records | None = None) -> Zone:
    """A zone where example.com publishes ``record``, and the names of ``more``."""
    zone = Zone(more)
    zone.add("example.com", "TXT", record)
    return zone


# -- results ------------------------------------------------------------------------


def test_a_matching_mechanism_passes() -> None:
    """The first mechanism that matches decides, with its qualifier (§4.6.2)."""
    zone = spf("v=spf1 ip4:192.0.2.0/24 -all")

    outcome = check(zone)

    assert outcome.result is Result.PASS
    assert outcome.reason == "example.com: ip4:192.0.2.0/24 matched"
    assert outcome.explanation == ""


def test_minus_all_fails_with_the_default_explanation() -> None:
    """A fail without exp= is explained by the receiver's default text (§6.2)."""
    zone = spf("v=spf1 ip4:198.51.100.1 -all")

    outcome = check(zone)

    assert outcome.result is Result.FAIL
    assert outcome.explanation == "SPF: 192.0.2.1 is not allowed to send mail for example.com"


@pytest.mark.parametrize(
    ("record", "result"),
    [
        ("v=spf1 +all", Result.PASS),
        ("v=spf1 -all", Result.FAIL),
        ("v=spf1 ~all", Result.SOFTFAIL),
        ("v=spf1 ?all", Result.NEUTRAL),
        ("v=spf1 ip4:198.51.100.1", Result.NEUTRAL),
        ("v=spf1", Result.NEUTRAL),
        ("v=spf1 moo", Result.PERMERROR),
    ],
)
def test_each_qualifier_and_the_default_give_their_result(record: str, result: Result) -> None:
    """+, -, ~ and ? give pass, fail, softfail, neutral; no match is neutral (§4.7)."""
    zone = spf(record)

    assert check(zone).result is result


def test_a_domain_without_an_spf_record_is_none() -> None:
    """Other TXT records do not make an SPF record (§4.5)."""
    zone = spf("google-site-verification=abc")

    outcome = check(zone)

    assert outcome.result is Result.NONE
    assert outcome.reason == "example.com has no SPF record"


def test_a_domain_that_does_not_exist_is_none() -> None:
    """NXDOMAIN for the TXT lookup gives none (§4.3)."""
    outcome = check(Zone())

    assert outcome.result is Result.NONE
    assert outcome.reason == "example.com does not exist"


@pytest.mark.parametrize("status", [LookupStatus.SERVFAIL, LookupStatus.TIMEOUT])
def test_a_failed_txt_lookup_is_temperror(status: LookupStatus) -> None:
    """SERVFAIL or a timeout when fetching the record is temperror (§4.4)."""
    zone = Zone()
    zone.fail("example.com", "TXT", status)

    outcome = check(zone)

    assert outcome.result is Result.TEMPERROR
    assert "the TXT lookup for example.com failed" in outcome.reason


def test_two_spf_records_are_permerror() -> None:
    """Exactly one SPF record is allowed, even if both are the same (§4.5)."""
    zone = Zone({"example.com": [("TXT", "v=spf1 -all"), ("TXT", "V=SPF1 +all")]})

    outcome = check(zone)

    assert outcome.result is Result.PERMERROR
    assert outcome.reason == ("example.com has 2 SPF records; only one is allowed (RFC 7208 §4.5)")


def test_a_syntax_error_is_permerror_with_its_reason() -> None:
    """An invalid record is permerror before any mechanism is evaluated (§4.6)."""
    zone = spf("v=spf1 a:example.com ip4:1.2.3.4/33")

    outcome = check(zone)

    assert outcome.result is Result.PERMERROR
    assert "CIDR length 33 is over 32" in outcome.reason
    assert zone.questions == [("example.com", "TXT")]


@pytest.mark.parametrize(
    "domain",
    ["", "localhost", "[192.0.2.1]", "a..example.com", "x" * 64 + ".example.com", "192.0.2.1"],
)
def test_uncheckable_domains_are_none_without_any_query(domain: str) -> None:
    """Malformed, single-label and address domains give none at once (§4.3)."""
    zone = Zone()

    outcome = zone.run(check_host("192.0.2.1", domain, f"alice@{domain}"))

    assert outcome.result is Result.NONE
    assert zone.steps == []


@given(st.text(alphabet=st.characters(max_codepoint=0x80), min_size=1, max_size=12))
def test_checkable_names_hold_visible_ascii_but_at(name: str) -> None:
    """checkable_domain takes visible ASCII but @, as a test of each character would."""
    by_character = all("!" <= char <= "~" and char != "@" for char in name)

    by_pattern = _VISIBLE_NOT_AT.fullmatch(name) is not None

    assert by_pattern == by_character
    if name.isascii() and not by_character:
        assert checkable_domain("a" + name + ".example") is None


def test_an_invalid_client_address_is_none() -> None:
    """A client address that is not an IP address leaves nothing to check."""
    outcome = Zone().run(check_host("not-an-ip", "example.com", "alice@example.com"))

    assert outcome.result is Result.NONE
    assert "is not an IP address" in outcome.reason


# -- mechanisms ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "result"),
    [("192.0.2.200", Result.PASS), ("192.0.3.1", Result.FAIL), ("2001:db8::ffff", Result.PASS)],
)
def test_a_matches_within_its_cidr_lengths(ip: str, result: Result) -> None:
    """a/24//64 compares the client with the target's addresses of its own family (§5.3)."""
    zone = spf(
        "v=spf1 a/24//64 -all", {"example.com": [("A", "192.0.2.1"), ("AAAA", "2001:db8::1")]}
    )

    assert check(zone, ip).result is result


def test_mx_asks_for_the_addresses_of_every_exchanger_in_one_step() -> None:
    """The exchangers' address lookups go out together, for the client's family (§5.4)."""
    zone = spf(
        "v=spf1 mx -all",
        {
            "example.com": [("MX", "10 mx1.example.com."), ("MX", "20 mx2.example.com.")],
            "mx1.example.com": [("A", "198.51.100.1")],
            "mx2.example.com": [("A", "192.0.2.1")],
        },
    )

    outcome = check(zone)

    assert outcome.result is Result.PASS
    assert zone.steps[-1] == [("mx1.example.com", "A"), ("mx2.example.com", "A")]


def test_mx_without_records_does_not_fall_back_to_the_address() -> None:
    """No MX record means no match; the implicit MX of SMTP is not used (§5.4)."""
    zone = spf("v=spf1 mx -all", {"example.com": [("A", "192.0.2.1")]})

    assert check(zone).result is Result.FAIL


def test_a_null_mx_matches_nothing_and_asks_nothing_more() -> None:
    """An MX of "." (RFC 7505) names no host to look up."""
    zone = spf("v=spf1 mx ?all", {"example.com": [("MX", "0 .")]})

    outcome = check(zone)

    assert outcome.result is Result.NEUTRAL
    assert zone.questions == [("example.com", "TXT"), ("example.com", "MX")]


def test_exists_asks_for_an_a_record_even_for_ipv6_clients() -> None:
    """exists matches any A record of the expanded name, whatever the client (§5.7)."""
    nibbles = "1.0.0.0" + ".0" * 20 + ".8.b.d.0.1.0.0.2"
    zone = spf(
        "v=spf1 exists:%{ir}.%{v}.allow.example.com -all",
        {f"{nibbles}.ip6.allow.example.com": [("A", "127.0.0.2")]},
    )

    outcome = check(zone, "2001:db8::1")

    assert outcome.result is Result.PASS
    assert zone.questions[-1][1] == "A"


def test_ptr_matches_a_validated_name_under_the_target() -> None:
    """A PTR name whose addresses include the client and that ends in the target (§5.5)."""
    zone = spf(
        "v=spf1 ptr:example.com -all",
        {
            "1.2.0.192.in-addr.arpa": [("PTR", "other.example.org."), ("PTR", "mx.Example.COM.")],
            "other.example.org": [("A", "192.0.2.1")],
            "mx.example.com": [("A", "192.0.2.1")],
        },
    )

    assert check(zone).result is Result.PASS


def test_ptr_names_that_do_not_lead_back_to_the_client_are_not_validated() -> None:
    """A PTR name whose addresses do not include the client proves nothing (§5.5)."""
    zone = spf(
        "v=spf1 ptr -all",
        {
            "1.2.0.192.in-addr.arpa": [("PTR", "mx.example.com.")],
            "mx.example.com": [("A", "192.0.2.99")],
        },
    )

    assert check(zone).result is Result.FAIL


@pytest.mark.parametrize("status", [LookupStatus.SERVFAIL, LookupStatus.TIMEOUT])
def test_a_failed_ptr_lookup_means_no_match_rather_than_temperror(status: LookupStatus) -> None:
    """DNS errors during ptr make it fail to match (§5.5)."""
    zone = spf("v=spf1 ptr ?all")
    zone.fail("1.2.0.192.in-addr.arpa", "PTR", status)

    assert check(zone).result is Result.NEUTRAL


def test_ipv4_mapped_clients_are_evaluated_as_ipv4() -> None:
    """::ffff:192.0.2.1 matches ip4 and a records, never ip6 (§5)."""
    zone = spf("v=spf1 ip6:::ffff:0:0/96 a -all", {"example.com": [("A", "192.0.2.1")]})

    outcome = check(zone, "::ffff:192.0.2.1")

    assert outcome.result is Result.PASS
    assert outcome.ip == "192.0.2.1"
    assert outcome.reason == "example.com: a matched"


@pytest.mark.parametrize(
    ("record", "name", "rdtype"),
    [
        ("v=spf1 a:broken.example.com -all", "broken.example.com", "A"),
        ("v=spf1 mx:broken.example.com -all", "broken.example.com", "MX"),
        ("v=spf1 exists:broken.example.com -all", "broken.example.com", "A"),
        ("v=spf1 include:broken.example.com -all", "broken.example.com", "TXT"),
    ],
)
@pytest.mark.parametrize("status", [LookupStatus.SERVFAIL, LookupStatus.TIMEOUT])
def test_dns_failures_in_mechanisms_are_temperror(
    record: str, name: str, rdtype: str, status: LookupStatus
) -> None:
    """A mechanism whose lookup fails cannot be decided: temperror (§5, §5.2)."""
    zone = spf(record)
    zone.fail(name, rdtype, status)

    outcome = check(zone)

    assert outcome.result is Result.TEMPERROR
    assert "broken.example.com" in outcome.reason


def test_an_exchanger_that_matches_wins_over_one_whose_lookup_failed() -> None:
    """mx matches when some exchanger matches, and is temperror only when none does."""
    zone = spf(
        "v=spf1 mx -all",
        {
            "example.com": [("MX", "10 bad.example.com."), ("MX", "20 good.example.com.")],
            "good.example.com": [("A", "192.0.2.1")],
        },
    )
    zone.fail("bad.example.com", "A")

    assert check(zone).result is Result.PASS
    assert check(zone, "192.0.2.99").result is Result.TEMPERROR


def test_names_dns_cannot_carry_match_nothing() -> None:
    """An expanded target with an empty or over-long label is taken as not existing."""
    zone = spf("v=spf1 a:%{l}.example.com ?all")

    assert check(zone, sender="a..b@example.com").result is Result.NEUTRAL
    assert check(zone, sender="x" * 70 + "@example.com").result is Result.NEUTRAL


# -- include and redirect -----------------------------------------------------------


@pytest.mark.parametrize(
    ("included", "result"),
    [
        ("v=spf1 +all", Result.PASS),
        ("v=spf1 -all", Result.FAIL),
        ("v=spf1 ~all", Result.FAIL),
        ("v=spf1 ?all", Result.FAIL),
        ("v=spf1 moo", Result.PERMERROR),
        ("not spf at all", Result.PERMERROR),
    ],
)
def test_include_matches_only_when_the_included_check_passes(
    included: str, result: Result
) -> None:
    """pass matches; fail, softfail, neutral do not; none and permerror are permerror (§5.2)."""
    zone = spf("v=spf1 include:_spf.example.com -all", {"_spf.example.com": [("TXT", included)]})

    assert check(zone).result is result


def test_redirect_is_used_only_when_no_mechanism_matches() -> None:
    """redirect= hands over the decision after every mechanism failed to match (§6.1)."""
    zone = spf(
        "v=spf1 redirect=_spf.example.com ip4:192.0.2.1",
        {"_spf.example.com": [("TXT", "v=spf1 -all")]},
    )

    assert check(zone).result is Result.PASS
    assert check(zone, "192.0.2.2").result is Result.FAIL


def test_redirect_to_a_domain_without_a_record_is_permerror() -> None:
    """A redirect target without an SPF record gives permerror, not none (§6.1)."""
    zone = spf("v=spf1 redirect=nowhere.example.com")

    outcome = check(zone)

    assert outcome.result is Result.PERMERROR
    assert "nowhere.example.com does not exist" in outcome.reason


def test_redirect_changes_the_domain_macros_see() -> None:
    """After a redirect, %{d} and an implicit a are the target domain (§6.1)."""
    zone = spf(
        "v=spf1 redirect=_spf.example.com",
        {
            "_spf.example.com": [("TXT", "v=spf1 a exists:%{d}.ok.example.net -all")],
            "_spf.example.com.ok.example.net": [("A", "127.0.0.2")],
        },
    )

    outcome = check(zone, "192.0.2.77")

    assert outcome.result is Result.PASS
    assert outcome.reason == "_spf.example.com: exists:%{d}.ok.example.net matched"
    assert outcome.domain == "example.com"


# -- explanations -------------------------------------------------------------------


def test_the_exp_text_is_fetched_and_expanded_on_fail() -> None:
    """exp= names a TXT record whose text, macros expanded, explains a fail (§6.2)."""
    zone = spf(
        "v=spf1 -all exp=why.example.com",
        {"why.example.com": [("TXT", "%{i} may not send for %{d} (asked by %{r})")]},
    )

    outcome = check(zone, receiver="mx.example.net")

    assert (
        outcome.explanation == "192.0.2.1 may not send for example.com (asked by mx.example.net)"
    )


def test_the_exp_of_an_included_record_is_not_used() -> None:
    """An include's own exp= never explains the including domain's fail (§6.2)."""
    zone = spf(
        "v=spf1 include:_spf.example.com -all exp=mine.example.com",
        {
            "_spf.example.com": [("TXT", "v=spf1 -all exp=theirs.example.com")],
            "mine.example.com": [("TXT", "Mine.")],
            "theirs.example.com": [("TXT", "Theirs.")],
        },
    )

    assert check(zone).explanation == "Mine."


def test_the_exp_of_the_redirect_target_replaces_the_original() -> None:
    """After a redirect only the target's exp= counts (§6.2)."""
    zone = spf(
        "v=spf1 exp=mine.example.com redirect=_spf.example.com",
        {"_spf.example.com": [("TXT", "v=spf1 -all")], "mine.example.com": [("TXT", "Mine.")]},
    )

    assert check(zone, default_explanation="default").explanation == "default"


@pytest.mark.parametrize(
    ("texts", "status"),
    [
        ([], LookupStatus.NODATA),
        (["one", "two"], LookupStatus.ANSWER),
        ([b"\xef\xbb\xbfExplanation"], LookupStatus.ANSWER),
        (["The %{x}-files."], LookupStatus.ANSWER),
        (["Never seen"], LookupStatus.SERVFAIL),
    ],
    ids=["missing", "two-records", "non-ascii", "bad-macro", "servfail"],
)
def test_an_unusable_exp_falls_back_to_the_default(texts: list[Any], status: LookupStatus) -> None:
    """Missing, doubled, non-ASCII or invalid exp= text, or a DNS error: the default (§6.2)."""
    zone = spf("v=spf1 -all exp=why.example.com", {"why.example.com": [("A", "192.0.2.9")]})
    for text in texts:
        zone.add("why.example.com", "TXT", text)
    if status is not LookupStatus.ANSWER:
        zone.fail("why.example.com", "TXT", status)

    outcome = check(zone, default_explanation="default")

    assert outcome.result is Result.FAIL
    assert outcome.explanation == "default"


def test_the_exp_is_fetched_only_for_fail() -> None:
    """A softfail asks nothing more than its evaluation needed."""
    zone = spf("v=spf1 ~all exp=why.example.com", {"why.example.com": [("TXT", "no")]})

    outcome = check(zone)

    assert outcome.explanation == ""
    assert zone.questions == [("example.com", "TXT")]


def test_a_giant_explanation_is_cut_to_the_limit() -> None:
    """The explanation is at most Limits.explanation_length characters (§6.2)."""
    zone = spf("v=spf1 -all exp=why.example.com", {"why.example.com": [("TXT", "%{s} " * 10_000)]})

    outcome = check(zone, limits=Limits(explanation_length=120))

    assert len(outcome.explanation) == 120


def test_the_explanation_holds_only_ascii() -> None:
    """Characters a reply cannot carry become '?' (§6.2 limits it to US-ASCII)."""
    zone = spf("v=spf1 -all exp=why.example.com", {"why.example.com": [("TXT", "%{l} no")]})

    outcome = check(zone, sender="jörg@example.com")

    assert outcome.explanation == "j?rg no"


# -- limits -------------------------------------------------------------------------


def _chain(count: int, last: str) -> Zone:
    """example.com and names d1..dN, each a records pointing to an existing address."""
    names = {f"d{i}.example.com": [("A", "198.51.100.1")] for i in range(1, count + 1)}
    terms = " ".join(f"a:d{i}.example.com" for i in range(1, count + 1))
    return spf(f"v=spf1 {terms} {last}", names)


def test_ten_dns_terms_are_allowed_and_an_eleventh_is_permerror() -> None:
    """The eleventh DNS-querying term of one check is permerror (§4.6.4)."""
    at_limit = check(_chain(10, "-all"))
    over_limit = check(_chain(11, "-all"))

    assert at_limit.result is Result.FAIL
    assert at_limit.lookups == 10
    assert over_limit.result is Result.PERMERROR
    assert "at most 10 are allowed" in over_limit.reason


def test_terms_after_the_match_are_not_counted() -> None:
    """Only evaluated terms count, so a match before the eleventh term is kept."""
    zone = _chain(12, "-all")
    zone.add("d5.example.com", "A", "192.0.2.1")

    outcome = check(zone)

    assert outcome.result is Result.PASS
    assert outcome.lookups == 5


def test_include_loops_end_in_permerror_after_a_bounded_number_of_queries() -> None:
    """Two domains including each other exhaust the lookup limit (§4.6.4)."""
    zone = spf(
        "v=spf1 include:loop.example.com",
        {"loop.example.com": [("TXT", "v=spf1 include:example.com")]},
    )

    outcome = check(zone)

    assert outcome.result is Result.PERMERROR
    assert len(zone.questions) == 11


def test_redirect_loops_end_in_permerror() -> None:
    """A record redirecting to itself exhausts the lookup limit (§4.6.4)."""
    zone = spf("v=spf1 redirect=example.com")

    outcome = check(zone)

    assert outcome.result is Result.PERMERROR
    assert outcome.lookups == 11


def test_two_void_lookups_are_allowed_and_a_third_is_permerror() -> None:
    """Terms whose lookup finds nothing count up to two (§4.6.4 ¶7)."""
    two = spf("v=spf1 a:none1.example.com mx:none2.example.com ?all")
    three = spf("v=spf1 a:none1.example.com mx:none2.example.com exists:none3.example.com ?all")

    assert check(two).result is Result.NEUTRAL
    assert check(two).void_lookups == 2
    outcome = check(three)
    assert outcome.result is Result.PERMERROR
    assert "void lookup 3" in outcome.reason


def test_the_void_limit_can_be_changed() -> None:
    """Limits(void_lookups=0) makes the first void lookup permerror."""
    zone = spf("v=spf1 a:none1.example.com ?all")

    assert check(zone, limits=Limits(void_lookups=0)).result is Result.PERMERROR


def test_ten_mx_records_are_allowed_and_eleven_are_permerror() -> None:
    """An mx term whose target has more than ten MX records is permerror (§4.6.4 ¶2)."""
    ten = [("MX", f"{i} mx{i}.example.com.") for i in range(10)]
    eleven = [*ten, ("MX", "10 mx10.example.com.")]

    assert check(spf("v=spf1 mx ?all", {"example.com": ten})).result is Result.NEUTRAL
    outcome = check(spf("v=spf1 mx ?all", {"example.com": eleven}))
    assert outcome.result is Result.PERMERROR
    assert "has 11 MX records" in outcome.reason


def test_only_the_first_ten_ptr_names_are_validated() -> None:
    """PTR names past the tenth are ignored, not an error (§4.6.4 ¶3)."""
    names = [("PTR", f"h{i}.example.com.") for i in range(10)] + [("PTR", "mx.example.com.")]
    zone = spf(
        "v=spf1 ptr ?all",
        {"1.2.0.192.in-addr.arpa": names, "mx.example.com": [("A", "192.0.2.1")]},
    )

    outcome = check(zone)

    assert outcome.result is Result.NEUTRAL
    assert len(zone.steps[-1]) == 10


# -- macros in evaluation -----------------------------------------------------------


def test_p_prefers_a_validated_name_under_the_domain() -> None:
    """%{p} is the validated name that is the domain or under it, when there is one (§7.3)."""
    zone = spf(
        "v=spf1 exists:%{p}.ok.example.net -all",
        {
            "1.2.0.192.in-addr.arpa": [("PTR", "host.example.org."), ("PTR", "mx.example.com.")],
            "host.example.org": [("A", "192.0.2.1")],
            "mx.example.com": [("A", "192.0.2.1")],
            "mx.example.com.ok.example.net": [("A", "127.0.0.2")],
        },
    )

    assert check(zone).result is Result.PASS


def test_p_is_unknown_without_a_validated_name() -> None:
    """No validated name, or a failed lookup, makes %{p} "unknown" (§7.3)."""
    zone = spf("v=spf1 -all exp=why.example.com", {"why.example.com": [("TXT", "from %{p}")]})
    zone.fail("1.2.0.192.in-addr.arpa", "PTR")

    assert check(zone).explanation == "from unknown"


def test_a_sender_without_local_part_is_postmaster() -> None:
    """%{l} of '@example.com' is postmaster (§4.3)."""
    zone = spf("v=spf1 -all exp=why.example.com", {"why.example.com": [("TXT", "%{l} %{s}")]})

    outcome = check(zone, sender="@example.com")

    assert outcome.explanation == "postmaster postmaster@example.com"
    assert outcome.sender == "postmaster@example.com"


# -- bad input ----------------------------------------------------------------------


def test_a_giant_record_is_evaluated_to_its_end() -> None:
    """A record of thousands of ip4 terms is evaluated term by term to its match."""
    terms = " ".join(f"ip4:10.{i // 256}.{i % 256}.0/24" for i in range(4000))
    zone = spf(f"v=spf1 {terms} ip4:192.0.2.1 -all")

    assert check(zone).result is Result.PASS


def test_a_giant_record_with_a_late_syntax_error_is_permerror() -> None:
    """The error at the end of a 60 kB record is found before anything is evaluated."""
    terms = " ".join(f"ip4:10.{i // 256}.{i % 256}.0/24" for i in range(4000))
    zone = spf(f"v=spf1 ip4:192.0.2.1 {terms} %")

    assert check(zone).result is Result.PERMERROR


def test_answers_of_unexpected_shape_are_skipped() -> None:
    """Records that are not what their type promises are ignored, not trusted."""
    zone = spf("v=spf1 a mx ?all")
    zone.records[(b"example.com", "A")] = ["not an address", None]
    zone.records[(b"example.com", "MX")] = [(10, "not a Name")]

    assert check(zone).result is Result.NEUTRAL


# -- identities and check_spf -------------------------------------------------------


@pytest.mark.parametrize(
    ("mail_from", "scope", "domain", "sender"),
    [
        ("alice@example.com", "mailfrom", "example.com", "alice@example.com"),
        ("<alice@example.com>", "mailfrom", "example.com", "alice@example.com"),
        ("<@relay.example.net:alice@example.com>", "mailfrom", "example.com", "alice@example.com"),
        ("", "helo", "mail.example.net", "postmaster@mail.example.net"),
        ("<>", "helo", "mail.example.net", "postmaster@mail.example.net"),
        ("example.com", "mailfrom", "example.com", "example.com"),
    ],
)
def test_the_identity_is_the_mail_from_domain_or_the_helo_name(
    mail_from: str, scope: str, domain: str, sender: str
) -> None:
    """A null reverse-path makes postmaster@HELO the checked identity (§2.3, §2.4)."""
    identity = identity_for(mail_from, "mail.example.net")

    assert (identity.scope, identity.domain, identity.sender) == (scope, domain, sender)


def test_the_helo_identity_is_checked_with_postmaster_as_sender() -> None:
    """helo_identity() gives the HELO domain and postmaster@ it (§2.3)."""
    identity = helo_identity("mail.example.net")

    zone = Zone({"mail.example.net": [("TXT", "v=spf1 a -all"), ("A", "192.0.2.1")]})
    outcome = zone.run(
        check_host("192.0.2.1", identity.domain, identity.sender, identity=identity.scope)
    )

    assert outcome.result is Result.PASS
    assert (outcome.identity, outcome.sender) == ("helo", "postmaster@mail.example.net")


class ZoneResolver(CachingResolver):
    """A CachingResolver answering from a fixture zone, optionally after a delay."""

    def __init__(self, zone: Zone, delay: float = 0.0) -> None:
        super().__init__(dns.asyncresolver.Resolver(configure=False), size=0)
        self.zone = zone
        self.delay = delay

    async def resolve(self, query: Query) -> Answer:
        await asyncio.sleep(self.delay)
        return self.zone(query)


async def test_check_spf_checks_the_mail_from_domain() -> None:
    """check_spf() evaluates the reverse-path's domain and reads the clock for %{t}."""
    zone = spf("v=spf1 -all exp=why.example.com", {"why.example.com": [("TXT", "at %{t}")]})

    outcome = await check_spf(
        ZoneResolver(zone),
        ip="192.0.2.1",
        mail_from="<alice@example.com>",
        helo="x.example",
        clock=lambda: 1234.5,
    )

    assert outcome.result is Result.FAIL
    assert outcome.identity == "mailfrom"
    assert outcome.explanation == "at 1234"


async def test_check_spf_checks_the_helo_name_for_a_null_reverse_path() -> None:
    """An empty MAIL FROM makes check_spf() evaluate the HELO domain (§2.4)."""
    zone = Zone({"mail.example.net": [("TXT", "v=spf1 +all")]})

    outcome = await check_spf(
        ZoneResolver(zone), ip="192.0.2.1", mail_from="", helo="mail.example.net"
    )

    assert outcome.result is Result.PASS
    assert outcome.identity == "helo"
    assert outcome.domain == "mail.example.net"


async def test_check_spf_checks_only_the_helo_name_when_asked() -> None:
    """helo_only=True checks the HELO identity even with a MAIL FROM given (§2.3)."""
    zone = Zone({"mail.example.net": [("TXT", "v=spf1 -all")]})

    outcome = await check_spf(
        ZoneResolver(zone),
        ip="192.0.2.1",
        mail_from="alice@example.com",
        helo="mail.example.net",
        helo_only=True,
    )

    assert outcome.result is Result.FAIL
    assert outcome.identity == "helo"
    assert outcome.sender == "postmaster@mail.example.net"


async def test_check_spf_is_temperror_when_the_time_limit_passes() -> None:
    """A check that outlasts its time limit ends in temperror (§4.6.4)."""
    zone = spf("v=spf1 -all")

    outcome = await check_spf(
        ZoneResolver(zone, delay=5.0),
        ip="192.0.2.1",
        mail_from="alice@example.com",
        helo="mail.example.net",
        time_limit=0.05,
    )

    assert outcome.result is Result.TEMPERROR
    assert "longer than 0.05 s" in outcome.reason


# -- properties ---------------------------------------------------------------------

TERM = st.one_of(
    st.sampled_from(
        [
            "a",
            "mx",
            "ptr",
            "-all",
            "~all",
            "?all",
            "a/24",
            "mx//64",
            "a:%{l}.example.com",
            "include:example.com",
            "include:other.example.com",
            "redirect=other.example.com",
            "exists:%{ir}.%{v}.example.com",
            "exp=why.example.com",
            "ip4:192.0.2.0/24",
            "ip6:2001:db8::/32",
            "ptr:%{p}.example.com",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=12),
)
RECORD = st.lists(TERM, max_size=12).map(lambda terms: "v=spf1 " + " ".join(terms))
STATUSES = st.sampled_from(list(LookupStatus))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    RECORD,
    RECORD,
    st.sampled_from(["192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"]),
    st.text(max_size=20),
    st.data(),
)
def test_evaluation_always_ends_in_one_of_the_seven_results(
    record: str, other: str, ip: str, local_part: str, data: st.DataObject
) -> None:
    """Any records, sender and DNS outcome give a result word, never an exception."""
    zone = Zone(
        {
            "example.com": [("TXT", record), ("A", "192.0.2.1"), ("MX", "10 example.com.")],
            "other.example.com": [("TXT", other)],
            "why.example.com": [("TXT", "%{l} %{p} %{c}")],
        }
    )

    def answer(query: Query) -> Answer:
        status = data.draw(STATUSES)
        found = zone(query)
        return found if status is LookupStatus.ANSWER else Answer(query, status)

    evaluation = check_host(ip, "example.com", f"{local_part}@example.com")
    try:
        step = next(evaluation)
        for _ in range(200):
            step = evaluation.send(tuple(answer(query) for query in step))
        raise AssertionError("the evaluation asked more than 200 steps")
    except StopIteration as done:
        outcome: SpfResult = done.value

    assert outcome.result in set(Result)
    assert outcome.lookups <= 11
