"""The events a :class:`~mailwright.smtp.server.ServerSession` hands to its adapter.

Decision events (:class:`Hello`, :class:`AuthAttempt`, :class:`StartTLS`,
:class:`MailFrom`, :class:`RcptTo`, :class:`MessageReceived`) wait for
``session.respond(event, reply)``; ``None`` there means the default positive
reply. :class:`Quit`, :class:`Closed` and :class:`ProtocolError` need no
answer: the session has already queued whatever it had to say.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from mailwright.envelope import Envelope
from mailwright.smtp.replies import Reply


class NeedData(enum.Enum):
    """The sentinel type of :data:`NEED_DATA`."""

    NEED_DATA = "NEED_DATA"


NEED_DATA: Literal[NeedData.NEED_DATA] = NeedData.NEED_DATA
"""Returned by ``next_event`` when the buffered bytes hold no further event."""


@dataclass(frozen=True, slots=True)
class Hello:
    """EHLO or HELO (RFC 5321 §4.1.1.1); ``name`` is the client's argument."""

    kind: Literal["HELO", "EHLO"]
    name: str


@dataclass(frozen=True, slots=True)
class AuthAttempt:
    """Credentials from AUTH PLAIN or LOGIN (RFC 4954, RFC 4616); answer AUTH_OK or a failure."""

    mechanism: str
    authzid: str
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class StartTLS:
    """STARTTLS (RFC 3207): answer READY_TLS, upgrade, call ``tls_started()``; or refuse."""


@dataclass(frozen=True, slots=True)
class MailFrom:
    """MAIL FROM (RFC 5321 §4.1.1.2); ``address`` is ``""`` for the null reverse-path.

    ``envid`` is the RFC 3461 ENVID as received (xtext), ``size`` the SIZE
    declaration (RFC 1870) or ``None``.
    """

    address: str
    params: dict[str, str | None]
    smtputf8: bool = False
    body: str = "7BIT"
    envid: str | None = None
    ret: str | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class RcptTo:
    """RCPT TO (RFC 5321 §4.1.1.3) with its DSN ``notify`` and ``orcpt`` (RFC 3461 §4)."""

    address: str
    notify: tuple[str, ...] = ()
    orcpt: str | None = None


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A complete message: ``content`` is CRLF lines, unstuffed; store it, then answer."""

    content: bytes = field(repr=False)
    envelope: Envelope


@dataclass(frozen=True, slots=True)
class Quit:
    """The client said QUIT; 221 is queued. Flush and close."""


@dataclass(frozen=True, slots=True)
class Closed:
    """The session is over (QUIT, EOF, too many errors, or ``close()``). Flush and close."""


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """The session answered a client mistake with ``reply`` on its own (for logs)."""

    reply: Reply
    detail: str


Event: TypeAlias = (
    Hello | AuthAttempt | StartTLS | MailFrom | RcptTo | MessageReceived | Quit | Closed
    | ProtocolError
)  # fmt: skip
DecisionEvent: TypeAlias = Hello | AuthAttempt | StartTLS | MailFrom | RcptTo | MessageReceived
DECISION_EVENTS = (Hello, AuthAttempt, StartTLS, MailFrom, RcptTo, MessageReceived)
