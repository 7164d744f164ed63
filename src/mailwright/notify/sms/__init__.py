"""The SMS channel: SMPP 3.4 to an SMSC, text encoding, receipts and keywords.

- :mod:`.encoding` turns text into GSM-7 or UCS-2 segments and inbound payloads
  back into text;
- :mod:`.receipts` reads delivery receipts into delivery states;
- :mod:`.keywords` recognises STOP, START and HELP and holds their replies;
- :mod:`.gateway` keeps a transceiver bind up through the ``smpp34`` library,
  sends with a window and throttling retries, and dispatches inbound messages.

The first three are pure; only the gateway does I/O.
"""

from __future__ import annotations

from mailwright.notify.sms.encoding import Encoded, decode, split
from mailwright.notify.sms.errors import (
    InvalidAddress,
    InvalidSmscUrl,
    MessageTooLong,
    SmsError,
    SmsInvalid,
    SmsRejected,
    SmsUnavailable,
    UnreadableReceipt,
    UnsupportedCoding,
)
from mailwright.notify.sms.gateway import InboundSms, SmppGateway, SmsStats, parse_url
from mailwright.notify.sms.keywords import Keyword, KeywordReplies, classify
from mailwright.notify.sms.receipts import Receipt, from_deliver_sm

__all__ = [
    "Encoded",
    "InboundSms",
    "InvalidAddress",
    "InvalidSmscUrl",
    "Keyword",
    "KeywordReplies",
    "MessageTooLong",
    "Receipt",
    "SmppGateway",
    "SmsError",
    "SmsInvalid",
    "SmsRejected",
    "SmsStats",
    "SmsUnavailable",
    "UnreadableReceipt",
    "UnsupportedCoding",
    "classify",
    "decode",
    "from_deliver_sm",
    "parse_url",
    "split",
]
