"""The SMS channel's errors, split by what the caller should do about them.

:class:`SmsUnavailable` is temporary (no bind, throttled past the retry budget,
no answer): try again later or fall back to email. :class:`SmsRejected` is
permanent for this message (the SMSC answered with an error status). Both carry
the message ids of the segments the SMSC had already accepted, so a caller can
record a partly sent long message. :class:`SmsInvalid` and its subclasses are
input that can never be sent or read, and are also :class:`ValueError`.
"""

from __future__ import annotations

from mailwright.errors import MailwrightError


class SmsError(MailwrightError):
    """Root of the SMS channel's errors."""

    def __init__(self, message: str, *, message_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message_ids = message_ids


class SmsUnavailable(SmsError):
    """The SMSC cannot take the message now: not bound, throttled, or silent. Temporary."""


class SmsRejected(SmsError):
    """The SMSC refused the message with a non-zero ``command_status``. Permanent."""

    def __init__(self, status: int, *, message_ids: tuple[str, ...] = ()) -> None:
        super().__init__(
            f"SMSC rejected submit_sm with command_status 0x{status:08X}",
            message_ids=message_ids,
        )
        self.status = status


class SmsInvalid(SmsError, ValueError):
    """Input that can never be sent or read as an SMS; the message names the value."""


class InvalidSmscUrl(SmsInvalid):
    """An ``[sms] smsc`` URL that is not ``smpp://USER:PASSWORD@HOST:PORT``."""


class InvalidAddress(SmsInvalid):
    """A destination or sender address SMPP cannot carry."""


class MessageTooLong(SmsInvalid):
    """A text that needs more than 255 segments, the most a concatenation header counts."""


class UnsupportedCoding(SmsInvalid):
    """An inbound message in a ``data_coding`` this channel does not read."""


class UnreadableReceipt(SmsInvalid):
    """A delivery receipt without a message id or with an unknown status."""
