"""The values the spool hands out and takes back.

Claimed work goes out as :class:`Claimed` (one message with the recipients
claimed for it); delivery outcomes come back as :class:`Delivered`,
:class:`Deferred` or :class:`Failed`, one per recipient. An outcome that
names its ``message_id`` (the delivery agent always knows it) saves the spool
a lookup. The admin views
(:class:`DomainSummary`, :class:`MessageInfo`, :class:`MessageDetail`) and the
:class:`SpoolStatistics` snapshot are plain data too, so the CLI and the
control socket can print or serialise them without touching SQLite.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailwright.envelope import Envelope
from mailwright.errors import SpoolError


class MessageNotFoundError(SpoolError, LookupError):
    """The message is no longer in the spool (delivered, bounced or deleted)."""


@dataclass(frozen=True, slots=True)
class ClaimedRecipient:
    """One recipient claimed for a delivery attempt.

    ``rcpt_id`` is the key to report its outcome with. ``attempts`` counts the
    attempts made before this one; ``first_attempt`` is when the first of them
    was made (None before the first). ``warned`` says whether a delay warning
    (RFC 3464 ``action=delayed``) was already sent for it.
    """

    rcpt_id: int
    address: str
    domain: str
    attempts: int
    first_attempt: float | None
    notify: tuple[str, ...] = ()
    orcpt: str | None = None
    warned: bool = False
    last_reply: str | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A message with the recipients claimed for it, marked active in the spool.

    Every claimed recipient must come back through :meth:`Spool.record`; those
    that never do go back to the queue when the claiming spool closes or, after
    a crash, when the next spool opens the folder.
    """

    queue_id: str
    message_id: int
    envelope: Envelope
    recipients: tuple[ClaimedRecipient, ...]
    size: int
    received_at: float


@dataclass(frozen=True, slots=True)
class Delivered:
    """The recipient was accepted by the next hop: it leaves the queue."""

    rcpt_id: int
    reply_text: str = ""
    remote_host: str | None = None
    message_id: int | None = None  # the recipient's message, when the caller knows it


@dataclass(frozen=True, slots=True)
class Deferred:
    """A transient failure: the recipient goes back to the queue until ``next_attempt``.

    ``attempted_at`` (default: the spool's clock) becomes ``first_attempt`` if
    this was the first attempt. ``warned`` marks that a delay warning was sent
    with this outcome, so it is not sent again.
    """

    rcpt_id: int
    next_attempt: float
    reply_text: str = ""
    remote_host: str | None = None
    attempted_at: float | None = None
    warned: bool = False
    message_id: int | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """A permanent failure or expiry: the recipient leaves the queue (its DSN is the caller's)."""

    rcpt_id: int
    reply_text: str = ""
    remote_host: str | None = None
    message_id: int | None = None


Outcome = Delivered | Deferred | Failed


@dataclass(frozen=True, slots=True)
class DomainSummary:
    """Queued work for one recipient domain (``mailwright queue`` summary line)."""

    domain: str
    recipients: int
    messages: int
    oldest_received_at: float
    deferred: int  # recipients with at least one failed attempt


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """One line of a queue listing."""

    queue_id: str
    sender: str
    size: int
    received_at: float
    recipients: int
    next_attempt: float | None  # earliest among its queued recipients


@dataclass(frozen=True, slots=True)
class RecipientState:
    """Where one recipient of a message stands."""

    rcpt_id: int
    address: str
    state: str  # "queued" or "active"
    next_attempt: float
    attempts: int
    first_attempt: float | None
    last_reply: str | None
    last_remote_host: str | None


@dataclass(frozen=True, slots=True)
class MessageDetail:
    """Everything the spool holds about one message (``mailwright queue show``)."""

    queue_id: str
    envelope: Envelope
    recipients: tuple[RecipientState, ...]
    size: int
    received_at: float
    content: bytes


@dataclass(frozen=True, slots=True)
class SpoolStatistics:
    """A snapshot for metrics: what is queued and how well group commit batches."""

    messages: int
    recipients: int
    active: int  # recipients claimed for delivery right now
    stores: int  # messages stored by this Spool object since open
    commits: int  # durable transactions committed by its writer
    transactions: int  # all transactions, durable or not
    jobs: int  # requests served by those transactions
    pending: int  # requests waiting for the writer

    @property
    def avg_batch_size(self) -> float:
        """Mean number of requests per transaction (1.0 = no batching)."""
        return self.jobs / self.transactions if self.transactions else 0.0
