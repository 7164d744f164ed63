"""Tests for mailwright.auth.dmarc.evaluate: whole evaluations against fixture zones."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwright.auth.authres import RESULT_WORDS
from mailwright.auth.dmarc import (
    DmarcResult,
    Policy,
    Result,
    author_domains,
    check_dmarc,
    evaluate,
)
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, CachingResolver, Evaluation, Query
from mailwright.dns.resolver import make_resolver


class Zone:
    """Fixture DNS: TXT texts by name, names that merely exist, names that fail.

    Every other name is NXDOMAIN; a name above a listed one exists (RFC 8020).
    """

    def __init__(
        self,
        txt: dict[str, list[str]] | None = None,
        *,
        exists: Iterable[str] = (),
        failing: dict[str, LookupStatus] | None = None,
    ) -> None:
        self.txt = txt or {}
        self.names = set(self.txt) | set(exists)
        self.failing = failing or {}

    def __call__(self, query: Query) -> Answer:
        name = query.text
        if name in self.failing:
            return Answer(query, self.failing[name], detail="injected failure")
        if query.rdtype == "TXT" and name in self.txt:
            texts = tuple(text.encode() for text in self.txt[name])
            return Answer(query, LookupStatus.ANSWER, texts)
        if any(known == name or known.endswith("." + name) for known in self.names):
            return Answer(query, LookupStatus.NODATA)
        return Answer(query, LookupStatus.NXDOMAIN)


def drive(evaluation: Evaluation[DmarcResult], zone: Zone) -> tuple[DmarcResult, list[list[str]]]:
    """Run ``evaluation`` against ``zone``; the result and the names asked in each step."""
    steps: list[list[str]] = []
    try:
        step = next(evaluation)
        while True:
            steps.append([query.text for query in step])
            step = evaluation.send(tuple(zone(query) for query in step))
    except StopIteration as done:
        return done.value, steps


EXAMPLE = Zone(
    {
        "_dmarc.example.com": ["v=DMARC1; p=reject; sp=quarantine; np=none"],
        "_dmarc.example.net": ["v=DMARC1; p=none"],
        "_dmarc.suffix": ["v=DMARC1; p=quarantine; psd=y"],
    },
    exists=["www.example.com"],
)


def test_an_aligned_signature_passes() -> None:
    """DKIM d=example.com for example.com: pass, nothing to apply."""
    result, steps = drive(evaluate("example.com", dkim=[("example.com", "pass")]), EXAMPLE)

    assert result.result is Result.PASS
    assert result.dkim_aligned is True
    assert result.disposition is Policy.NONE
    assert steps == [["_dmarc.example.com"]]


def test_no_aligned_identifier_fails_with_the_policy() -> None:
    """An unrelated SPF pass: fail, and p=reject is the disposition."""
    result, _ = drive(evaluate("example.com", spf=("pass", "example.net")), EXAMPLE)

    assert result.result is Result.FAIL
    assert (result.policy, result.policy_tag, result.disposition) == (
        Policy.REJECT,
        "p",
        Policy.REJECT,
    )
    assert result.reason == "no aligned SPF or DKIM pass; p=reject from _dmarc.example.com"


def test_the_walk_asks_all_parents_in_one_step() -> None:
    """Without its own record, the Author Domain's parents are asked together."""
    result, steps = drive(evaluate("a.b.example.com"), EXAMPLE)

    assert steps[:2] == [
        ["_dmarc.a.b.example.com"],
        ["_dmarc.b.example.com", "_dmarc.example.com", "_dmarc.com"],
    ]
    assert result.policy_domain == "example.com"


def test_np_is_asked_only_when_it_changes_the_policy() -> None:
    """sp and np differ here, so existence is checked with one CNAME query."""
    existing, steps = drive(evaluate("www.example.com"), EXAMPLE)
    ghost, _ = drive(evaluate("ghost.example.com"), EXAMPLE)

    assert steps[-1] == ["www.example.com"]
    assert (existing.policy, existing.policy_tag) == (Policy.QUARANTINE, "sp")
    assert (ghost.policy, ghost.policy_tag) == (Policy.NONE, "np")


def test_existence_is_not_asked_when_np_agrees_with_sp() -> None:
    """A record without np (or with np equal to sp) needs no existence check."""
    zone = Zone({"_dmarc.example.org": ["v=DMARC1; p=reject; np=reject"]})

    result, steps = drive(evaluate("ghost.example.org"), zone)

    assert result.policy is Policy.REJECT
    assert all(not name.startswith("ghost.") for step in steps for name in step)


def test_relaxed_walks_for_all_identifiers_share_one_step() -> None:
    """SPF and two DKIM domains needing Organizational Domains: one more step, not three."""
    evaluation = evaluate(
        "example.com",
        spf=("pass", "bounce.example.com"),
        dkim=[("a.example.com", "pass"), ("b.example.com", "pass")],
    )

    result, steps = drive(evaluation, EXAMPLE)

    assert len(steps) == 2
    assert sorted(steps[1]) == [
        "_dmarc.a.example.com",
        "_dmarc.b.example.com",
        "_dmarc.bounce.example.com",
        "_dmarc.com",
    ]
    assert result.spf_aligned
    assert result.aligned_dkim_domains == ("a.example.com", "b.example.com")


def test_a_psd_record_applies_below_an_unpublished_organizational_domain() -> None:
    """brand.suffix publishes nothing: suffix's psd=y record applies, brand.suffix aligns."""
    result, _ = drive(evaluate("mail.brand.suffix", dkim=[("brand.suffix", "pass")]), EXAMPLE)

    assert result.result is Result.PASS
    assert (result.policy_domain, result.organizational_domain) == ("suffix", "brand.suffix")


def test_no_record_gives_none() -> None:
    """Nothing at or above the Author Domain: DMARC does not apply."""
    result, _ = drive(evaluate("example.org", dkim=[("example.org", "pass")]), EXAMPLE)

    assert result.result is Result.NONE
    assert result.policy is None
    assert result.organizational_domain == "example.org"


def test_a_failure_at_the_author_domain_is_temperror() -> None:
    """SERVFAIL for the Author Domain's record: try again later."""
    zone = Zone(failing={"_dmarc.example.com": LookupStatus.SERVFAIL})

    result, _ = drive(evaluate("example.com"), zone)

    assert result.result is Result.TEMPERROR
    assert result.reason == "DNS failure finding the policy: _dmarc.example.com: injected failure"


def test_a_timeout_in_the_walk_is_temperror() -> None:
    """No answer from a parent before any record: temperror, naming the name."""
    zone = Zone(
        {"_dmarc.example.com": ["v=DMARC1; p=reject"]},
        failing={"_dmarc.b.example.com": LookupStatus.TIMEOUT},
    )

    result, _ = drive(evaluate("a.b.example.com"), zone)

    assert result.result is Result.TEMPERROR
    assert "_dmarc.b.example.com" in result.reason


def test_an_invalid_policy_without_rua_is_permerror() -> None:
    """§4.10.1: no valid p and no rua, no DMARC processing."""
    zone = Zone({"_dmarc.example.com": ["v=DMARC1; p=maybe"]})

    result, _ = drive(evaluate("example.com"), zone)

    assert result.result is Result.PERMERROR
    assert result.reason.endswith("p='maybe': not none, quarantine or reject")


def test_an_invalid_policy_with_rua_is_read_as_none() -> None:
    """§4.10.1: a valid rua keeps the record, as p=none."""
    zone = Zone({"_dmarc.example.com": ["v=DMARC1; p=maybe; rua=mailto:d@example.com"]})

    result, _ = drive(evaluate("example.com"), zone)

    assert (result.result, result.policy, result.disposition) == (
        Result.FAIL,
        Policy.NONE,
        Policy.NONE,
    )


def test_test_mode_applies_one_level_milder() -> None:
    """t=y turns a reject into a quarantine for failing mail."""
    zone = Zone({"_dmarc.example.com": ["v=DMARC1; p=reject; t=y"]})

    result, _ = drive(evaluate("example.com"), zone)

    assert (result.policy, result.disposition, result.test_mode) == (
        Policy.REJECT,
        Policy.QUARANTINE,
        True,
    )


@pytest.mark.parametrize(
    ("draw", "disposition"), [(0.29, Policy.REJECT), (0.3, Policy.QUARANTINE)]
)
def test_legacy_pct_is_sampled_with_the_given_draw(draw: float, disposition: Policy) -> None:
    """pct=30 applies the policy to draws under 0.3 only (RFC 7489 §6.6.4)."""
    zone = Zone({"_dmarc.example.com": ["v=DMARC1; p=reject; pct=30"]})
    draws: list[float] = []

    def sample() -> float:
        draws.append(draw)
        return draw

    result, _ = drive(evaluate("example.com", sample=sample), zone)

    assert result.disposition is disposition
    assert result.sampled is (disposition is Policy.REJECT)
    assert draws == [draw]


def test_no_draw_is_taken_for_passing_mail() -> None:
    """Sampling concerns failures only; a pass consumes no randomness."""
    zone = Zone({"_dmarc.example.com": ["v=DMARC1; p=reject; pct=30"]})

    def sample() -> float:
        raise AssertionError("sampled a passing message")

    result, _ = drive(evaluate("example.com", dkim=[("example.com", "pass")], sample=sample), zone)

    assert result.result is Result.PASS
    assert result.sampled is None


def test_several_author_domains_are_each_evaluated() -> None:
    """The strictest failure decides, and each domain's result is kept (§11.5)."""
    authors = author_domains(["a@example.net, b@example.com"])

    result, _ = drive(evaluate(authors, dkim=[("example.net", "pass")]), EXAMPLE)

    assert result.result is Result.FAIL
    assert result.author_domain == "example.com"
    assert [outcome.result for outcome in result.authors] == [Result.PASS, Result.FAIL]
    assert result.reason.startswith("2 Author Domains (example.net, example.com); example.com:")


def test_too_many_author_domains_is_permerror() -> None:
    """Beyond the limit nothing is asked at all."""
    authors = author_domains(["a@one.example, b@two.example, c@three.example"])

    result, steps = drive(evaluate(authors, max_author_domains=2), EXAMPLE)

    assert result.result is Result.PERMERROR
    assert steps == []


def test_no_author_domain_is_permerror() -> None:
    """An unusable domain given directly, or a From field without one, cannot be evaluated."""
    direct, _ = drive(evaluate("exa mple.com"), EXAMPLE)
    empty, _ = drive(evaluate(author_domains(["Undisclosed:;"])), EXAMPLE)

    assert direct.result is empty.result is Result.PERMERROR
    assert empty.reason == "no Author Domain in From: no address in the From field"


def test_a_giant_record_is_read() -> None:
    """A 60 KB record of junk tags after p=quarantine still applies."""
    zone = Zone({"_dmarc.example.com": ["v=DMARC1; p=quarantine; " + "x=yz; " * 10_000]})

    result, _ = drive(evaluate("example.com"), zone)

    assert result.disposition is Policy.QUARANTINE


def test_the_result_writes_an_authentication_results_entry() -> None:
    """dmarc=fail with header.from, the published p= as polrec.p, the disposition in a comment."""
    result, _ = drive(evaluate("example.com"), EXAMPLE)

    entry = result.to_method_result()

    assert (entry.method, entry.result) == ("dmarc", "fail")
    assert entry.get("header", "from") == "example.com"
    assert entry.get("polrec", "p") == "reject"
    assert entry.get("polrec", "domain") is None  # found at the Author Domain itself
    assert entry.comment == "p=reject dis=reject"


async def test_check_dmarc_needs_exactly_one_source() -> None:
    """from_domain and message exclude each other, and one of them is required."""
    resolver = CachingResolver(make_resolver(["192.0.2.1"]))  # never asked

    with pytest.raises(ValueError, match="exactly one"):
        await check_dmarc(resolver)
    with pytest.raises(ValueError, match="exactly one"):
        await check_dmarc(resolver, from_domain="example.com", message=b"From: a@b.c\r\n\r\n")


# --- properties ------------------------------------------------------------------------

record_texts = st.lists(
    st.sampled_from(
        [
            "v=DMARC1",
            "p=reject",
            "p=none",
            "p=bogus",
            "sp=quarantine",
            "np=reject",
            "psd=y",
            "psd=n",
            "t=y",
            "pct=40",
            "adkim=s",
            "aspf=s",
            "rua=mailto:r@example.com",
        ]
    ),
    max_size=6,
).map("; ".join)
names = st.sampled_from(["example.com", "a.example.com", "b.a.example.com", "com", "example.net"])
statuses = st.sampled_from(list(LookupStatus))


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(names, st.lists(record_texts, max_size=2), max_size=4),
    st.dictionaries(names, statuses, max_size=2),
    names,
    st.none() | st.tuples(st.sampled_from(["pass", "fail"]), names),
    st.lists(st.tuples(names, st.sampled_from(["pass", "fail"])), max_size=2),
    st.none() | st.floats(min_value=0, max_value=0.999),
)
def test_every_evaluation_ends_in_a_valid_result(
    records: dict[str, list[str]],
    failures: dict[str, LookupStatus],
    author: str,
    spf: tuple[str, str] | None,
    dkim: list[tuple[str, str]],
    draw: float | None,
) -> None:
    """Any zone and inputs give an RFC 8601 result word; only fail carries a disposition."""
    zone = Zone(
        {f"_dmarc.{name}": texts for name, texts in records.items()},
        failing={f"_dmarc.{name}": status for name, status in failures.items()},
    )
    sample = (lambda: draw) if draw is not None else None

    result, steps = drive(evaluate(author, spf=spf, dkim=dkim, sample=sample), zone)

    assert result.result.value in RESULT_WORDS["dmarc"]
    assert result.reason
    assert result.disposition is Policy.NONE or result.result is Result.FAIL
    assert sum(len(step) for step in steps) <= 3 * 8 + 1
