"""The events a :class:`~mailwright.smtp.client.ClientSession` hands to its adapter.

:class:`Greeting`, :class:`Ehlo`, :class:`TlsReady` or :class:`TlsRefused`,
:class:`ResetDone` and :class:`TransactionDone` answer the command that was
issued; :class:`Closed` and :class:`ProtocolError` end the session. None of
them needs an answer: the adapter issues the next command when it likes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal, TypeAlias

from mailwright.envelope import Recipient
from mailwright.smtp.replies import Reply


class NeedData(enum.Enum):
    """The type of :data:`NEED_DATA`."""

    NEED_DATA = "NEED_DATA"


NEED_DATA: Literal[NeedData.NEED_DATA] = NeedData.NEED_DATA
"""Returned by :meth:`ClientSession.next_event` when more bytes must be read."""


class Stage(enum.Enum):
    """Which reply the session waits for; the adapter maps it to a timeout."""

    __hash__ = object.__hash__  # identity, in C: see mailwright.smtp.states.State

    GREETING = "greeting"
    HELLO = "hello"
    STARTTLS = "starttls"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    DATA_END = "data_end"
    BDAT = "bdat"  # the reply to BDAT LAST, an end-of-data reply (RFC 3030 §2)
    RSET = "rset"
    QUIT = "quit"


# --- Events ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Greeting:
    """The server's opening reply (220, or 421/554 for a refusal, RFC 5321 §3.1)."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class Ehlo:
    """The reply to EHLO, LHLO or the HELO fallback, with the extensions offered.

    ``extensions`` is empty after HELO or a refusal; keywords are upper case.
    """

    reply: Reply
    extensions: dict[str, str]


@dataclass(frozen=True, slots=True)
class TlsReady:
    """The server agreed to STARTTLS: upgrade the stream, then call ``tls_started``."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class TlsRefused:
    """The server refused STARTTLS; the session goes on in plain text."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class ResetDone:
    """The reply to an explicit :meth:`ClientSession.rset`."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class TransactionDone:
    """The outcome of one :meth:`ClientSession.send_message`.

    ``rcpt_replies`` holds the reply to each RCPT (the MAIL refusal or a local
    refusal for a recipient never sent); ``final_replies`` the reply that
    settles each recipient, in the order of ``recipients``. ``data_reply`` is
    the DATA refusal or the end-of-data reply, to the dot or to BDAT LAST
    (for LMTP the last recipient's), None when DATA or BDAT was never answered.
    """

    recipients: tuple[Recipient, ...]
    mail_reply: Reply
    rcpt_replies: list[Reply]
    data_reply: Reply | None
    final_replies: list[Reply]

    @property
    def outcomes(self) -> list[tuple[Recipient, Reply]]:
        """Each recipient with its final reply."""
        return list(zip(self.recipients, self.final_replies, strict=True))


@dataclass(frozen=True, slots=True)
class Closed:
    """The session is over: QUIT answered (``reply``), a 421, or the peer hung up (None)."""

    reply: Reply | None


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """The server broke the protocol; the connection must be dropped (no QUIT)."""

    detail: str


Event: TypeAlias = (
    Greeting | Ehlo | TlsReady | TlsRefused | ResetDone | TransactionDone | Closed | ProtocolError
)
