"""TXT records for publication: splitting into character-strings and the zone-file line."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwright.dns.txt import quote_string, split_txt, zone_line

printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=2000)


@given(printable)
def test_pieces_join_back_and_are_at_most_255(text: str) -> None:
    pieces = split_txt(text)
    assert "".join(pieces) == text
    assert all(len(piece) <= 255 for piece in pieces)
    assert all(len(piece) == 255 for piece in pieces[:-1])


def test_empty_record_is_one_empty_string() -> None:
    assert split_txt("") == [""]


@pytest.mark.parametrize("text", ["caf\u00e9", "line\nbreak", "tab\there"])
def test_non_printable_ascii_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        split_txt(text)


def test_quotes_and_backslashes_are_escaped() -> None:
    assert quote_string('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'


def test_zone_line_short_and_long() -> None:
    assert zone_line("_dmarc.example.com", "v=DMARC1; p=reject") == (
        '_dmarc.example.com.\tIN\tTXT\t"v=DMARC1; p=reject"'
    )
    long = "v=DKIM1; k=rsa; p=" + "A" * 400
    line = zone_line("s._domainkey.example.com.", long, ttl=3600)
    assert line.startswith('s._domainkey.example.com.\t3600\tIN\tTXT\t(\n\t"v=DKIM1')
    assert line.endswith('" )')
    strings = [part.strip().strip('"') for part in line.split("(", 1)[1].rstrip(" )").split("\n")]
    assert "".join(part for part in strings if part) == long
