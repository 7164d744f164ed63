"""Inbound SMS keywords and their replies (mailwright.notify.sms.keywords)."""

from __future__ import annotations

import pytest

from mailwright.notify.sms.encoding import split
from mailwright.notify.sms.keywords import Keyword, KeywordKind, KeywordReplies, classify

STOP_WORDS = ["STOP", "END", "CANCEL", "UNSUBSCRIBE", "QUIT", "STOPALL", "REVOKE", "OPT OUT"]


@pytest.mark.parametrize("word", STOP_WORDS)
def test_every_carrier_stop_word_is_a_stop(word: str) -> None:
    """Each of the eight stop words the issue lists classifies as stop."""
    assert classify(word) == Keyword("stop", word)


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("stop", "STOP"),
        ("  Stop!  ", "STOP"),
        ("«STOP»", "STOP"),
        ("ＳＴＯＰ", "STOP"),
        ("opt-out", "OPT OUT"),
        ("Opt  Out.", "OPT OUT"),
        ("optout", "OPTOUT"),
        ("stop all", "STOP ALL"),
        ("\nUnsubscribe\r\n", "UNSUBSCRIBE"),
        ("STOP 👍", "STOP"),
    ],
)
def test_case_width_whitespace_and_punctuation_are_ignored(text: str, word: str) -> None:
    """Spelling variations around a stop word still make it a stop."""
    assert classify(text) == Keyword("stop", word)


@pytest.mark.parametrize(
    "text",
    ["please stop texting me", "STOP IT", "don't stop", "STOPP", "S T O P", "", "   ", "?!"],
)
def test_a_keyword_must_be_the_whole_message(text: str) -> None:
    """A sentence containing a keyword, or a near miss, is not a keyword."""
    assert classify(text) is None


def test_start_and_unstop_re_opt_in_but_yes_does_not() -> None:
    """START and UNSTOP are start; a bare YES is deliberately no keyword."""
    assert classify("start") == Keyword("start", "START")
    assert classify("Unstop") == Keyword("start", "UNSTOP")
    assert classify("YES") is None


def test_help_and_info_ask_for_help() -> None:
    """HELP and INFO are help keywords."""
    assert classify("Help?") == Keyword("help", "HELP")
    assert classify("info") == Keyword("help", "INFO")


def test_replies_name_the_program_and_leave_other_braces_alone() -> None:
    """render fills {program} only, so a reply may contain other braces safely."""
    replies = KeywordReplies(help="{program} help: {see} example.com")

    assert replies.render("help", "Acme Jobs") == "Acme Jobs help: {see} example.com"
    assert replies.render("stop", "Acme Jobs").startswith("Acme Jobs: You are unsubscribed")
    assert "START" in replies.render("stop", "Acme Jobs")


@pytest.mark.parametrize("kind", ["stop", "start", "help"])
def test_default_replies_fit_one_gsm7_message_with_a_40_character_program(
    kind: KeywordKind,
) -> None:
    """A keyword reply costs one segment, in GSM-7."""
    text = KeywordReplies().render(kind, "P" * 40)
    encoded = split(text)

    assert (encoded.data_coding, len(encoded.parts)) == (0, 1)
