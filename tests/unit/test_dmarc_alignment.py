"""Tests for mailwright.auth.dmarc.alignment and .orgdomain: which identifiers align."""

from __future__ import annotations

from publicsuffixlist import PublicSuffixList

from mailwright.auth.dmarc.alignment import (
    DkimCheck,
    SpfCheck,
    is_aligned,
    needs_organizational_domains,
)
from mailwright.auth.dmarc.orgdomain import psl_organizational_domain
from mailwright.auth.dmarc.record import AlignmentMode

STRICT = AlignmentMode.STRICT
RELAXED = AlignmentMode.RELAXED


class Organizations:
    """A fixed table of Organizational Domains that records which names were asked."""

    def __init__(self, table: dict[str, str | None]) -> None:
        self.table = table
        self.asked: list[str] = []

    def __call__(self, domain: str) -> str | None:
        self.asked.append(domain)
        return self.table.get(domain, domain)


def test_only_pass_counts_as_authenticated() -> None:
    """pass in any case authenticates; softfail, neutral and the rest do not."""
    assert SpfCheck("Pass", "example.com").passed
    assert not SpfCheck("softfail", "example.com").passed
    assert DkimCheck("example.com", " PASS ").passed
    assert not DkimCheck("example.com", "permerror").passed


def test_checks_accept_plain_tuples() -> None:
    """The inputs are named tuples, so (word, domain) and (d, word) work as they are."""
    spf = SpfCheck(*("pass", "example.com"))
    dkim = DkimCheck(*("example.com", "pass"))

    assert (spf.domain, dkim.domain, dkim.selector) == ("example.com", "example.com", "")


def test_identical_names_align_in_both_modes_without_lookups() -> None:
    """Case and stray dots aside, the same name aligns; no Organizational Domain is asked."""
    organizations = Organizations({})

    verdicts = [
        is_aligned("Example.COM", ".example.com.", mode, organizations)
        for mode in (STRICT, RELAXED)
    ]

    assert verdicts == [True, True]
    assert organizations.asked == []


def test_strict_mode_wants_the_identical_name() -> None:
    """adkim=s / aspf=s: a subdomain or parent does not align."""
    organizations = Organizations({"mail.example.com": "example.com"})

    assert is_aligned("example.com", "mail.example.com", STRICT, organizations) is False
    assert organizations.asked == []


def test_relaxed_mode_compares_organizational_domains() -> None:
    """Siblings under one Organizational Domain align; different ones do not."""
    organizations = Organizations(
        {
            "a.example.com": "example.com",
            "b.example.com": "example.com",
            "x.other.com": "other.com",
        }
    )

    assert is_aligned("a.example.com", "b.example.com", RELAXED, organizations) is True
    assert is_aligned("a.example.com", "x.other.com", RELAXED, organizations) is False


def test_an_unknown_organizational_domain_leaves_alignment_unknown() -> None:
    """When a walk failed, relaxed alignment is neither true nor false."""
    organizations = Organizations({"mail.example.com": None})

    assert is_aligned("example.com", "mail.example.com", RELAXED, organizations) is None


def test_names_without_a_common_top_label_never_align() -> None:
    """example.com and example.net cannot share an Organizational Domain; nothing is asked."""
    organizations = Organizations({})

    assert is_aligned("example.com", "example.net", RELAXED, organizations) is False
    assert organizations.asked == []


def test_an_unusable_name_aligns_with_nothing() -> None:
    """Empty labels or an empty identifier never align."""
    organizations = Organizations({})

    assert is_aligned("mac...com", "com", STRICT, organizations) is False
    assert is_aligned("example.com", "", RELAXED, organizations) is False


def test_only_relaxed_differing_related_names_need_organizational_domains() -> None:
    """The walk is needed exactly when relaxed mode meets two names under one top label."""
    assert needs_organizational_domains("example.com", "mail.example.com", RELAXED)
    assert not needs_organizational_domains("example.com", "mail.example.com", STRICT)
    assert not needs_organizational_domains("example.com", "example.com", RELAXED)
    assert not needs_organizational_domains("example.com", "example.org", RELAXED)


def test_the_psl_gives_rfc7489_organizational_domains() -> None:
    """RFC 7489 §3.2: the public suffix plus one label."""
    found = [psl_organizational_domain(name) for name in ("a.b.example.co.uk", "WWW.Example.COM")]

    assert found == ["example.co.uk", "example.com"]


def test_a_public_suffix_is_its_own_psl_organizational_domain() -> None:
    """com and co.uk have no registered label; they stand for themselves."""
    assert psl_organizational_domain("co.uk") == "co.uk"
    assert psl_organizational_domain("a..b") is None


def test_a_caller_may_bring_its_own_suffix_list() -> None:
    """An updated or private list replaces the bundled snapshot."""
    private = PublicSuffixList(["example", "corp.example"])

    assert psl_organizational_domain("a.b.corp.example", private) == "b.corp.example"
