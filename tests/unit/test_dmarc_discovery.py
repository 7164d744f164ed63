"""Tests for mailwright.auth.dmarc.discovery: the DNS Tree Walk, read from canned answers."""

from __future__ import annotations

from collections.abc import Generator, Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwright.auth.dmarc.discovery import (
    Presence,
    RecordLookup,
    _walk_names,
    build_walk,
    look_up_records,
    read_answer,
    walk_names,
)
from mailwright.auth.dmarc.record import Record, parse_record
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Answers, Query, Step


def txt_answer(name: str, *texts: str, status: LookupStatus = LookupStatus.ANSWER) -> Answer:
    """The answer to ``_dmarc.<name>`` TXT with ``texts`` as its records."""
    query = Query.of(f"_dmarc.{name}", "TXT")
    return Answer(query, status, tuple(text.encode() for text in texts), detail=status.value)


def record_at(domain: str, text: str) -> RecordLookup:
    """A lookup that found ``text`` at ``_dmarc.<domain>``."""
    record = parse_record(text)
    assert isinstance(record, Record)
    return RecordLookup(domain, Presence.RECORD, record, name_exists=True)


def nothing_at(domain: str) -> RecordLookup:
    return RecordLookup(domain, Presence.NO_RECORD, detail="no such name", name_exists=False)


def finish(lookups: Generator[Step, Answers, tuple[Answer, ...]], answers: Answers) -> object:
    """Send ``answers`` to a started lookup and return what it returns."""
    try:
        lookups.send(answers)
    except StopIteration as done:
        return done.value
    raise AssertionError("the lookup asked a second step")


def walk_over(start: str, lookups: Mapping[str, RecordLookup]) -> list[str]:
    """The domains a walk from ``start`` reads, given ``lookups`` (absent names: nothing)."""
    table = {name: lookups.get(name, nothing_at(name)) for name in walk_names(start)}
    return [lookup.domain for lookup in build_walk(start, walk_names(start), table).lookups]


# --- which names a walk asks -----------------------------------------------------------


def test_a_short_name_walks_every_parent() -> None:
    """a.mail.example.com asks itself, then each parent up to com."""
    assert walk_names("a.mail.example.com") == (
        "a.mail.example.com",
        "mail.example.com",
        "example.com",
        "com",
    )


def test_a_long_name_jumps_to_seven_labels() -> None:
    """The §4.10 example: twelve labels cost eight queries."""
    names = walk_names("a.b.c.d.e.f.g.h.i.j.mail.example.com")

    assert names == (
        "a.b.c.d.e.f.g.h.i.j.mail.example.com",
        "g.h.i.j.mail.example.com",
        "h.i.j.mail.example.com",
        "i.j.mail.example.com",
        "j.mail.example.com",
        "mail.example.com",
        "example.com",
        "com",
    )


def test_an_eight_label_name_is_not_cut() -> None:
    """With eight labels the walk starts at the parent (§4.10.1)."""
    names = walk_names("a.b.c.d.e.f.example.com")

    assert len(names) == 8
    assert names[1] == "b.c.d.e.f.example.com"


def test_the_label_limit_is_configurable() -> None:
    """A limit of three: the name, its last two labels, the top-level domain."""
    assert walk_names("a.b.c.example.com", label_limit=3) == (
        "a.b.c.example.com",
        "example.com",
        "com",
    )


def test_a_top_level_name_walks_nowhere() -> None:
    """A single-label name is its own walk."""
    assert walk_names("example") == ("example",)


@given(
    st.lists(st.sampled_from(["a", "mail", "example", "com", "x" * 63]), min_size=1, max_size=12),
    st.integers(min_value=1, max_value=10),
)
def test_kept_walks_are_the_walks_computed(labels: list[str], label_limit: int) -> None:
    """walk_names gives what it computes afresh, whether or not the walk was kept."""
    domain = ".".join(labels)

    first, again = walk_names(domain, label_limit), walk_names(domain, label_limit)

    assert first == again == _walk_names(domain, label_limit)


# --- reading answers -------------------------------------------------------------------


def test_one_dmarc_record_among_other_txt_records_is_the_record() -> None:
    """Only text starting with v=DMARC1 counts; other TXT records are discarded."""
    lookup = read_answer(
        "example.com", txt_answer("example.com", "v=spf1 -all", "v=DMARC1; p=none")
    )

    assert lookup.presence is Presence.RECORD
    assert lookup.record is not None
    assert lookup.name_exists is True


def test_two_dmarc_records_are_both_discarded() -> None:
    """Several DMARC records at one name count as none (§4.10 step 2)."""
    answer = txt_answer("example.com", "v=DMARC1; p=none", "v=DMARC1; p=reject")

    lookup = read_answer("example.com", answer)

    assert lookup.presence is Presence.NO_RECORD
    assert lookup.detail == "2 DMARC records at _dmarc.example.com; all discarded"


def test_text_that_is_not_dmarc_says_why() -> None:
    """A TXT answer without a DMARC record explains what was wrong with each string."""
    lookup = read_answer("example.com", txt_answer("example.com", "v=DMARC2; p=none"))

    assert lookup.presence is Presence.NO_RECORD
    assert "version 'DMARC2' is not DMARC1" in lookup.detail


def test_negative_answers_say_whether_the_name_exists() -> None:
    """NXDOMAIN means _dmarc.<name> does not exist; NODATA that it does."""
    missing = read_answer("x.example", txt_answer("x.example", status=LookupStatus.NXDOMAIN))
    empty = read_answer("x.example", txt_answer("x.example", status=LookupStatus.NODATA))

    assert (missing.presence, missing.name_exists) == (Presence.NO_RECORD, False)
    assert (empty.presence, empty.name_exists) == (Presence.NO_RECORD, True)


def test_transient_failures_are_failures() -> None:
    """SERVFAIL and timeouts leave the answer unknown."""
    failures = [
        read_answer("x.example", txt_answer("x.example", status=status))
        for status in (LookupStatus.SERVFAIL, LookupStatus.TIMEOUT)
    ]

    assert [lookup.presence for lookup in failures] == [Presence.FAILED, Presence.FAILED]
    assert failures[0].detail == "_dmarc.x.example: servfail"


# --- what a walk concludes -------------------------------------------------------------


def test_without_records_the_start_is_its_own_organizational_domain() -> None:
    """§4.10.2: if the walk finds nothing, the initial target is the Organizational Domain."""
    table = {name: nothing_at(name) for name in walk_names("a.example.com")}

    walk = build_walk("a.example.com", walk_names("a.example.com"), table)

    assert walk.organizational_domain == "a.example.com"
    assert walk.policy_record() is None


def test_the_record_with_the_fewest_labels_is_the_organizational_one() -> None:
    """Records at mail.example.com and example.com: example.com is the Organizational Domain."""
    lookups = {
        "mail.example.com": record_at("mail.example.com", "v=DMARC1; p=none"),
        "example.com": record_at("example.com", "v=DMARC1; p=reject"),
    }
    table = {
        name: lookups.get(name, nothing_at(name)) for name in walk_names("a.mail.example.com")
    }

    walk = build_walk("a.mail.example.com", walk_names("a.mail.example.com"), table)

    assert walk.organizational_domain == "example.com"
    chosen = walk.policy_record()
    assert chosen is not None
    assert chosen.domain == "example.com"


def test_psd_n_ends_the_walk_at_its_domain() -> None:
    """A psd=n record is the Organizational Domain and nothing above it is read."""
    lookups = {"mail.example.com": record_at("mail.example.com", "v=DMARC1; p=none; psd=n")}

    read = walk_over("a.mail.example.com", lookups)

    assert read == ["a.mail.example.com", "mail.example.com"]


def test_psd_y_makes_the_name_below_it_organizational() -> None:
    """The last §4.10.2 example: psd=y at com makes example.com the Organizational Domain."""
    table = {name: nothing_at(name) for name in walk_names("a.mail.example.com")}
    table["com"] = record_at("com", "v=DMARC1; p=reject; psd=y")

    walk = build_walk("a.mail.example.com", walk_names("a.mail.example.com"), table)

    assert walk.organizational_domain == "example.com"
    assert walk.public_suffix_record is table["com"]
    assert walk.policy_record() is table["com"]


def test_psd_y_at_the_start_leaves_the_start_organizational() -> None:
    """A PSD's own record does not point one label below itself."""
    table = {"bank.example": record_at("bank.example", "v=DMARC1; p=none; psd=y")}

    walk = build_walk("bank.example", walk_names("bank.example"), table)

    assert walk.organizational_domain == "bank.example"


def test_the_author_domains_own_record_comes_first() -> None:
    """§4.10.1: the Author Domain's record beats the Organizational Domain's."""
    table = {
        "mail.example.com": record_at("mail.example.com", "v=DMARC1; p=none"),
        "example.com": record_at("example.com", "v=DMARC1; p=reject"),
        "com": nothing_at("com"),
    }

    walk = build_walk("mail.example.com", walk_names("mail.example.com"), table)

    assert walk.policy_record() is table["mail.example.com"]
    assert walk.organizational_domain == "example.com"


def test_a_failure_before_the_end_leaves_the_walk_incomplete() -> None:
    """A SERVFAIL on the way up: no Organizational Domain, no inherited policy."""
    failed = RecordLookup("example.com", Presence.FAILED, detail="_dmarc.example.com: servfail")
    table = {"a.example.com": nothing_at("a.example.com"), "example.com": failed}

    walk = build_walk("a.example.com", walk_names("a.example.com"), table)

    assert walk.complete is False
    assert walk.failure is failed
    assert walk.organizational_domain is None
    assert walk.policy_record() is None


def test_a_failure_past_a_psd_flag_does_not_matter() -> None:
    """The walk ends at psd=n; a failure above it is never read."""
    failed = RecordLookup("com", Presence.FAILED, detail="timeout")
    table = {"example.com": record_at("example.com", "v=DMARC1; p=none; psd=n"), "com": failed}

    walk = build_walk("example.com", walk_names("example.com"), table)

    assert walk.complete is True
    assert walk.organizational_domain == "example.com"


# --- asking ----------------------------------------------------------------------------


def test_lookups_ask_only_for_unknown_names_in_one_step() -> None:
    """Known names are not asked again; extra queries ride along; answers are read in."""
    known = {"example.com": nothing_at("example.com")}
    extra = (Query.of("a.example.com", "CNAME"),)
    lookups = look_up_records(["a.example.com", "example.com", "com"], known, extra)

    step = next(lookups)
    answers = (
        txt_answer("a.example.com", "v=DMARC1; p=none"),
        txt_answer("com", status=LookupStatus.NXDOMAIN),
        Answer(extra[0], LookupStatus.NODATA),
    )
    returned = finish(lookups, answers)

    assert [query.text for query in step] == [
        "_dmarc.a.example.com",
        "_dmarc.com",
        "a.example.com",
    ]
    assert known["a.example.com"].presence is Presence.RECORD
    assert known["com"].presence is Presence.NO_RECORD
    assert returned == (answers[2],)


def test_a_name_too_long_for_the_dmarc_label_is_not_asked() -> None:
    """_dmarc plus a 250-octet name exceeds 255 octets: no such name can exist."""
    long_name = ".".join(["a" * 49] * 5)
    known: dict[str, RecordLookup] = {}

    lookups = look_up_records([long_name], known)

    with pytest.raises(StopIteration) as done:
        next(lookups)

    assert done.value.value == ()
    assert known[long_name].presence is Presence.NO_RECORD
