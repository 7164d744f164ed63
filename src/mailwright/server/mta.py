"""The MTA's answers to SMTP sessions: who may relay, and storing before the 250.

:class:`MtaHandler` implements the listener's
:class:`~mailwright.server.handler.SessionHandler` for both roles:

* *inbound* (the MX) accepts recipients in the configured local and relay
  domains only, unless the client authenticated; anything else gets
  550 5.7.1. It is never an open relay.
* *submission* requires AUTH before MAIL (the session engine answers 530
  5.7.0) and lets authenticated users send anywhere (RFC 6409).

A message is answered 250 only after :meth:`Spool.store` returned, that is,
after its group commit reached stable storage. A full disk answers 452 4.3.1
at MAIL (from SIZE=) or at the end of data; nothing is half-stored.

This is also the seam where later work plugs in: policy hooks run around
these decisions, and the HTTP API injects through the same :meth:`inject`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from mailwright.envelope import Envelope
from mailwright.errors import SpoolError, SpoolFullError
from mailwright.events import EventLog
from mailwright.headers import message_id
from mailwright.routes import normalize_domain
from mailwright.server.handler import ConnectionInfo
from mailwright.server.signing import OutboundSigning
from mailwright.smtp import replies
from mailwright.smtp.replies import Reply
from mailwright.smtp.server_events import AuthAttempt, Hello, MailFrom, MessageReceived, RcptTo
from mailwright.spool import Claimed, Spool
from mailwright.trace import MAX_RECEIVED, count_received, received_header
from mailwright.users import UserStore

logger = logging.getLogger("mailwright.smtpd")

TOO_MANY_HOPS = Reply(554, "5.4.6", "Too many hops, the message is looping")


class HandOver(Protocol):
    """A delivery agent in this process that takes stored messages from memory.

    :class:`~mailwright.delivery.agent.DeliveryAgent` is one. Reception
    reserves room before storing, then hands the stored message over (or
    cancels the reservation when the store failed).
    """

    def reserve(self, recipients: int, size: int) -> bool:
        """Make room for a message; False when there is none (store it unclaimed)."""

    def cancel(self, recipients: int, size: int) -> None:
        """Give back a reservation whose message was not stored."""

    def hand_over(self, claimed: Claimed, content: bytes) -> None:
        """Deliver a message stored claimed by this process's spool."""


class MtaHandler:
    """Relay rules, authentication and durable acceptance for one listener."""

    def __init__(
        self,
        *,
        role: str,
        hostname: str,
        spool: Spool,
        events: EventLog,
        users: UserStore,
        accepted_domains: frozenset[str],
        delivery: HandOver | None = None,
        signing: OutboundSigning | None = None,
    ) -> None:
        self.role = role
        self.hostname = hostname
        self.spool = spool
        self.events = events
        self.users = users
        self.accepted_domains = accepted_domains
        self.delivery = delivery
        self.signing = signing

    async def on_connect(self, info: ConnectionInfo) -> Reply | None:
        """Every client may connect; limits are the listener's."""
        return None

    async def on_hello(self, info: ConnectionInfo, event: Hello) -> Reply | None:
        """Any HELO name is accepted (authentication checks it later)."""
        return None

    async def on_auth(self, info: ConnectionInfo, event: AuthAttempt) -> bool:
        """Check the credentials in a worker thread (scrypt is deliberately slow)."""
        ok = await asyncio.to_thread(self.users.verify, event.username, event.password)
        logger.info("smtpd.auth session=%s user=%s ok=%s", info.session_id, event.username, ok)
        return ok

    async def on_mail(self, info: ConnectionInfo, event: MailFrom) -> Reply | None:
        """Refuse early when a declared SIZE would not fit on disk (RFC 1870)."""
        if not self.spool.has_room(event.size or 0):
            return replies.SPOOL_FULL
        return None

    async def on_rcpt(self, info: ConnectionInfo, event: RcptTo) -> Reply | None:
        """Authenticated clients relay anywhere; others only to our domains.

        The bare ``postmaster`` is always accepted (RFC 5321 §4.5.1: every
        SMTP server MUST); it is delivered as ``postmaster@`` our host name.
        """
        if info.auth_user is not None or is_bare_postmaster(event.address):
            return None
        domain = event.address.rpartition("@")[2]
        if not domain or _normalize(domain) not in self.accepted_domains:
            logger.info(
                "smtpd.relay_denied session=%s ip=%s recipient=%s",
                info.session_id,
                info.peer_ip,
                event.address,
            )
            return replies.RELAY_DENIED
        return None

    async def on_message(self, info: ConnectionInfo, event: MessageReceived) -> Reply:
        """Add our trace header, store durably, then answer 250 with the queue id."""
        if count_received(event.content) >= MAX_RECEIVED:
            return TOO_MANY_HOPS

        envelope = event.envelope
        for recipient in envelope.recipients:
            if is_bare_postmaster(recipient.address):
                recipient.address = f"postmaster@{self.hostname}"
        envelope.client_ip = info.peer_ip
        envelope.client_name = info.helo_name or ""
        envelope.auth_user = info.auth_user
        envelope.listener = self.role
        envelope.received_at = time.time()

        single = envelope.recipients[0].address if len(envelope.recipients) == 1 else None
        trace = received_header(
            helo=info.helo_name or "",
            client_ip=info.peer_ip,
            hostname=self.hostname,
            protocol=_protocol(info, envelope),
            queue_id=None,
            recipient=single,
            when=envelope.received_at,
        )
        return await self.inject(envelope, trace + event.content, session=info.session_id)

    async def inject(self, envelope: Envelope, content: bytes, *, session: str = "") -> Reply:
        """Store a message for delivery and say so; the entry point for every source.

        Mail sent on someone's behalf is DKIM-signed first (see
        :mod:`mailwright.server.signing`). With a delivery agent in this
        process that has room, the message is stored with its recipients
        claimed and handed over from memory: it leaves without being read
        back from disk or waiting for a claim.
        """
        if envelope.message_id is None:
            envelope.message_id = message_id(content)
        if self.signing is not None and self.signing.enabled:
            content = self.signing.signatures(envelope, content) + content
        try:
            queue_id = await self._store(envelope, content)
        except SpoolFullError:
            logger.warning("smtpd.spool_full session=%s size=%d", session, len(content))
            return replies.SPOOL_FULL
        except SpoolError:
            logger.exception("smtpd.spool_error session=%s", session)
            return replies.LOCAL_ERROR

        self.events.emit(
            "received",
            queue_id=queue_id,
            message_id=envelope.message_id,
            sender=envelope.sender,
            recipients=[r.address for r in envelope.recipients],
            size=len(content),
            client_ip=envelope.client_ip or None,
            auth_user=envelope.auth_user,
            listener=envelope.listener or None,
            session=session or None,
            metadata=envelope.metadata or None,
        )
        return Reply(250, "2.0.0", f"Ok: queued as {queue_id}")

    async def _store(self, envelope: Envelope, content: bytes) -> str:
        """Store, handing the message over when the local agent has room; return its id."""
        delivery = self.delivery
        count, size = len(envelope.recipients), len(content)
        if delivery is None or not delivery.reserve(count, size):
            return await self.spool.store(envelope, content)

        future = self.spool.submit_claimed(envelope, content)
        settle = _HandOverWhenStored(delivery, count, size, content)
        future.add_done_callback(settle)
        # Shielded: if this task is cancelled, the store still completes and the
        # callback still hands the message over, so its claim is never orphaned.
        claimed = await asyncio.shield(future)
        return claimed.queue_id

    async def on_disconnect(self, info: ConnectionInfo) -> None:
        """Nothing to clean up per connection."""


def is_bare_postmaster(address: str) -> bool:
    """``postmaster`` without a domain, in any case (RFC 5321 §4.5.1)."""
    return address.lower() == "postmaster"


class _HandOverWhenStored:
    """Future callback: hand a stored claimed message over, or cancel its reservation."""

    __slots__ = ("content", "count", "delivery", "size")

    def __init__(self, delivery: HandOver, count: int, size: int, content: bytes) -> None:
        self.delivery = delivery
        self.count = count
        self.size = size
        self.content = content

    def __call__(self, future: asyncio.Future[Claimed]) -> None:
        if future.cancelled() or future.exception() is not None:
            self.delivery.cancel(self.count, self.size)
            return
        self.delivery.hand_over(future.result(), self.content)


def _normalize(domain: str) -> str:
    try:
        return normalize_domain(domain)
    except ValueError:
        return domain.lower()


def _protocol(info: ConnectionInfo, envelope: Envelope) -> str:
    """The RFC 3848 ``with`` keyword for our Received header."""
    word = "UTF8SMTP" if envelope.smtputf8 else "ESMTP"
    if info.tls_active:
        word += "S"
    if info.auth_user is not None:
        word += "A"
    return word
