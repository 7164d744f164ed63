"""Reading the message a command works on: a file, or ``-`` for standard input."""

from __future__ import annotations

import sys
from pathlib import Path

from mailwright.errors import MailwrightError

#: The largest message a command reads (the server's default limit is smaller).
MAX_MESSAGE = 64 * 1024 * 1024


class InputError(MailwrightError):
    """The message file cannot be read; the text names it and says why."""


def read_message(name: str) -> bytes:
    """The octets of the message file ``name`` (``-``: stdin), unchanged.

    Raises :class:`InputError` for a file that cannot be read, is empty or
    is larger than :data:`MAX_MESSAGE`.
    """
    try:
        if name == "-":
            content = sys.stdin.buffer.read(MAX_MESSAGE + 1)
        else:
            with Path(name).open("rb") as stream:
                content = stream.read(MAX_MESSAGE + 1)
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror}") from exc

    shown = "standard input" if name == "-" else name
    if not content:
        raise InputError(f"{shown} is empty")
    if len(content) > MAX_MESSAGE:
        raise InputError(f"{shown} is larger than {MAX_MESSAGE >> 20} MiB")
    return content
