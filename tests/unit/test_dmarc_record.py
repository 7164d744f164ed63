"""Tests for mailwright.auth.dmarc.record: DMARC Policy Records parsed and written back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailwright.auth.dmarc.record import (
    MAX_PROBLEMS,
    AlignmentMode,
    Policy,
    PsdFlag,
    Record,
    RecordError,
    RecordErrorCode,
    ReportUri,
    parse_record,
)


def parsed(text: str | bytes) -> Record:
    """``text`` parsed, which must give a record."""
    record = parse_record(text)
    assert isinstance(record, Record), record
    return record


def test_a_minimal_record_takes_every_default() -> None:
    """Only v and p: sp and np follow p, alignment is relaxed, no test mode, fo=0."""
    record = parsed("v=DMARC1; p=reject")

    assert record.policy is Policy.REJECT
    assert record.subdomain_policy is Policy.REJECT
    assert record.nonexistent_policy is Policy.REJECT
    assert record.dkim_alignment is AlignmentMode.RELAXED
    assert record.spf_alignment is AlignmentMode.RELAXED
    assert record.psd_flag is PsdFlag.UNKNOWN
    assert record.test_mode is False
    assert record.failure_options == ("0",)
    assert record.problems == ()


def test_every_tag_is_read() -> None:
    """Each RFC 9989 tag lands in its field with its published value."""
    record = parsed(
        "v=DMARC1; p=quarantine; sp=reject; np=none; psd=n; t=y; adkim=s; aspf=r; "
        "fo=1:d:s; rua=mailto:agg@example.com; ruf=mailto:fail@example.com"
    )

    assert (record.p, record.sp, record.np) == (Policy.QUARANTINE, Policy.REJECT, Policy.NONE)
    assert record.psd is PsdFlag.NO
    assert record.t is True
    assert (record.adkim, record.aspf) == (AlignmentMode.STRICT, AlignmentMode.RELAXED)
    assert record.fo == ("1", "d", "s")
    assert [uri.mailbox for uri in record.rua] == ["agg@example.com"]
    assert [uri.mailbox for uri in record.ruf] == ["fail@example.com"]


def test_np_falls_back_to_sp_before_p() -> None:
    """Without np, non-existent subdomains get sp; without sp either, p (§4.7)."""
    record = parsed("v=DMARC1; p=none; sp=quarantine")

    assert record.nonexistent_policy is Policy.QUARANTINE


def test_a_record_without_p_is_read_as_p_none() -> None:
    """p is RECOMMENDED, not required: its absence means none and is not a problem."""
    record = parsed("v=DMARC1; rua=mailto:a@example.com")

    assert record.p is None
    assert record.policy is Policy.NONE
    assert record.problems == ()


def test_values_ignore_case_but_tag_names_do_not() -> None:
    """p=REJECT is p=reject; a tag named P is an unknown tag."""
    record = parsed("v=DMARC1; p=REJECT; P=none; ADKIM=s")

    assert record.policy is Policy.REJECT
    assert record.dkim_alignment is AlignmentMode.RELAXED
    assert record.ignored == ("P", "ADKIM")


def test_white_space_around_tags_and_equals_signs_is_allowed() -> None:
    """Spaces and tabs around names, equals signs and separators do not matter."""
    record = parsed(" v = DMARC1 ;\tp =\treject ; ")

    assert record.policy is Policy.REJECT
    assert record.problems == ()


def test_the_version_must_come_first_and_exactly() -> None:
    """v=DMARC1 first, case-sensitive; anything else is not a DMARC record."""
    texts = ["p=reject; v=DMARC1", "v=dmarc1; p=reject", "v=DMARC2", "V=DMARC1", "v=DMARC1p=x"]

    outcomes = [parse_record(text) for text in texts]

    assert [outcome.code for outcome in outcomes if isinstance(outcome, RecordError)] == [
        RecordErrorCode.NO_VERSION,
        RecordErrorCode.BAD_VERSION,
        RecordErrorCode.BAD_VERSION,
        RecordErrorCode.NO_VERSION,
        RecordErrorCode.BAD_VERSION,
    ]


def test_empty_text_is_not_a_record() -> None:
    """An empty or blank TXT string is reported as empty."""
    outcomes = [parse_record(""), parse_record(b" \t ")]

    assert [outcome.code for outcome in outcomes if isinstance(outcome, RecordError)] == [
        RecordErrorCode.EMPTY,
        RecordErrorCode.EMPTY,
    ]


def test_a_bad_value_is_discarded_for_the_default_with_a_precise_problem() -> None:
    """adkim=bob is dropped (relaxed applies) and the problem names tag, value and rule."""
    record = parsed("v=DMARC1; p=none; adkim=bob")

    assert record.dkim_alignment is AlignmentMode.RELAXED
    assert [str(problem) for problem in record.problems] == ["adkim='bob': not r or s"]


def test_an_invalid_policy_is_flagged() -> None:
    """A bad p, sp or np marks the record, which discovery then treats specially."""
    records = [parsed("v=DMARC1; p=n"), parsed("v=DMARC1; sp=x"), parsed("v=DMARC1; np=")]

    assert [record.has_invalid_policy for record in records] == [True, True, True]
    assert parsed("v=DMARC1; adkim=x").has_invalid_policy is False


def test_a_repeated_tag_keeps_the_first() -> None:
    """The first p wins and the repetition is a problem."""
    record = parsed("v=DMARC1; p=none; p=reject")

    assert record.policy is Policy.NONE
    assert record.problems[0].reason == "tag repeated; the first one is kept"


def test_unknown_and_removed_tags_are_ignored_without_problems() -> None:
    """foo, and RFC 7489's rf and ri, are skipped whatever their value (§4.7, C.5.2)."""
    record = parsed("v=DMARC1; p=none; foo=bar; rf=bob; ri=notanumber")

    assert record.problems == ()
    assert record.ignored == ("foo", "rf", "ri")


def test_malformed_segments_are_problems() -> None:
    """A segment without '=', a name with digits and an empty tag are each noted."""
    record = parsed("v=DMARC1;; p=none; justtext; p2=x;")

    assert [problem.reason for problem in record.problems] == [
        "empty tag between semicolons; ignored",
        "not a tag=value pair; ignored",
        "tag name is not letters only; ignored",
    ]


def test_pct_maps_onto_test_mode() -> None:
    """pct=0 is t=y and pct=100 is t=n (Appendix A.6); a t tag overrides pct."""
    records = [
        parsed("v=DMARC1; p=reject; pct=0"),
        parsed("v=DMARC1; p=reject; pct=100"),
        parsed("v=DMARC1; p=reject; pct=0; t=n"),
        parsed("v=DMARC1; p=reject; t=y; pct=100"),
    ]

    assert [record.test_mode for record in records] == [True, False, False, True]


def test_only_a_pct_between_1_and_99_without_t_asks_for_sampling() -> None:
    """sampling_percent is the legacy pct when sampling could matter, else None."""
    records = [
        parsed("v=DMARC1; p=reject; pct=30"),
        parsed("v=DMARC1; p=reject; pct=30; t=n"),
        parsed("v=DMARC1; p=reject; pct=100"),
    ]

    assert [record.sampling_percent for record in records] == [30, None, None]


def test_pct_out_of_range_is_a_problem() -> None:
    """pct must be a whole number from 0 to 100."""
    records = [parsed(f"v=DMARC1; pct={value}") for value in ("101", "-1", "5.5", "0100")]

    assert [record.pct for record in records] == [None, None, None, None]
    assert all(record.problems for record in records)


def test_report_uris_keep_the_obsolete_size_in_octets() -> None:
    """rua is a comma list; RFC 7489's !size is read in octets (k, m, g, t)."""
    record = parsed(
        "v=DMARC1; rua=mailto:a@example.com!10m , mailto:b@example.com!2k,https://r.example/x"
    )

    assert [(uri.uri, uri.size_limit) for uri in record.rua] == [
        ("mailto:a@example.com", 10 * 1024 * 1024),
        ("mailto:b@example.com", 2048),
        ("https://r.example/x", None),
    ]


def test_an_invalid_uri_is_dropped_and_noted() -> None:
    """A list entry that is not a URI (or has a bad size) goes, the others stay."""
    record = parsed("v=DMARC1; rua=mailto:a@example.com,not a uri,mailto:b@example.com!x")

    assert [uri.uri for uri in record.rua] == ["mailto:a@example.com"]
    assert [problem.value for problem in record.problems] == [
        "not a uri",
        "mailto:b@example.com!x",
    ]


def test_only_mailto_uris_with_an_address_give_a_mailbox() -> None:
    """ftp: and mailto://host are valid URIs with nowhere to mail a report."""
    uris = [
        ReportUri("mailto:dmarc%2Bagg@example.com?subject=x"),
        ReportUri("MAILTO:a@example.com"),
        ReportUri("mailto://abuse.com"),
        ReportUri("ftp://abuse.com"),
    ]

    assert [uri.mailbox for uri in uris] == ["dmarc+agg@example.com", "a@example.com", None, None]


def test_failure_options_follow_their_rules() -> None:
    """fo takes 0 or 1 (not both) with d and s, each once."""
    good = parsed("v=DMARC1; fo=d:1")
    bad = [parsed(f"v=DMARC1; fo={value}") for value in ("0:1", "2", "d:d")]

    assert good.fo == ("d", "1")
    assert [record.fo for record in bad] == [None, None, None]
    assert all(record.problems for record in bad)


def test_undecodable_octets_spoil_only_their_tag() -> None:
    """Invalid UTF-8 in one value leaves the rest of the record usable."""
    record = parsed(b"v=DMARC1; p=reject; rua=mailto:\xff@example.com")

    assert record.policy is Policy.REJECT
    assert record.rua == ()
    assert record.problems[0].tag == "rua"


def test_the_problem_list_is_bounded() -> None:
    """A huge record of broken tags keeps a bounded list of problems."""
    record = parsed("v=DMARC1; " + "adkim=x; 1=2; " * 2000)

    assert len(record.problems) == MAX_PROBLEMS + 1
    assert record.problems[-1].reason.endswith("more problems not listed")


def test_to_text_writes_the_published_tags_in_a_fixed_order() -> None:
    """Only tags the record holds are written, v first, URIs joined by commas."""
    record = Record(
        p=Policy.REJECT,
        np=Policy.QUARANTINE,
        t=True,
        aspf=AlignmentMode.STRICT,
        rua=(ReportUri.mailto("a@example.com", 10 << 20), ReportUri.mailto("b@example.com")),
    )

    text = record.to_text()

    assert text == (
        "v=DMARC1; p=reject; np=quarantine; t=y; aspf=s; "
        "rua=mailto:a@example.com!10m,mailto:b@example.com"
    )
    assert parse_record(text) == record


def test_mailto_encodes_the_characters_a_record_cannot_hold() -> None:
    """Commas and exclamation marks in an address are percent-encoded (§4.8)."""
    uri = ReportUri.mailto("odd,name!@example.com")

    assert uri.uri == "mailto:odd%2Cname%21@example.com"
    assert uri.mailbox == "odd,name!@example.com"


# --- properties ------------------------------------------------------------------------

policies = st.none() | st.sampled_from(Policy)
modes = st.none() | st.sampled_from(AlignmentMode)
addresses = st.from_regex(r"[a-z0-9.+_-]{1,12}@[a-z0-9-]{1,10}\.example", fullmatch=True)
uris = st.builds(
    ReportUri.mailto, addresses, st.none() | st.integers(min_value=1, max_value=1 << 42)
)
records = st.builds(
    Record,
    p=policies,
    sp=policies,
    np=policies,
    psd=st.none() | st.sampled_from(PsdFlag),
    t=st.none() | st.booleans(),
    adkim=modes,
    aspf=modes,
    pct=st.none() | st.integers(min_value=0, max_value=100),
    fo=st.none() | st.sampled_from([("0",), ("1",), ("d",), ("0", "s"), ("1", "d", "s")]),
    rua=st.lists(uris, max_size=3).map(tuple),
    ruf=st.lists(uris, max_size=2).map(tuple),
)


@given(records)
def test_any_built_record_survives_to_text_and_back(record: Record) -> None:
    """to_text and parse_record are inverse for every record we can build."""
    text = record.to_text()

    assert parse_record(text) == record


@given(st.text(max_size=300) | st.binary(max_size=300))
def test_parsing_never_raises(text: str | bytes) -> None:
    """Any text gives a record or a RecordError with a reason."""
    outcome = parse_record(text)

    assert isinstance(outcome, Record | RecordError)
    if isinstance(outcome, RecordError):
        assert outcome.reason


# -- the cache of parsed records ------------------------------------------------------


def test_a_record_parsed_again_is_the_kept_result() -> None:
    """Parsing the same text twice gives the same immutable record, text or octets alike."""
    text = "v=DMARC1; p=reject; rua=mailto:reports@example.com; adkim=r"

    first = parse_record(text)
    again = parse_record(text)
    from_octets = parse_record(text.encode())

    assert again is first
    assert from_octets == first
    assert isinstance(first, Record)
    assert first.p is Policy.REJECT


def test_an_invalid_record_parsed_again_gives_the_same_error() -> None:
    """The kept result of text that is no DMARC record is the same error."""
    assert parse_record("v=spf1 -all") == parse_record(b"v=spf1 -all")
    assert isinstance(parse_record("v=spf1 -all"), RecordError)
