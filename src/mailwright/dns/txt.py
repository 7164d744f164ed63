"""TXT records as they are published: character-strings of at most 255 octets.

A TXT record is a sequence of character-strings, each at most 255 octets
(RFC 1035 §3.3.14); a longer record (a 2048-bit DKIM key, a long SPF
record) is published as several strings that readers join without a
separator (RFC 7208 §3.3, RFC 6376 §3.6.2.2). These helpers split a record
for publication and write the zone-file line an operator pastes, so that
every command that prints a record (``dkim keygen``, ``spf build``,
``dmarc build``) prints it the same way.
"""

from __future__ import annotations

#: The longest character-string of a TXT record (RFC 1035 §3.3.14).
MAX_STRING = 255


def split_txt(text: str, size: int = MAX_STRING) -> list[str]:
    """``text`` cut into strings of at most ``size`` octets (ASCII), in order.

    Raises ValueError for text that is not printable ASCII: a TXT record
    built by a command must not need escapes beyond the quote and backslash.
    """
    if not text.isascii() or not text.isprintable():
        raise ValueError("a TXT record made here must be printable ASCII")
    if not text:
        return [""]
    return [text[start : start + size] for start in range(0, len(text), size)]


def quote_string(piece: str) -> str:
    """One character-string in zone-file form: double quotes, ``"`` and ``\\`` escaped."""
    return '"' + piece.replace("\\", "\\\\").replace('"', '\\"') + '"'


def zone_line(name: str, text: str, ttl: int | None = None) -> str:
    """The zone-file line publishing ``text`` at ``name``.

    ``name`` is written absolute (with the final dot). A record of several
    strings is written in parentheses, one string per line, which every
    zone-file reader (BIND, NSD, Knot) and most DNS hosting forms accept.
    """
    owner = name if name.endswith(".") else name + "."
    head = f"{owner}\t{ttl}\tIN\tTXT\t" if ttl is not None else f"{owner}\tIN\tTXT\t"
    strings = [quote_string(piece) for piece in split_txt(text)]
    if len(strings) == 1:
        return head + strings[0]
    inner = "\n\t".join(strings)
    return f"{head}(\n\t{inner} )"
