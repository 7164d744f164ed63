"""SPF macros (RFC 7208 §7): parsed once with the record, expanded during a check.

Theory of operation. A domain-spec such as ``%{ir}.%{v}._spf.%{d2}`` or an
explanation such as ``%{i} is not one of %{d}'s hosts`` is a *macro-string*
(§7.1): literal text with ``%{...}`` expansions and three escapes (``%%``,
``%_`` and ``%-``). Parsing turns it into a :class:`MacroString`, a tuple of
literal text and :class:`Macro` values, and reports every syntax error the
ABNF rules out (a ``%`` followed by anything else, an unknown letter, a zero
digit count, a character that is not visible ASCII) as a :class:`MacroError`
value; nothing here raises. Syntax is checked when the record is parsed
(§4.6: errors anywhere in the record are errors), expansion happens only for
the terms that are evaluated.

Expansion needs the facts of the check (:class:`MacroValues`). All of them
are known up front except ``%{p}``, the client's validated host name, which
costs DNS queries (§5.5); the evaluator looks it up only for strings whose
:attr:`MacroString.uses_ptr` is true and passes the answer in.

Two more rules apply to names built by expansion (§7.3): a trailing dot is
dropped, and a name longer than 253 characters loses labels from the left
until it fits. :func:`expand_domain` applies both, building the name from
the right so that a record of thousands of macros costs no more than the
253 characters it keeps.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import quote

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Letters a domain-spec may use (RFC 7208 §7.2).
DOMAIN_LETTERS = frozenset("slodiphv")
#: Letters an explanation may use: those and c, r and t (§7.2).
EXPLANATION_LETTERS = DOMAIN_LETTERS | frozenset("crt")

#: The longest name a domain-spec may expand to, in characters (§7.3).
MAX_DOMAIN_LENGTH = 253

#: Inside the braces: letter, digit count, "r", delimiters (§7.1).
_MACRO_BODY = re.compile(r"([A-Za-z])([0-9]*)([rR]?)([.+,/_=-]*)")
#: Digit counts beyond this mean "every part" (§7.3 asks for at least 128).
_MAX_DIGITS = 1_000_000


@dataclass(frozen=True, slots=True)
class Macro:
    """One ``%{...}`` expansion (§7.1): a letter and its transformers.

    ``letter`` is lower case; ``url_escape`` records that it was written in
    upper case, which asks for URL escaping of the value (§7.3). ``digits``
    keeps that many right-hand parts, ``reverse`` reverses the parts first,
    ``delimiters`` are the characters to split on (``"."`` when empty).
    """

    letter: str
    digits: int | None = None
    reverse: bool = False
    delimiters: str = ""
    url_escape: bool = False


@dataclass(frozen=True, slots=True)
class MacroString:
    """A parsed macro-string: literal text and macros, in order."""

    parts: tuple[str | Macro, ...]
    source: str

    @property
    def uses_ptr(self) -> bool:
        """True when expanding needs the validated host name (``%{p}``, §7.3)."""
        return any(isinstance(part, Macro) and part.letter == "p" for part in self.parts)

    def __str__(self) -> str:
        return self.source


@dataclass(frozen=True, slots=True)
class MacroError:
    """Why a macro-string is not valid; a permerror in a record (§7.1)."""

    reason: str


@dataclass(frozen=True, slots=True)
class MacroValues:
    """What the macro letters stand for in one check (§7.3).

    ``validated_domain`` is ``%{p}``, "unknown" until the evaluator has
    looked it up; ``receiver`` is ``%{r}`` and ``timestamp`` ``%{t}``, both
    given by the caller since the evaluator reads no clock and no host name.
    """

    sender: str
    local_part: str
    sender_domain: str
    domain: str
    ip: Address
    helo: str
    validated_domain: str = "unknown"
    receiver: str = "unknown"
    timestamp: int = 0

    def for_domain(self, domain: str) -> MacroValues:
        """The same values with ``%{d}`` set to ``domain`` (an include or redirect)."""
        return MacroValues(
            self.sender,
            self.local_part,
            self.sender_domain,
            domain,
            self.ip,
            self.helo,
            "unknown",
            self.receiver,
            self.timestamp,
        )

    def value(self, letter: str) -> str:
        """The unexpanded value of one lower-case macro letter."""
        if letter == "s":
            return self.sender
        if letter == "l":
            return self.local_part
        if letter == "o":
            return self.sender_domain
        if letter == "d":
            return self.domain
        if letter == "i":
            return _dotted(self.ip)
        if letter == "p":
            return self.validated_domain
        if letter == "v":
            return "in-addr" if self.ip.version == 4 else "ip6"
        if letter == "h":
            return self.helo
        if letter == "c":
            return str(self.ip)
        if letter == "r":
            return self.receiver
        return str(self.timestamp)  # "t"


def parse_domain_spec(text: str) -> MacroString | MacroError:
    """Parse the target of a mechanism, redirect= or exp= (``domain-spec``, §7.1).

    Beyond the macro-string syntax, a domain-spec must not be empty and must
    end in a macro or in ``.`` and a top label (letters, digits and inner
    hyphens, not all digits), optionally followed by one dot. The letters
    c, r and t are refused here: they belong to explanations only (§7.2).
    """
    if not text:
        return MacroError("empty domain-spec")

    parsed = _parse(text, DOMAIN_LETTERS, spaces=False)
    if isinstance(parsed, MacroError):
        return parsed

    macro_string, tail = parsed
    if tail is not None and not _ends_in_toplabel(tail):
        return MacroError(f"domain-spec {_show(text)} does not end in a top-level label")
    return macro_string


def parse_macro_string(text: str) -> MacroString | MacroError:
    """Parse the value of an unknown modifier (``macro-string``, §7.1, Appendix A).

    Only the syntax is checked: such values are never expanded.
    """
    parsed = _parse(text, EXPLANATION_LETTERS, spaces=False)
    return parsed if isinstance(parsed, MacroError) else parsed[0]


def parse_explanation(text: str) -> MacroString | MacroError:
    """Parse an explanation fetched for exp= (``explain-string``, §6.2, §7.1).

    Spaces are allowed, and so are the letters c, r and t.
    """
    parsed = _parse(text, EXPLANATION_LETTERS, spaces=True)
    return parsed if isinstance(parsed, MacroError) else parsed[0]


def expand(macro_string: MacroString, values: MacroValues, *, limit: int | None = None) -> str:
    """Expand every macro of ``macro_string`` (§7.3); used for explanations.

    With ``limit``, expansion stops once that many characters are built and
    the text is cut there (§6.2 lets an explanation be limited).
    """
    pieces: list[str] = []
    size = 0
    for part in macro_string.parts:
        piece = _render(part, values)
        pieces.append(piece)
        size += len(piece)
        if limit is not None and size >= limit:
            return "".join(pieces)[:limit]
    return "".join(pieces)


def expand_domain(macro_string: MacroString, values: MacroValues) -> str:
    """Expand a domain-spec into a name to query (§7.3).

    One trailing dot is dropped, and a name over 253 characters loses whole
    labels from its left until it fits; the result is empty when no label
    boundary leaves a short enough name. Only the rightmost 255 characters
    are ever built.
    """
    pieces: list[str] = []
    size = 0
    for part in reversed(macro_string.parts):
        piece = _render(part, values)
        pieces.append(piece)
        size += len(piece)
        if size > MAX_DOMAIN_LENGTH + 1:
            break
    name = "".join(reversed(pieces))[-(MAX_DOMAIN_LENGTH + 2) :]

    if name.endswith("."):
        name = name[:-1]
    if len(name) <= MAX_DOMAIN_LENGTH:
        return name

    window = name[-(MAX_DOMAIN_LENGTH + 1) :]
    dot = window.find(".")
    return window[dot + 1 :] if dot >= 0 else ""


def _parse(
    text: str, letters: frozenset[str], *, spaces: bool
) -> tuple[MacroString, str | None] | MacroError:
    """Parse a macro-string; also return the literal text after its last expansion.

    The tail is None when the string ends in an expansion (a macro or an
    escape), which is what the domain-end rule of a domain-spec asks about.
    """
    parts: list[str | Macro] = []
    literal: list[str] = []
    tail_start = 0
    index = 0
    while index < len(text):
        char = text[index]
        if char != "%":
            if not ("!" <= char <= "~" or (spaces and char == " ")):
                return MacroError(f"character {char!r} at offset {index} is not allowed")
            literal.append(char)
            index += 1
            continue

        follower = text[index + 1 : index + 2]
        if follower in ("%", "_", "-"):
            literal.append({"%": "%", "_": " ", "-": "%20"}[follower])
            index += 2
        elif follower == "{":
            close = text.find("}", index + 2)
            if close < 0:
                return MacroError(f"macro at offset {index} has no closing '}}'")
            macro = _parse_macro(text[index + 2 : close], letters)
            if isinstance(macro, MacroError):
                return macro
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(macro)
            index = close + 1
        else:
            return MacroError(f"'%' at offset {index} is not followed by '{{', '%', '_' or '-'")
        tail_start = index

    if literal:
        parts.append("".join(literal))
    tail = text[tail_start:] if tail_start < len(text) else None
    return MacroString(tuple(parts), text), tail


def _parse_macro(body: str, letters: frozenset[str]) -> Macro | MacroError:
    """Parse what stands between ``%{`` and ``}``."""
    match = _MACRO_BODY.fullmatch(body)
    if match is None:
        return MacroError(f"malformed macro %{{{_show(body, 40)}}}")

    letter, digits_text, reverse, delimiters = match.groups()
    lower = letter.lower()
    if lower not in EXPLANATION_LETTERS:
        return MacroError(f"unknown macro letter {letter!r}")
    if lower not in letters:
        return MacroError(f"macro letter {letter!r} is only allowed in explanations")

    digits: int | None = None
    if digits_text:
        significant = digits_text.lstrip("0")
        if not significant:
            return MacroError(f"macro %{{{body}}} keeps zero parts")
        digits = int(significant) if len(significant) <= 6 else _MAX_DIGITS

    return Macro(lower, digits, bool(reverse), delimiters, url_escape=letter.isupper())


def _render(part: str | Macro, values: MacroValues) -> str:
    """The text of one part: literal text as is, a macro transformed (§7.3)."""
    if isinstance(part, str):
        return part

    value = values.value(part.letter)
    if part.delimiters or part.reverse or part.digits is not None:
        pieces = re.split(f"[{re.escape(part.delimiters or '.')}]", value)
        if part.reverse:
            pieces.reverse()
        if part.digits is not None:
            pieces = pieces[-part.digits :]
        value = ".".join(pieces)
    return quote(value, safe="") if part.url_escape else value


def _dotted(ip: Address) -> str:
    """``%{i}``: dotted quad, or dot-separated nibbles for IPv6 (§7.3)."""
    if ip.version == 4:
        return str(ip)
    return ".".join(ip.exploded.replace(":", ""))


def _ends_in_toplabel(tail: str) -> bool:
    """The domain-end rule: the literal tail closes with ``"." toplabel ["."]`` (§7.1).

    A top label is letters, digits and hyphens, neither starting nor ending
    with a hyphen, and not all digits. Checked by hand rather than with a
    regular expression, whose backtracking on a long tail would be quadratic.
    """
    body = tail[:-1] if tail.endswith(".") else tail
    dot = body.rfind(".")
    if dot < 0:
        return False

    label = body[dot + 1 :]
    if not label or label[0] == "-" or label[-1] == "-":
        return False
    if not all(char.isascii() and (char.isalnum() or char == "-") for char in label):
        return False
    return not label.isdigit()


def _show(text: str, limit: int = 60) -> str:
    """``text`` quoted for a reason, shortened when long."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."
