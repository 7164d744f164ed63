"""Find the line of a key in TOML source text.

``tomllib`` reports a line only for syntax errors; the values it returns carry
no positions. To name the line of a semantic error (a bad duration, an unknown
key) we scan the source once more with a deliberately small scanner that
understands only what decides where a key sits: table headers ``[a.b]``,
arrays of tables ``[[listener]]`` (counted, so the second one is
``listener[1]``), dotted and quoted keys, and values that span lines
(multi-line strings and arrays). It never raises: on text it does not
understand it skips to the next line, so a location is best effort and the
loader falls back to the nearest enclosing table.

A key path is a tuple of table and key names and array indices, for example
``("listener", 1, "address")``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

KeyPath = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_BARE_KEY_FULL = re.compile(r"^[A-Za-z0-9_-]+$")


def format_key(path: KeyPath) -> str:
    """Render a key path as people write it: ``listener[1].address``, ``routes."a.test"``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        name = part if _BARE_KEY_FULL.match(part) else json.dumps(part)
        text = f"{text}.{name}" if text else name
    return text


def line_of(locations: Mapping[KeyPath, int], path: KeyPath) -> int | None:
    """The line of ``path``, else of its nearest enclosing key or table, else None."""
    for end in range(len(path), 0, -1):
        line = locations.get(path[:end])
        if line is not None:
            return line
    return None


def key_at_line(source: str, line: int) -> KeyPath | None:
    """The key or table written last at or before ``line`` (for syntax errors), or None.

    Read from the statements in file order, so a table declared twice is
    found at its second header, where tomllib reports the fault.
    """
    best: KeyPath | None = None
    for where, path in _Scanner(source).statements():
        if where > line:
            break
        best = path
    return best


def locate_keys(source: str) -> dict[KeyPath, int]:
    """Map every table header and key in ``source`` to its 1-based line number."""
    return _Scanner(source).scan()


class _Scanner:
    """One pass over the text; ``pos`` and ``line`` always advance together."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.table: KeyPath = ()
        self.array_counts: dict[KeyPath, int] = {}
        self.locations: dict[KeyPath, int] = {}
        self.written: list[tuple[int, KeyPath]] = []  # every header and key, in order

    def statements(self) -> list[tuple[int, KeyPath]]:
        """Every table header and key with its line, in file order (repeats included)."""
        self.scan()
        return self.written

    def scan(self) -> dict[KeyPath, int]:
        while self._skip_blank():
            start = self.pos
            if self.text[self.pos] == "[":
                self._header()
            else:
                self._key_value()
            if self.pos == start:  # nothing understood here: skip the line
                self._skip_to_eol()
        return self.locations

    # -- statements ---------------------------------------------------------

    def _header(self) -> None:
        is_array = self.text.startswith("[[", self.pos)
        self.pos += 2 if is_array else 1
        parts = self._key()
        if not parts:
            return

        resolved: KeyPath = ()
        for index, part in enumerate(parts):
            resolved += (part,)
            last = index == len(parts) - 1
            if is_array and last:
                self.locations.setdefault(resolved, self.line)
                count = self.array_counts.get(resolved, 0)
                self.array_counts[resolved] = count + 1
                resolved += (count,)
            elif resolved in self.array_counts:
                resolved += (self.array_counts[resolved] - 1,)

        self.table = resolved
        self.locations.setdefault(resolved, self.line)
        self.written.append((self.line, resolved))
        self._skip_to_eol()

    def _key_value(self) -> None:
        line = self.line
        parts = self._key()
        if not parts:
            return
        self._skip_spaces()
        if self.pos >= len(self.text) or self.text[self.pos] != "=":
            self._skip_to_eol()
            return
        self.pos += 1

        path = self.table
        for part in parts:
            path += (part,)
            self.locations.setdefault(path, line)
        self.written.append((line, path))
        self._skip_value()

    # -- pieces ---------------------------------------------------------------

    def _key(self) -> list[str]:
        """A dotted key; an empty list when none starts here."""
        parts: list[str] = []
        while True:
            self._skip_spaces()
            part = self._simple_key()
            if part is None:
                return parts
            parts.append(part)
            self._skip_spaces()
            if self.pos < len(self.text) and self.text[self.pos] == ".":
                self.pos += 1
                continue
            return parts

    def _simple_key(self) -> str | None:
        if self.pos >= len(self.text):
            return None
        char = self.text[self.pos]
        if char in "\"'":
            start = self.pos
            self._skip_string()
            raw = self.text[start : self.pos]
            if len(raw) < 2 or raw[-1] != char:
                return None
            if char == "'":
                return raw[1:-1]
            try:
                decoded = json.loads(raw)
            except ValueError:
                return raw[1:-1]
            return decoded if isinstance(decoded, str) else raw[1:-1]
        match = _BARE_KEY.match(self.text, self.pos)
        if match is None:
            return None
        self.pos = match.end()
        return match[0]

    def _skip_value(self) -> None:
        """Skip a value, following arrays and multi-line strings across lines."""
        depth = 0
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in "\"'":
                self._skip_string()
                continue
            if char == "#":
                self._skip_comment()
                continue
            if char == "\n":
                if depth <= 0:
                    return
                self.line += 1
            elif char in "[{":
                depth += 1
            elif char in "]}":
                depth -= 1
            self.pos += 1

    def _skip_string(self) -> None:
        """Skip one string of any of the four TOML kinds, counting its newlines."""
        text = self.text
        quote = text[self.pos]
        if text.startswith(quote * 3, self.pos):
            end = self.pos + 3
            while True:
                found = text.find(quote * 3, end)
                if found < 0:
                    found = len(text)
                    break
                if quote == '"' and _escaped(text, found):
                    end = found + 1
                    continue
                break
            stop = min(len(text), found + 3)
            while text.startswith(quote, stop) and stop - found < 5:
                stop += 1  # up to two quotes may end the content
            self.line += text.count("\n", self.pos, stop)
            self.pos = stop
            return

        end = self.pos + 1
        while end < len(text) and text[end] != "\n":
            if text[end] == quote and (quote == "'" or not _escaped(text, end)):
                end += 1
                break
            end += 1
        self.pos = end

    def _skip_blank(self) -> bool:
        """Skip whitespace, newlines and comments; False at the end of the text."""
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char == "\n":
                self.line += 1
            elif char == "#":
                self._skip_comment()
                continue
            elif char not in " \t\r":
                return True
            self.pos += 1
        return False

    def _skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def _skip_comment(self) -> None:
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end

    def _skip_to_eol(self) -> None:
        """Skip the rest of the line (the newline itself is left for the caller)."""
        self._skip_comment()


def _escaped(text: str, index: int) -> bool:
    """True when the character at ``index`` follows an odd number of backslashes."""
    count = 0
    while index - count - 1 >= 0 and text[index - count - 1] == "\\":
        count += 1
    return count % 2 == 1
