"""Inbound SMS keywords (STOP, START, HELP) and the replies they get.

A keyword counts only when it is the whole message: "STOP" and " stop! " are a
stop, "please stop texting me at night" is not (it goes to a person, not to an
opt-out). Case, Unicode width (full-width letters), surrounding whitespace and
punctuation are ignored; inner runs of spaces, hyphens and underscores read as
one space, so "OPT-OUT" and "opt  out" are OPT OUT.

The words follow the CTIA messaging principles and the carriers' lists:

- stop: STOP, STOPALL, STOP ALL, END, CANCEL, UNSUBSCRIBE, QUIT, REVOKE,
  OPT OUT, OPTOUT;
- start: START and UNSTOP. YES is deliberately *not* a start word: it is the
  answer to too many questions ("Reply YES to confirm your appointment") for a
  bare YES to re-subscribe a number that said STOP. A double opt-in flow that
  asks for YES reads it itself;
- help: HELP and INFO.

Pure: no I/O, no logging, nothing raised.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

KeywordKind = Literal["stop", "start", "help"]

_WORDS: dict[str, KeywordKind] = {
    **dict.fromkeys(
        (
            "STOP",
            "STOPALL",
            "STOP ALL",
            "END",
            "CANCEL",
            "UNSUBSCRIBE",
            "QUIT",
            "REVOKE",
            "OPT OUT",
            "OPTOUT",
        ),
        "stop",
    ),
    **dict.fromkeys(("START", "UNSTOP"), "start"),
    **dict.fromkeys(("HELP", "INFO"), "help"),
}

_INNER = re.compile(r"[\s\-_]+")


@dataclass(frozen=True, slots=True)
class Keyword:
    """A recognised keyword: its kind and the word as normalised (``"OPT OUT"``)."""

    kind: KeywordKind
    word: str


@dataclass(frozen=True, slots=True)
class KeywordReplies:
    """The single reply each keyword gets; ``{program}`` stands for the program's name.

    The defaults stay within one GSM-7 segment for a program name of up to 40
    characters, and say what the CTIA principles ask: the stop reply confirms
    and names the way back, the help reply names the ways out and in.
    """

    stop: str = (
        "{program}: You are unsubscribed and will get no more messages. "
        "Reply START to resubscribe."
    )
    start: str = "{program}: You are subscribed again. Reply HELP for help, STOP to opt out."
    help: str = "{program}: Reply STOP to opt out, START to opt back in. Msg&data rates may apply."

    def render(self, kind: KeywordKind, program: str) -> str:
        """The reply to ``kind``, with the program named (other braces are left as they are)."""
        template: str = getattr(self, kind)
        return template.replace("{program}", program)


def classify(text: str) -> Keyword | None:
    """The keyword ``text`` is, or None when it is anything else (including empty)."""
    normal = unicodedata.normalize("NFKC", text)
    normal = _strip_edges(normal)
    normal = _INNER.sub(" ", normal).upper()

    kind = _WORDS.get(normal)
    return Keyword(kind, normal) if kind else None


def _strip_edges(text: str) -> str:
    """``text`` without leading and trailing whitespace, punctuation and symbols."""
    start, end = 0, len(text)
    while start < end and _is_edge(text[start]):
        start += 1
    while end > start and _is_edge(text[end - 1]):
        end -= 1
    return text[start:end]


def _is_edge(char: str) -> bool:
    """Whitespace, punctuation (P*), symbols (S*) and controls: what wraps a keyword."""
    return char.isspace() or unicodedata.category(char)[0] in "PSC"
