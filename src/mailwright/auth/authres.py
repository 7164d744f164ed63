"""The Authentication-Results header field (RFC 8601): written by us, read from others.

A receiver records what it verified in one field::

    Authentication-Results: mx.example.com;
        spf=pass smtp.mailfrom=example.net;
        dkim=pass header.d=example.net header.s=s1 header.b=oB8tK7Sg;
        dmarc=pass header.from=example.net

The field starts with the *authserv-id* (who did the checks, RFC 8601
§2.5), then one *resinfo* per method: ``method=result``, an optional
``reason=``, and properties ``ptype.property=value`` (ptype ``smtp``,
``header``, ``body`` or ``policy``, §2.3). With nothing checked the field
says ``none``.

:func:`format_results` writes the field's value, quoting what must be
quoted and folding between results. :func:`parse_results` reads one back,
with the comments and odd spacing real servers produce; it raises
:class:`AuthResSyntaxError` for text that is not an Authentication-Results
value (a receiver then ignores that field). The parsed form is also what
ARC keeps in ARC-Authentication-Results (RFC 8617 §4.1.1) and what the MX
checks when it removes fields claiming our own authserv-id (RFC 8601 §5).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

#: RFC 2045 tspecials: a token is any visible ASCII except these.
_TSPECIALS = frozenset('()<>@,;:\\"/[]?=')


def _visible_except(excluded: str) -> re.Pattern[str]:
    """A pattern matching one or more visible ASCII characters, none of ``excluded``."""
    allowed = "".join(chr(c) for c in range(33, 127) if chr(c) not in excluded)
    return re.compile(f"[{re.escape(allowed)}]+")


#: A token (RFC 2045 §5.1) and a property value written as is (RFC 8601 §2.2).
_TOKEN = _visible_except("".join(_TSPECIALS))
_BARE_PVALUE = _visible_except('()<>,;:\\"[]')

#: The result words of each method, as RFC 8601 §2.7 (and the method RFCs) spell them.
RESULT_WORDS: dict[str, frozenset[str]] = {
    "spf": frozenset({"none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"}),
    "dkim": frozenset({"none", "pass", "fail", "policy", "neutral", "temperror", "permerror"}),
    "dmarc": frozenset({"none", "pass", "fail", "temperror", "permerror"}),
    "arc": frozenset({"none", "pass", "fail"}),
    "iprev": frozenset({"pass", "fail", "temperror", "permerror"}),
    "auth": frozenset({"none", "pass", "fail", "temperror", "permerror"}),
}


class AuthResSyntaxError(ValueError):
    """The text is not an Authentication-Results value; the message says where."""


@dataclass(frozen=True, slots=True)
class Property:
    """One ``ptype.property=value`` of a result (RFC 8601 §2.2)."""

    ptype: str
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class MethodResult:
    """One method's outcome: ``method[/version]=result [reason=...] [properties]``."""

    method: str
    result: str
    properties: tuple[Property, ...] = ()
    reason: str | None = None
    version: str | None = None
    comment: str | None = None  # written after the result, for people; not parsed back

    def get(self, ptype: str, name: str) -> str | None:
        """The value of ``ptype.name`` (case-insensitive), or None."""
        for prop in self.properties:
            if prop.ptype.lower() == ptype.lower() and prop.name.lower() == name.lower():
                return prop.value
        return None


@dataclass(frozen=True, slots=True)
class AuthenticationResults:
    """A whole field: the authserv-id and the results (empty: ``none``)."""

    authserv_id: str
    results: tuple[MethodResult, ...] = ()
    version: str | None = None

    def of(self, method: str) -> list[MethodResult]:
        """The results of ``method`` (case-insensitive), in order."""
        return [r for r in self.results if r.method.lower() == method.lower()]


# --- Writing -----------------------------------------------------------------------


def format_results(field: AuthenticationResults, *, width: int = 78) -> str:
    """The field's value (without ``Authentication-Results:``), folded with CRLF TAB.

    Each result goes on a line of its own once the line would pass ``width``.
    Values are written as tokens when they can be, else as quoted strings;
    property values that are addresses or domains are written as they are.
    """
    head = _value(field.authserv_id)
    if field.version is not None:
        head += f" {field.version}"
    if not field.results:
        return f"{head}; none"

    pieces = [_format_result(result) for result in field.results]
    lines = [head + ";"]
    for index, piece in enumerate(pieces):
        text = piece + (";" if index < len(pieces) - 1 else "")
        if len(lines[-1]) + 1 + len(text) > width:
            lines.append("\t" + text)
        else:
            lines[-1] += " " + text
    return "\r\n".join(lines)


def header_field(field: AuthenticationResults, *, name: str = "Authentication-Results") -> bytes:
    """The whole header field, ready to prepend to a message: ``NAME: value`` and CRLF."""
    return f"{name}: {format_results(field)}\r\n".encode()


@functools.lru_cache(maxsize=4096)
def _format_result(result: MethodResult) -> str:
    """One result as written (memoised: the SPF, ARC and DMARC entries of a sender repeat)."""
    text = result.method + (f"/{result.version}" if result.version else "") + "=" + result.result
    if result.comment:
        text += f" ({_comment(result.comment)})"
    if result.reason is not None:
        text += f" reason={_quoted(result.reason)}"
    for prop in result.properties:
        text += f" {prop.ptype}.{prop.name}={_pvalue(prop.value)}"
    return text


def _value(text: str) -> str:
    """A token when ``text`` is one (RFC 2045), else a quoted string."""
    if _TOKEN.fullmatch(text):
        return text
    return _quoted(text)


@functools.lru_cache(maxsize=1024)
def _pvalue(text: str) -> str:
    """A property value: an address or domain as is (RFC 8601 §2.2), else a value.

    Memoised (a pure function of the text): the same domains, addresses and
    client IPs are written into field after field.
    """
    if _BARE_PVALUE.fullmatch(text):
        return text
    return _quoted(text)


def _quoted(text: str) -> str:
    cleaned = _printable(text)
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(text: str) -> str:
    cleaned = _printable(text)
    return cleaned.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _printable(text: str) -> str:
    """``text`` with each character that is not printable replaced by a space."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else " " for c in text)


# --- Reading -----------------------------------------------------------------------


def parse_results(value: str | bytes) -> AuthenticationResults:
    """Parse the value of an Authentication-Results (or ARC-Authentication-Results) field.

    Comments, folding and spacing around ``=``, ``.`` and ``;`` are allowed
    where RFC 8601's grammar allows CFWS. Raises :class:`AuthResSyntaxError`.
    """
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    reader = _Reader(text.replace("\r\n", "").replace("\n", ""))

    reader.skip_cfws()
    authserv_id = reader.value()
    reader.skip_cfws()
    version = reader.digits()
    reader.skip_cfws()

    results: list[MethodResult] = []
    while reader.take(";"):
        reader.skip_cfws()
        if reader.at_end():
            break  # a trailing ";" is common and harmless
        if not results and reader.peek_word().lower() == "none":
            reader.word()
            reader.skip_cfws()
            if not reader.at_end():
                raise reader.error("text after 'none'")
            return AuthenticationResults(authserv_id, (), version)
        results.append(_resinfo(reader))
        reader.skip_cfws()
    if not reader.at_end():
        raise reader.error("expected ';'")
    if not results:
        raise reader.error("no result and no 'none'")
    return AuthenticationResults(authserv_id, tuple(results), version)


def _resinfo(reader: _Reader) -> MethodResult:
    method = reader.word()
    reader.skip_cfws()
    version = None
    if reader.take("/"):
        reader.skip_cfws()
        version = reader.digits()
        if version is None:
            raise reader.error("method version must be digits")
        reader.skip_cfws()
    if not reader.take("="):
        raise reader.error(f"expected '=' after method {method!r}")
    reader.skip_cfws()
    result = reader.word()
    reader.skip_cfws()

    reason = None
    properties: list[Property] = []
    while not reader.at_end() and reader.peek() != ";":
        name = reader.word()
        reader.skip_cfws()
        if name.lower() == "reason" and reader.peek() == "=":
            reader.take("=")
            reader.skip_cfws()
            reason = reader.value()
        else:
            if not reader.take("."):
                raise reader.error(f"expected '.' after property type {name!r}")
            reader.skip_cfws()
            prop = reader.word()
            reader.skip_cfws()
            if not reader.take("="):
                raise reader.error(f"expected '=' after {name}.{prop}")
            reader.skip_cfws()
            properties.append(Property(name, prop, reader.pvalue()))
        reader.skip_cfws()
    return MethodResult(method, result, tuple(properties), reason, version)


class _Reader:
    """A cursor over the field text with the RFC 5322 / RFC 2045 lexical pieces."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, what: str) -> AuthResSyntaxError:
        near = self.text[self.pos : self.pos + 20]
        return AuthResSyntaxError(f"{what} at offset {self.pos} (near {near!r})")

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self, char: str) -> bool:
        if self.peek() == char:
            self.pos += 1
            return True
        return False

    def skip_cfws(self) -> None:
        """Skip white space and (nested) comments."""
        while not self.at_end():
            char = self.text[self.pos]
            if char in " \t":
                self.pos += 1
            elif char == "(":
                self._comment()
            else:
                return

    def _comment(self) -> None:
        depth = 0
        while not self.at_end():
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\":
                self.pos += 1
            elif char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0:
                    return
        raise self.error("unterminated comment")

    def peek_word(self) -> str:
        start = self.pos
        word = self._run(lambda c: c.isalnum() or c in "-_")
        self.pos = start
        return word

    def word(self) -> str:
        """A keyword (RFC 8601 ldh-str; underscores tolerated)."""
        word = self._run(lambda c: c.isalnum() or c in "-_")
        if not word:
            raise self.error("expected a keyword")
        return word

    def digits(self) -> str | None:
        found = self._run(str.isdigit)
        return found or None

    def value(self) -> str:
        """A token or a quoted string (RFC 2045 ``value``)."""
        if self.peek() == '"':
            return self._quoted()
        token = self._run(lambda c: ord(c) >= 33 and c not in _TSPECIALS and c != "\x7f")
        if not token:
            raise self.error("expected a value")
        return token

    def pvalue(self) -> str:
        """A property value: a value, or ``[local-part] @ domain`` (RFC 8601 §2.2)."""
        if self.peek() == '"':
            quoted = self._quoted()
            if self.take("@"):
                return f"{quoted}@{self._run(_domain_char)}"
            return quoted
        found = self._run(lambda c: ord(c) >= 33 and c not in '();"' and c != "\x7f")
        if not found:
            raise self.error("expected a property value")
        return found

    def _quoted(self) -> str:
        self.pos += 1
        out = []
        while not self.at_end():
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\" and not self.at_end():
                out.append(self.text[self.pos])
                self.pos += 1
            elif char == '"':
                return "".join(out)
            else:
                out.append(char)
        raise self.error("unterminated quoted string")

    def _run(self, accept: Callable[[str], bool]) -> str:
        start = self.pos
        while not self.at_end() and accept(self.text[self.pos]):
            self.pos += 1
        return self.text[start : self.pos]


def _domain_char(char: str) -> bool:
    return char.isalnum() or char in "-._"


def remove_ours(fields: Iterable[tuple[str, bytes]], authserv_id: str) -> list[int]:
    """Indexes of Authentication-Results fields that claim ``authserv_id`` (to delete).

    ``fields`` are ``(name, value)`` pairs in message order. RFC 8601 §5: a
    receiver removes fields bearing its own authserv-id before adding its
    own, so that nobody can forge our verdict; authserv-ids compare without
    regard to case. Fields that do not parse are left alone.
    """
    wanted = authserv_id.lower()
    found = []
    for index, (name, value) in enumerate(fields):
        if name.lower() != "authentication-results":
            continue
        try:
            parsed = parse_results(value)
        except AuthResSyntaxError:
            continue
        if parsed.authserv_id.lower() == wanted:
            found.append(index)
    return found


def result(
    method: str,
    outcome: str,
    properties: Sequence[tuple[str, str, str | None]] = (),
    *,
    reason: str | None = None,
    comment: str | None = None,
) -> MethodResult:
    """A :class:`MethodResult`, dropping properties whose value is None.

    Raises :class:`ValueError` for a result word the method does not define
    (RFC 8601 §2.7), so a typo never reaches a header.
    """
    words = RESULT_WORDS.get(method.lower())
    if words is not None and outcome not in words:
        raise ValueError(f"{outcome!r} is not a {method} result ({', '.join(sorted(words))})")
    props = tuple(Property(t, n, v) for t, n, v in properties if v is not None)
    return MethodResult(method, outcome, props, reason, comment=comment)
