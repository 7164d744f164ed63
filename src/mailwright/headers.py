"""What the MTA reads from a message's header section: its Message-ID.

The core never parses whole messages (that is the authentication library's
work, later); it only needs the Message-ID (RFC 5322 §3.6.4) so the event
log can tie a queue id to the message operators and senders know. The
header section is what comes before the first empty line; field names are
case-insensitive, and a field may be folded over several lines.
"""

from __future__ import annotations

import re

#: Header bytes searched at most: a Message-ID further down is not looked for.
HEADER_LIMIT = 64 * 1024

_MESSAGE_ID = re.compile(rb"(?:^|\r\n)message-id[ \t]*:((?:[^\r]|\r\n[ \t]|\r(?!\n))*)", re.I)


def message_id(content: bytes) -> str | None:
    """The Message-ID field's value, unfolded and trimmed, or None when there is none.

    Only the header section is searched (up to :data:`HEADER_LIMIT` octets);
    the value is decoded as UTF-8 with replacement and capped at 998
    characters, the longest line RFC 5322 allows.
    """
    head = content[:HEADER_LIMIT]
    end = head.find(b"\r\n\r\n")
    if end >= 0:
        head = head[: end + 2]
    found = _MESSAGE_ID.search(head)
    if found is None:
        return None
    value = found.group(1).replace(b"\r\n", b"").strip(b" \t")
    return value.decode("utf-8", "replace")[:998] or None
