"""The Author Domain(s): the domains of the RFC5322.From header field (RFC 9989 §5.3.1).

DMARC applies to the domain of the author's address, so everything rests on
reading that address the way the reader's mail program will show it. The
field is an RFC 5322 §3.6.2 ``address-list``: mailboxes with or without a
display name, angle brackets, quoted strings, comments, groups, and the
obsolete forms of §4 (routes in angle brackets, white space around dots).

Theory of operation. The value is cut into tokens: atoms, quoted strings,
domain literals and single special characters, with comments and white
space dropped. Every ``@`` outside quoted strings, comments and literals
then starts an address: the words before it are the local part, the atoms
and dots after it the domain. An ``@`` that opens a route (``<@relay:...``)
is skipped.

Why every ``@`` rather than a strict parse? A strict parser gives up on
broken fields, and a lenient one that keeps only the "best" address lets
``From: ceo@bank.example attacker@evil.example`` (a missing comma) be judged
by the attacker's domain alone. Counting every address means a field that
names a domain is judged by that domain's policy: RFC 9989 §11.5 warns
that extra addresses are how DMARC is dodged. Group names (``Friends:``),
display names and OpenDMARC's odd test inputs such as ``Mail From:<a@b>``
carry no ``@`` of their own and so fall away naturally.

What DMARC does with no domain or several is not decided here;
:mod:`.evaluate` follows RFC 9989 §5.3.1 and §11.5.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from mailwright.auth.dmarc._domains import normalize_domain
from mailwright.auth.message import Message

#: Characters that end an atom (RFC 5322 §3.2.3 specials; "(", ")" and '"' open
#: comments and quoted strings, "\\" is only meaningful inside them).
_SPECIALS = frozenset('<>@,;:.[]()"\\')
_WHITE = frozenset(" \t\r\n")
_ENDS_ATOM = _SPECIALS | _WHITE
_OPENERS = {"(": ")", '"': '"', "[": "]"}

#: Problems kept per field set; a header of ten thousand junk addresses stays small.
MAX_PROBLEMS = 20


@dataclass(frozen=True, slots=True)
class Mailbox:
    """One address found in a From field: its local part and its domain as written."""

    local_part: str
    domain: str


@dataclass(frozen=True, slots=True)
class AuthorDomains:
    """What the From fields of a message name (RFC 9989 §5.3.1).

    ``domains`` holds each usable domain once, as lower-case A-labels, in
    the order first seen; ``mailboxes`` every address found; ``problems``
    what could not be used (no domain after ``@``, a domain literal, an
    invalid name, repeated From fields); ``field_count`` the number of From
    fields read.
    """

    domains: tuple[str, ...]
    mailboxes: tuple[Mailbox, ...] = ()
    problems: tuple[str, ...] = ()
    field_count: int = 1

    @property
    def single(self) -> str | None:
        """The Author Domain when there is exactly one, else None."""
        return self.domains[0] if len(self.domains) == 1 else None


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "atom", "quoted", "literal" or "special"
    text: str


def parse_mailboxes(value: str) -> tuple[tuple[Mailbox, ...], tuple[str, ...]]:
    """Every address in one From field value, and the problems met; never raises.

    The common forms, ``local@domain`` and a display name of plain words or
    quoted strings before ``<local@domain>``, are read by one pattern; the
    result is the one the tokens give (a property test compares the two).
    """
    simple = _SIMPLE_MAILBOX.fullmatch(value)
    if simple is not None:
        local, domain = simple.group(1, 2) if simple[1] is not None else simple.group(3, 4)
        return (Mailbox(local, domain),), ()
    return _parse_tokens(value)


_ATOM = r'[^<>@,;:.\[\]()"\\ \t\r\n]+'
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
_WORD = rf'(?:"[^"\\]*"|{_ATOM})'
#: One mailbox without comments, routes, literals or escapes: the fast path.
_SIMPLE_MAILBOX = re.compile(
    rf"[ \t]*(?:(?:{_WORD}(?:[ \t]+{_WORD})*[ \t]*)?<({_DOT_ATOM})@({_DOT_ATOM})>"
    rf"|({_DOT_ATOM})@({_DOT_ATOM}))[ \t]*"
)


def _parse_tokens(value: str) -> tuple[tuple[Mailbox, ...], tuple[str, ...]]:
    """:func:`parse_mailboxes` for any value, from its tokens."""
    tokens = list(_tokens(value))
    route_ahead = _route_ahead(tokens)
    mailboxes: list[Mailbox] = []
    problems: list[str] = []
    depth = 0

    for index, token in enumerate(tokens):
        if token.kind != "special":
            continue
        if token.text == "<":
            depth += 1
        elif token.text == ">":
            depth = max(0, depth - 1)
        elif token.text == "@" and not (depth and _opens_route(tokens, index, route_ahead)):
            domain = _domain_after(tokens, index + 1)
            local = _local_before(tokens, index)
            if domain:
                mailboxes.append(Mailbox(local, domain))
            else:
                problems.append(f"no domain after {local or ''}@")
    return tuple(mailboxes), tuple(problems)


def _opens_route(tokens: list[_Token], index: int, route_ahead: list[bool]) -> bool:
    """True when the ``@`` at ``index`` starts an obsolete route (RFC 5322 §4.4).

    A route is ``<@relay1,@relay2:user@example.com>``: an ``@`` straight after
    ``<`` or ``,`` in a domain list that ends in ``:`` before the angle closes.
    """
    if index == 0 or not route_ahead[index]:
        return False
    before = tokens[index - 1]
    return before.kind == "special" and before.text in ("<", ",")


def author_domains(values: Iterable[str | bytes]) -> AuthorDomains:
    """The Author Domains named by the given From field values (unfolded); never raises.

    Several values are several From fields, which RFC 5322 §3.6 forbids; their
    addresses are all counted, and the repetition is noted as a problem.
    """
    domains: dict[str, None] = {}
    mailboxes: list[Mailbox] = []
    problems: list[str] = []
    count = 0

    for value in values:
        count += 1
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        found, trouble = parse_mailboxes(text)
        mailboxes.extend(found)
        problems.extend(trouble)

    for mailbox in mailboxes:
        if mailbox.domain.startswith("["):
            literal = mailbox.domain[:80]
            problems.append(f"{literal} is a domain literal, which has no DMARC policy")
            continue
        domain = normalize_domain(mailbox.domain)
        if domain is None:
            problems.append(f"{mailbox.domain[:80]!r} is not a usable domain name")
        else:
            domains.setdefault(domain, None)

    if count == 0:
        problems.append("no From field")
    elif count > 1:
        problems.append(f"{count} From fields; RFC 5322 §3.6 allows one")
    if not mailboxes and count:
        problems.append("no address in the From field")
    if len(problems) > MAX_PROBLEMS:
        problems[MAX_PROBLEMS:] = [f"{len(problems) - MAX_PROBLEMS} more problems not listed"]
    return AuthorDomains(tuple(domains), tuple(mailboxes), tuple(problems), count)


def author_domains_of(message: Message) -> AuthorDomains:
    """The Author Domains of a parsed message, from all its From fields."""
    return author_domains(field.unfolded for field in message.fields("From"))


def _tokens(value: str) -> Iterator[_Token]:
    """Atoms, quoted strings, domain literals and specials; comments and space dropped.

    An unterminated comment, quoted string or literal hides nothing: its
    opening character becomes a lone special and reading goes on after it,
    so ``"<a@b.example>`` still shows the address a mail program would. After
    one such failure, later openers of the same kind are not tried again,
    which keeps the work linear in the length of the value.
    """
    position = 0
    length = len(value)
    broken: set[str] = set()
    while position < length:
        char = value[position]
        if char in _WHITE:
            position += 1
            continue

        closed: tuple[int, str] | None = None
        if char in _OPENERS and char not in broken:
            read = _read_comment if char == "(" else _read_quoted
            closed = read(value, position)
            if closed is None:
                broken.add(char)
        if closed is not None:
            position, text = closed
            if char == '"':
                yield _Token("quoted", text)
            elif char == "[":
                yield _Token("literal", "[" + text + "]")
            continue

        if char in _SPECIALS:
            yield _Token("special", char)
            position += 1
            continue
        start = position
        while position < length and value[position] not in _ENDS_ATOM:
            position += 1
        yield _Token("atom", value[start:position])


def _read_comment(value: str, position: int) -> tuple[int, str] | None:
    """The end of the comment opening at ``position`` (nested, with escapes), or None."""
    depth = 0
    while position < len(value):
        char = value[position]
        if char == "\\":
            position += 2
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return position + 1, ""
        position += 1
    return None


def _read_quoted(value: str, position: int) -> tuple[int, str] | None:
    """The end and unescaped text of a quoted string or literal, or None if unterminated."""
    closing = _OPENERS[value[position]]
    out: list[str] = []
    position += 1
    while position < len(value):
        char = value[position]
        if char == "\\" and position + 1 < len(value):
            out.append(value[position + 1])
            position += 2
            continue
        if char == closing:
            return position + 1, "".join(out)
        out.append(char)
        position += 1
    return None


def _domain_after(tokens: list[_Token], start: int) -> str:
    """The domain written from ``start``: atoms joined by dots, or a domain literal."""
    if start < len(tokens) and tokens[start].kind == "literal":
        return tokens[start].text

    parts: list[str] = []
    index = start
    while index < len(tokens):
        token = tokens[index]
        if token.kind == "atom" and (not parts or parts[-1] == "."):
            parts.append(token.text)
        elif token.kind == "special" and token.text == "." and parts:
            parts.append(".")
        else:
            break
        index += 1
    if not any(part != "." for part in parts):
        return ""
    return "".join(parts)


def _local_before(tokens: list[_Token], end: int) -> str:
    """The local part written just before the ``@`` at ``end``: words joined by dots."""
    parts: list[str] = []
    index = end - 1
    while index >= 0:
        token = tokens[index]
        if token.kind in ("atom", "quoted") and (not parts or parts[0] == "."):
            parts.insert(0, token.text)
        elif token.kind == "special" and token.text == "." and parts:
            parts.insert(0, ".")
        else:
            break
        index -= 1
    return "".join(parts)


def _route_ahead(tokens: list[_Token]) -> list[bool]:
    """For each token, whether the next ``:``, ``<`` or ``>`` after it is a ``:``.

    One backward pass, so that telling route ``@`` apart stays linear.
    """
    ahead = [False] * len(tokens)
    colon_next = False
    for index in range(len(tokens) - 1, -1, -1):
        ahead[index] = colon_next
        token = tokens[index]
        if token.kind == "special" and token.text in (":", "<", ">"):
            colon_next = token.text == ":"
    return ahead
