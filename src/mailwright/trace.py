"""Trace headers: the Received line we prepend, and mail-loop detection.

RFC 5321 §4.4 asks every SMTP server that accepts a message to add a
``Received:`` line at the top; §6.3 suggests refusing a message that already
carries too many of them, because it is most likely looping between two
misconfigured servers. Both are pure functions over bytes.
"""

from __future__ import annotations

import email.utils
import functools
import re
import time

#: RFC 5321 §6.3 says 100 hops is a sensible limit; Postfix uses 50.
MAX_RECEIVED = 100

_RECEIVED = re.compile(rb"^Received:", re.IGNORECASE | re.MULTILINE)


def received_header(
    *,
    helo: str,
    client_ip: str,
    hostname: str,
    protocol: str,
    queue_id: str | None,
    recipient: str | None,
    when: float | None = None,
    tls: str | None = None,
) -> bytes:
    """Build our ``Received:`` header, folded, ending in CRLF.

    ``protocol`` is the RFC 3848 ``with`` keyword (``ESMTP``, ``ESMTPS``,
    ``ESMTPSA``, ``SMTP``). The recipient is named only when there is exactly
    one, as RFC 5321 §7.6 advises against leaking the rest of the envelope.
    """
    ip = f"IPv6:{client_ip}" if ":" in client_ip else client_ip
    helo_text = _printable(helo) or "unknown"
    parts = [f"Received: from {helo_text} ([{ip}])", f"\tby {hostname} (mailwright)"]

    clause = f"with {protocol}"
    if tls:
        clause += f" ({tls})"
    if queue_id:
        clause += f" id {queue_id}"
    parts.append(f"\t{clause}")
    if recipient:
        parts.append(f"\tfor <{_printable(recipient)}>")

    stamp = _date(int(time.time() if when is None else when))
    parts[-1] += ";"
    parts.append(f"\t{stamp}")
    return ("\r\n".join(parts) + "\r\n").encode("utf-8", "surrogateescape")


@functools.lru_cache(maxsize=4)
def _date(second: int) -> str:
    """RFC 5322 date-time of a whole second; cached: every message of a second shares it."""
    return email.utils.formatdate(second, localtime=False)


def count_received(content: bytes) -> int:
    """How many ``Received:`` lines the header section of ``content`` holds."""
    end = content.find(b"\r\n\r\n")
    header = content if end < 0 else content[: end + 2]
    return len(_RECEIVED.findall(header))


def _printable(text: str) -> str:
    """Keep a client-supplied word from breaking the header (no controls, no spaces)."""
    if text.isascii() and text.isprintable() and " " not in text:
        return text[:255]  # the usual case, without a look at each character
    return "".join(ch for ch in text if ch.isprintable() and not ch.isspace())[:255]
