"""Tests for mailwright.auth.dmarc.from_header: the Author Domains of a From field."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwright.auth.dmarc.from_header import (
    _SIMPLE_MAILBOX,
    MAX_PROBLEMS,
    Mailbox,
    _parse_tokens,
    author_domains,
    author_domains_of,
    parse_mailboxes,
)
from mailwright.auth.message import parse_message


def domains(*values: str) -> tuple[str, ...]:
    """The Author Domains of one From field per value."""
    return author_domains(values).domains


def test_a_plain_address_gives_its_domain() -> None:
    """An addr-spec alone names its domain."""
    assert domains("alice@example.com") == ("example.com",)


def test_display_names_quotes_and_comments_are_not_addresses() -> None:
    """@ inside a quoted string or a comment, and a display name, name no author."""
    assert domains('"Bob <bob@evil.example>" (eve@evil.example) <bob@example.com>') == (
        "example.com",
    )


def test_nested_comments_and_escapes_are_skipped() -> None:
    """Comments nest, and backslash escapes hide quotes and parentheses."""
    found = domains(r'(a (b\) c@evil.example) d) "x\"y@evil.example" z@example.com')

    assert found == ("example.com",)


def test_the_local_part_is_kept() -> None:
    """Each mailbox keeps the local part written before the @."""
    mailboxes, problems = parse_mailboxes('"first last".x@example.com')

    assert mailboxes == (Mailbox("first last.x", "example.com"),)
    assert problems == ()


def test_a_group_names_its_members() -> None:
    """A group's display name is not an address; its members are."""
    assert domains("Team: a@one.example, b@two.example;, c@three.example") == (
        "one.example",
        "two.example",
        "three.example",
    )


def test_an_empty_group_names_no_one() -> None:
    """undisclosed-recipients:; has no Author Domain, and says so."""
    found = author_domains(["undisclosed-recipients:;"])

    assert found.domains == ()
    assert found.problems == ("no address in the From field",)


def test_every_address_of_a_list_counts_once() -> None:
    """Several mailboxes give each distinct domain once, in order of appearance."""
    assert domains("a@x.example, b@y.example, c@X.EXAMPLE") == ("x.example", "y.example")


def test_a_missing_comma_does_not_hide_an_address() -> None:
    """Both domains of a broken list are found: the first would otherwise hide."""
    assert domains("ceo@bank.example attacker@evil.example") == ("bank.example", "evil.example")


def test_an_unterminated_quote_does_not_hide_an_address() -> None:
    """An unclosed quoted string or comment is not allowed to swallow the address."""
    assert domains('"Bank <ceo@bank.example>') == ("bank.example",)
    assert domains("(Bank ceo@bank.example") == ("bank.example",)


def test_a_route_is_not_an_author() -> None:
    """The relays of an obsolete route (RFC 5322 §4.4) are not Author Domains."""
    assert domains("<@relay.example,@hop.example:joe@example.com>") == ("example.com",)


def test_obsolete_spaces_around_dots_are_joined() -> None:
    """RFC 5322 §4.4 allows white space and comments between domain labels."""
    assert domains("joe@ example (x) . com") == ("example.com",)


def test_domains_are_lower_case_a_labels() -> None:
    """U-labels become A-labels (RFC 9989 §5.3.1), case is folded, a final dot dropped."""
    assert domains("Jörg <jorg@Bücher.Example.>") == ("xn--bcher-kva.example",)


def test_unusable_domains_are_problems() -> None:
    """A domain literal, an empty label and a missing domain are noted, not used."""
    found = author_domains(["a@[192.0.2.1], b@exa..mple, c@, d@ok.example"])

    assert found.domains == ("ok.example",)
    assert found.problems == (
        "no domain after c@",
        "[192.0.2.1] is a domain literal, which has no DMARC policy",
        "'exa..mple' is not a usable domain name",
    )


def test_several_from_fields_are_all_read_and_noted() -> None:
    """Every From field counts, and their number is a problem (RFC 5322 §3.6)."""
    found = author_domains(["a@one.example", "b@two.example"])

    assert found.domains == ("one.example", "two.example")
    assert found.field_count == 2
    assert found.problems == ("2 From fields; RFC 5322 §3.6 allows one",)


def test_no_from_field_is_a_problem() -> None:
    """Without a From field there is nothing to evaluate."""
    found = author_domains([])

    assert found.domains == ()
    assert found.problems == ("no From field",)


def test_single_is_the_one_domain_or_none() -> None:
    """single is set only when exactly one Author Domain was found."""
    assert author_domains(["a@x.example"]).single == "x.example"
    assert author_domains(["a@x.example, b@y.example"]).single is None
    assert author_domains([]).single is None


def test_a_message_is_read_from_all_its_from_fields() -> None:
    """author_domains_of unfolds each From field of a parsed message."""
    message = parse_message(
        b"From: Alice\r\n <alice@example.com>\r\nTo: x@example.net\r\nfrom: b@example.org\r\n\r\n"
    )

    found = author_domains_of(message)

    assert found.domains == ("example.com", "example.org")


def test_bytes_are_read_as_utf8() -> None:
    """Raw field values are decoded, invalid octets replaced."""
    assert author_domains([b"\xff <a@example.com>"]).domains == ("example.com",)


def test_the_problem_list_is_bounded() -> None:
    """Ten thousand broken addresses keep a short list of problems."""
    found = author_domains(["x@, " * 10_000])

    assert len(found.problems) == MAX_PROBLEMS + 1


# --- properties ------------------------------------------------------------------------

labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
hosts = st.lists(labels, min_size=2, max_size=4).map(".".join)
locals_ = st.from_regex(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,10}", fullmatch=True)
names = st.from_regex(r"[A-Za-z ,@<>():;]{0,15}", fullmatch=True)


@st.composite
def address_lists(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A From value of quoted display names and angle addresses, and its domains."""
    parts = []
    expected = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        local, host, name = draw(locals_), draw(hosts), draw(names)
        quoted = '"' + name.replace('"', "") + '"'
        parts.append(f"{quoted} <{local}@{host}>" if draw(st.booleans()) else f"{local}@{host}")
        expected.append(host)
    return ", ".join(parts), list(dict.fromkeys(expected))


@given(address_lists())
def test_generated_address_lists_give_their_domains(case: tuple[str, list[str]]) -> None:
    """Any list of valid mailboxes gives exactly their domains, in order."""
    value, expected = case

    found = author_domains([value])

    assert list(found.domains) == expected
    assert found.problems == ()


@given(st.lists(st.text(max_size=200) | st.binary(max_size=200), max_size=3))
def test_extraction_never_raises(values: list[str | bytes]) -> None:
    """Any field values give domains already in normal form."""
    found = author_domains(values)

    for domain in found.domains:
        assert domain == domain.lower()
        assert domain.isascii()


# -- the fast path for common forms ---------------------------------------------------

FROM_PIECES = st.sampled_from(
    [
        "a", "B", "é", " ", "\t", '"', "\\", "<", ">", "@", ".", ",", ";", ":", "(", ")",
        "[", "]", "\r", "\n", "\x0b", "\u2028", "ex.com", '"A B"', "<a@b.c>", "@x:",
        "=?utf-8?q?x?=",
    ]
)  # fmt: skip


@given(st.lists(FROM_PIECES, max_size=12).map("".join) | st.text(max_size=60))
def test_the_fast_path_reads_what_the_tokens_read(value: str) -> None:
    """parse_mailboxes() gives the token reading's answer for every value, simple or not."""
    assert parse_mailboxes(value) == _parse_tokens(value)


@pytest.mark.parametrize(
    "value",
    [
        '"Alice Example" <alice@example.com>',
        "alice@example.com",
        "Alice Example <alice.x@mail.example.com>",
        ' "x" y  <b@c.example>  ',
    ],
)
def test_common_forms_take_the_fast_path(value: str) -> None:
    """The usual From forms are read by the one pattern, with the tokens' answer."""
    assert _SIMPLE_MAILBOX.fullmatch(value) is not None
    assert parse_mailboxes(value) == _parse_tokens(value)
