"""Delivery receipts: what an SMSC says became of a message, as a delivery state.

A receipt is a ``deliver_sm`` with ``esm_class`` bit 0x04. SMPP 3.4 carries its
facts twice, and SMSCs fill one, the other or both:

- optional parameters (§5.3.2.12, §5.3.2.35): ``receipted_message_id`` (the
  id ``submit_sm_resp`` gave) and ``message_state`` (a number);
- the text of Appendix B, ``id:X sub:001 dlvrd:001 submit date:YYMMDDhhmm
  done date:YYMMDDhhmm stat:DELIVRD err:000 text:...``, which the appendix
  calls vendor-specific and which vendors vary in case, spacing and order.

The optional parameters win where both are present: they are specified, the text
is not. The ``err`` code only exists in the text. The seven-letter ``stat`` words
map to the channel's delivery states: DELIVRD is delivered, EXPIRED expired,
ACCEPTD and ENROUTE still queued, and UNDELIV, REJECTD, DELETED and UNKNOWN
failed (UNKNOWN means the SMSC lost track; nothing will follow). Long spellings
some SMSCs use (DELIVERED, UNDELIVERABLE, ...) are read too.

Pure: no I/O, no logging. Raises :class:`UnreadableReceipt` for a receipt with
no message id or a status word not listed here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from mailwright.notify.sms.errors import UnreadableReceipt

ReceiptState = Literal["delivered", "expired", "failed", "queued"]

RECEIPT = 0x04  # esm_class: the deliver_sm is a delivery receipt

# SMPP 3.4 optional parameter tags (§5.3.2).
TAG_RECEIPTED_MESSAGE_ID = 0x001E
TAG_MESSAGE_STATE = 0x0427

_STATES: dict[str, ReceiptState] = {
    "DELIVRD": "delivered",
    "EXPIRED": "expired",
    "ACCEPTD": "queued",
    "ENROUTE": "queued",
    "UNDELIV": "failed",
    "REJECTD": "failed",
    "DELETED": "failed",
    "UNKNOWN": "failed",
}

_ALIASES = {
    "DELIVERED": "DELIVRD",
    "ACCEPTED": "ACCEPTD",
    "UNDELIVERABLE": "UNDELIV",
    "REJECTED": "REJECTD",
    "FAILED": "UNDELIV",
}

# message_state values (§5.2.28) as the stat words of the text format.
_MESSAGE_STATES = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}

_FIELD = re.compile(r"\b(id|sub|dlvrd|submit date|done date|stat|err):\s*(\S*)", re.IGNORECASE)
_TEXT = re.compile(r"\btext:", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Receipt:
    """One delivery receipt: which message, its state, the SMSC's stat word and error code.

    ``error`` is the ``err`` field when it names an error, None when it is
    absent or all zeros.
    """

    message_id: str
    state: ReceiptState
    stat: str
    error: str | None = None


def parse_text(text: str) -> dict[str, str]:
    """The fields of an Appendix B receipt text, keys lower-cased (``"submit date"``).

    ``text`` runs to the end of the message, spaces and all; fields not present
    are left out. Never fails: an unusual text gives fewer fields.
    """
    found = _TEXT.search(text)
    head, tail = (text[: found.start()], text[found.end() :]) if found else (text, None)

    fields = {match[1].lower(): match[2] for match in _FIELD.finditer(head)}
    if tail is not None:
        fields["text"] = tail
    return fields


def from_deliver_sm(short_message: bytes, tlvs: Mapping[int, bytes]) -> Receipt:
    """Read a receipt from a ``deliver_sm``'s ``short_message`` and optional parameters.

    ``tlvs`` maps tags to raw values. Raises :class:`UnreadableReceipt` when no
    message id is found or the status is not one of SMPP 3.4's.
    """
    fields = parse_text(short_message.decode("latin-1"))

    message_id = _c_string(tlvs.get(TAG_RECEIPTED_MESSAGE_ID)) or fields.get("id", "")
    if not message_id:
        raise UnreadableReceipt(f"receipt without a message id: {short_message[:80]!r}")

    stat = _stat(tlvs.get(TAG_MESSAGE_STATE), fields.get("stat", ""))
    if stat not in _STATES:
        raise UnreadableReceipt(f"receipt for {message_id} with unknown status {stat!r}")

    err = fields.get("err")
    error = err if err and err.strip("0") else None
    return Receipt(message_id, _STATES[stat], stat, error)


def _stat(message_state: bytes | None, word: str) -> str:
    """The stat word: from ``message_state`` when it holds a known value, else from the text."""
    if message_state is not None and len(message_state) == 1:
        named = _MESSAGE_STATES.get(message_state[0])
        if named:
            return named

    word = word.upper()
    return _ALIASES.get(word, word)


def _c_string(value: bytes | None) -> str:
    """A C-octet string option's text, NUL terminator and surrounding spaces removed."""
    if value is None:
        return ""
    return value.split(b"\x00", 1)[0].decode("latin-1").strip()
