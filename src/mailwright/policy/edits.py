"""Applying a :class:`~.context.Message`'s header edits to its raw octets.

The header is split into fields as received (folded lines stay with their
field, see :func:`~.context.split_header`); fields a ``remove`` edit names
are dropped, the added ones are prepended in the order they were asked for,
and everything else is left untouched, octet for octet: the fields kept,
their order and folding, and the whole body, so DKIM signatures over them
stay valid.
"""

from __future__ import annotations

from collections.abc import Sequence

from mailwright.policy.context import HeaderEdit, field_of, format_field, split_header


def apply_edits(content: bytes, edits: Sequence[HeaderEdit], prepend: bytes = b"") -> bytes:
    """``content`` with ``edits`` applied and ``prepend`` (whole CRLF fields) on top."""
    added = b"".join(format_field(edit.name, edit.value) for edit in edits if edit.action == "add")
    removals = [edit for edit in edits if edit.action == "remove"]
    if not removals:
        return prepend + added + content

    fields, rest = split_header(content)
    kept = [raw for raw in fields if not _removed(raw, removals)]
    return prepend + added + b"".join(kept) + rest


def _removed(raw: bytes, removals: Sequence[HeaderEdit]) -> bool:
    name, value = field_of(raw)
    lowered = name.lower()
    for edit in removals:
        if edit.name.lower() != lowered:
            continue
        if edit.matches is None or edit.matches(value):
            return True
    return False
