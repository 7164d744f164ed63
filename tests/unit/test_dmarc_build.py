"""Tests for mailwright.auth.dmarc.build: DMARC records written from options (RFC 9989 §4.7)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwright.auth.dmarc import (
    AlignmentMode,
    BuildError,
    Policy,
    PsdFlag,
    Record,
    ReportUri,
    build_record,
    parse_record,
)


def test_every_tag_is_written_and_parses_back() -> None:
    """A record with every tag reads back as the same record, with no problem."""
    built = build_record(
        p="reject",
        sp="quarantine",
        np="reject",
        psd="n",
        t="n",
        adkim="strict",
        aspf="r",
        rua=["dmarc@example.com"],
        ruf=["mailto:forensic@example.com"],
        fo="1:d",
    )

    assert built.text == (
        "v=DMARC1; p=reject; sp=quarantine; np=reject; psd=n; t=n; adkim=s; aspf=r; fo=1:d; "
        "rua=mailto:dmarc@example.com; ruf=mailto:forensic@example.com"
    )
    assert parse_record(built.text) == built.record
    assert built.record.p is Policy.REJECT
    assert built.record.adkim is AlignmentMode.STRICT
    assert built.record.psd is PsdFlag.NO


def test_only_the_tags_given_are_written() -> None:
    """Absent options leave their tags out, so receivers apply the defaults."""
    built = build_record(p="none", rua=["r@example.com"])

    assert built.text == "v=DMARC1; p=none; rua=mailto:r@example.com"
    assert built.warnings == ()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"p": "rejected"}, "p: 'rejected' is not none, quarantine or reject"),
        ({"sp": ""}, "sp:"),
        ({"psd": "maybe"}, "psd: 'maybe' is not y, n or u"),
        ({"t": "1"}, "t: '1' is not y or n"),
        ({"adkim": "loose"}, "adkim: 'loose' is not r"),
        ({"fo": "0:1"}, "exclude each other"),
        ({"fo": "x"}, "fo: 'x' is not 0, 1, d or s"),
        ({"fo": "d:d"}, "repeats"),
        ({"rua": ["nobody"]}, "rua: 'nobody' is not a mailbox"),
        ({"rua": ["mailto:r@example.com!10m"]}, "'!size' suffix is obsolete"),
        ({"ruf": ["mailto:"]}, "does not name one mailbox"),
    ],
)
def test_invalid_options_are_refused_naming_the_tag(options: dict[str, Any], message: str) -> None:
    """Each invalid value raises BuildError naming the tag and the value."""
    with pytest.raises(BuildError) as raised:
        build_record(**options)

    assert message in str(raised.value)


def test_report_addresses_in_another_domain_are_a_warning() -> None:
    """An external destination must agree to receive reports (the _report._dmarc record)."""
    built = build_record(p="reject", rua=["r@reports.example.net"], domain="example.com")

    assert any(
        "example.com._report._dmarc.reports.example.net" in warning for warning in built.warnings
    )


def test_addresses_below_the_domain_are_not_external() -> None:
    """A subdomain of the domain receives its reports without any agreement."""
    built = build_record(p="reject", rua=["r@reports.example.com"], domain="example.com")

    assert built.warnings == ()


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({}, "no p"),
        ({"p": "reject", "t": True}, "test mode"),
        ({"p": "reject", "fo": "1"}, "without ruf"),
        ({"p": "reject"}, "no rua"),
        ({"p": "reject", "rua": ["https://r.example.com/dmarc"]}, "not a mailto"),
    ],
)
def test_choices_worth_a_second_look_are_warnings(options: dict[str, Any], fragment: str) -> None:
    """Legal but doubtful choices come back as warnings, not errors."""
    built = build_record(**options)

    assert any(fragment in warning for warning in built.warnings)


POLICIES = st.none() | st.sampled_from(Policy)
MODES = st.none() | st.sampled_from(AlignmentMode)
ADDRESSES = st.lists(
    st.from_regex(r"[a-z][a-z0-9.+_-]{0,10}@[a-z]{1,8}\.example", fullmatch=True), max_size=3
)


@given(
    POLICIES,
    POLICIES,
    POLICIES,
    st.none() | st.sampled_from(PsdFlag),
    st.none() | st.booleans(),
    MODES,
    MODES,
    ADDRESSES,
    ADDRESSES,
    st.none() | st.sampled_from(["0", "1", "d", "s", "1:d", "0:s", "d:s"]),
)
def test_built_records_round_trip(
    p: Policy | None,
    sp: Policy | None,
    np: Policy | None,
    psd: PsdFlag | None,
    t: bool | None,
    adkim: AlignmentMode | None,
    aspf: AlignmentMode | None,
    rua: list[str],
    ruf: list[str],
    fo: str | None,
) -> None:
    """Whatever valid options are given, parse_record reads the built text back unchanged."""
    built = build_record(
        p=p, sp=sp, np=np, psd=psd, t=t, adkim=adkim, aspf=aspf, rua=rua, ruf=ruf, fo=fo
    )

    parsed = parse_record(built.text)

    assert isinstance(parsed, Record)
    assert parsed == built.record
    assert parsed.rua == tuple(dict.fromkeys(ReportUri.mailto(address) for address in rua))
