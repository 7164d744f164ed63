"""What the SMTP listener asks the application: the :class:`SessionHandler` hooks.

The listener runs the protocol; the handler decides. Every hook gets the
:class:`ConnectionInfo` of its connection and, where there is one, the event
from :mod:`mailwright.smtp.server_events`. Hooks return a reply to send, or
``None`` for the session's default positive reply. A hook that raises is
logged by the listener and answered with 451 4.3.0 (454 4.7.0 for AUTH); the
connection goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mailwright.smtp.replies import Reply
from mailwright.smtp.server_events import AuthAttempt, Hello, MailFrom, MessageReceived, RcptTo


@dataclass(slots=True)
class ConnectionInfo:
    """Who is connected to which listener, updated as the session goes on.

    ``helo_name``, ``tls_active`` and ``auth_user`` change after EHLO,
    STARTTLS (which resets the first and the last, RFC 3207 §4.2) and AUTH.
    """

    session_id: str
    peer_ip: str
    peer_port: int
    local_ip: str
    local_port: int
    listener_name: str
    listener_role: str
    tls_active: bool = False
    helo_name: str | None = None
    auth_user: str | None = None
    messages: int = 0  # messages accepted on this connection so far


class SessionHandler(Protocol):
    """The application's side of an SMTP connection."""

    async def on_connect(self, info: ConnectionInfo) -> Reply | None:
        """A client connected: ``None`` greets with 220, a 554 reply refuses politely."""

    async def on_hello(self, info: ConnectionInfo, event: Hello) -> Reply | None:
        """EHLO or HELO; a negative reply refuses it."""

    async def on_auth(self, info: ConnectionInfo, event: AuthAttempt) -> bool:
        """True when the credentials are valid; never log ``event.password``."""

    async def on_mail(self, info: ConnectionInfo, event: MailFrom) -> Reply | None:
        """MAIL FROM; a negative reply leaves no transaction."""

    async def on_rcpt(self, info: ConnectionInfo, event: RcptTo) -> Reply | None:
        """RCPT TO; a negative reply does not add the recipient."""

    async def on_message(self, info: ConnectionInfo, event: MessageReceived) -> Reply:
        """A complete message: store it durably, then answer 250 (or refuse it)."""

    async def on_disconnect(self, info: ConnectionInfo) -> None:
        """The connection is closed, for whatever reason."""
