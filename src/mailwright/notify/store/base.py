"""The notification store's interface: what the router, the API and the channels need.

Two implementations share one schema and one set of migrations: SQLite (the
default, no setup) and PostgreSQL (``[notify] store = "postgresql://…"``), for
several nodes sharing state. Every method is a coroutine; implementations run
their SQL off the event loop. Every change to preferences, consent or
suppressions writes an :class:`~mailwright.notify.model.AuditEntry` in the same
transaction, so the audit log can never miss a change that happened.

Methods that change state take an :class:`~mailwright.notify.model.Actor`.
Lookups of something absent return ``None`` (or an empty list); only broken
invariants raise (:class:`~mailwright.notify.errors.StoreError`).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mailwright.notify.model import (
    Actor,
    AuditEntry,
    Category,
    Channel,
    ChannelDecision,
    ConsentEntry,
    Notification,
    Preferences,
    Recipient,
    Suppression,
    Template,
)


@dataclass(slots=True)
class RoutingFacts:
    """Everything the router reads about one recipient and category, in one round trip.

    ``consent`` holds the ledger entries of each of the recipient's addresses for
    this category and for :data:`~mailwright.notify.model.ALL_CATEGORIES`, oldest
    first. ``sent_since`` counts, per channel, the notifications sent (action
    ``send``) to the recipient since the ``since`` time the caller gave (the start
    of the recipient's local day), over commercial categories; ``category_since``
    counts this category's notifications (any action) since then, for the
    automatic digest. ``engaged_at`` is each address's last engagement.
    """

    recipient: Recipient
    category: Category
    preferences: Preferences
    consent: dict[str, list[ConsentEntry]] = field(default_factory=dict)
    suppressions: dict[str, Suppression] = field(default_factory=dict)
    engaged_at: dict[str, float] = field(default_factory=dict)
    sent_since: dict[Channel, int] = field(default_factory=dict)
    category_since: int = 0


@dataclass(slots=True)
class DigestItem:
    """One notification buffered for a digest."""

    notification_id: str
    recipient_id: str
    category: str
    channel: Channel
    created_at: float
    template: str
    due_at: float  # when the window it waits in closes (the recipient's local digest time)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class DigestWindow:
    """A closed digest window: its true item count and its newest items (bounded).

    ``state`` is ``closed`` (claimed, not yet sent), ``sent`` or ``empty``.
    ``auto`` is true when the channel preference behind it was switched on by
    the automatic digest rule, so the digest says so.
    """

    id: str
    recipient_id: str
    category: str
    channel: Channel
    due_at: float
    count: int
    items: list[DigestItem]
    state: str = "closed"
    auto: bool = False
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's public part. The secret is stored only as a hash."""

    id: str
    name: str
    created_at: float
    revoked_at: float | None = None


@dataclass(frozen=True, slots=True)
class SmsMessage:
    """One text message handed to the SMSC, by its segments' SMSC message ids."""

    notification_id: str | None
    address: str
    message_ids: tuple[str, ...]
    state: str
    updated_at: float


class NotifyStore(abc.ABC):
    """The notification layer's durable state (see the module docstring)."""

    # -- lifecycle ------------------------------------------------------------------

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date (migrations run in one transaction)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and worker threads."""

    # -- categories and templates ---------------------------------------------------

    @abc.abstractmethod
    async def put_category(self, category: Category, actor: Actor) -> bool:
        """Create or replace a category; True when it was created."""

    @abc.abstractmethod
    async def get_category(self, name: str) -> Category | None: ...

    @abc.abstractmethod
    async def list_categories(self) -> list[Category]: ...

    @abc.abstractmethod
    async def put_template(self, template: Template, actor: Actor) -> bool:
        """Create or replace a template; True when it was created."""

    @abc.abstractmethod
    async def get_template(self, name: str) -> Template | None: ...

    # -- recipients -------------------------------------------------------------------

    @abc.abstractmethod
    async def put_recipient(self, recipient: Recipient, actor: Actor) -> bool:
        """Create or replace a recipient and its addresses; True when it was created.

        An address belongs to one recipient at a time: one held by another
        recipient raises :class:`~mailwright.notify.errors.Conflict`.
        """

    @abc.abstractmethod
    async def put_recipients(self, recipients: Sequence[Recipient], actor: Actor) -> int:
        """Create or replace many recipients in one transaction (imports, benchmarks)."""

    @abc.abstractmethod
    async def get_recipient(self, recipient_id: str) -> Recipient | None: ...

    @abc.abstractmethod
    async def recipient_of(self, address: str) -> str | None:
        """The id of the recipient an email address or phone number belongs to."""

    # -- preferences --------------------------------------------------------------------

    @abc.abstractmethod
    async def get_preferences(self, recipient_id: str) -> Preferences:
        """The recipient's preferences (empty ones for a recipient who set none)."""

    @abc.abstractmethod
    async def put_preferences(
        self,
        preferences: Preferences,
        actor: Actor,
        *,
        replace: bool = False,
        channels_only: bool = False,
    ) -> Preferences:
        """Store preferences, merging channel choices unless ``replace``; audited.

        With ``channels_only`` only the channel choices are written, and the
        global switches (stop all commercial, pause) stay as stored: for changes
        made by mailwright (automatic digest, one-click) that must not undo a
        change the recipient made a moment before.
        """

    # -- consent, suppression, engagement ---------------------------------------------

    @abc.abstractmethod
    async def append_consent(self, entries: Sequence[ConsentEntry], actor: Actor) -> list[str]:
        """Append ledger entries in one transaction (all or none); their new ids."""

    @abc.abstractmethod
    async def consent_entries(
        self, address: str, category: str | None = None
    ) -> list[ConsentEntry]:
        """Ledger entries of an address (of one category and ``*`` when given), oldest first."""

    @abc.abstractmethod
    async def consent_addresses(self, categories: Sequence[str]) -> list[str]:
        """Addresses with at least one ledger entry for any of these categories."""

    @abc.abstractmethod
    async def record_notice(self, entry_id: str, kind: str, at: float) -> bool:
        """Note that a re-permission notice (``notice``, ``reminder-1``, …) went out for a
        ledger entry; False when it had already, so each notice goes out once."""

    @abc.abstractmethod
    async def engagement(self, address: str) -> float | None:
        """When an address last engaged, or None."""

    @abc.abstractmethod
    async def suppress(self, suppression: Suppression, actor: Actor) -> None:
        """Suppress an address (replacing an earlier suppression of it); audited."""

    @abc.abstractmethod
    async def unsuppress(self, address: str, actor: Actor) -> bool:
        """Lift a suppression; True when there was one; audited."""

    @abc.abstractmethod
    async def get_suppression(self, address: str) -> Suppression | None: ...

    @abc.abstractmethod
    async def record_engagement(self, address: str, at: float) -> None:
        """Note that an address engaged (opened, clicked, replied) at ``at``."""

    # -- routing ------------------------------------------------------------------------

    @abc.abstractmethod
    async def routing_facts(
        self, recipient_id: str, category: str, since: float
    ) -> RoutingFacts | None:
        """All the router needs, in one round trip; None for an unknown recipient or category.

        Raises nothing for either: the caller tells which one is unknown.
        """

    # -- notifications ------------------------------------------------------------------

    @abc.abstractmethod
    async def add_notification(
        self, notification: Notification, digest: Sequence[DigestItem] = ()
    ) -> Notification:
        """Store a routed notification and its digest items in one transaction.

        With an ``idempotency_key`` already used by the same recipient, nothing is
        stored and the earlier notification is returned.
        """

    @abc.abstractmethod
    async def get_notification(self, notification_id: str) -> Notification | None: ...

    @abc.abstractmethod
    async def update_decision(
        self, notification_id: str, decision: ChannelDecision, note: str | None = None
    ) -> None:
        """Replace one channel's decision (state, reference), adding ``note`` to the trace."""

    @abc.abstractmethod
    async def due_held(self, now: float, limit: int = 500) -> list[Notification]:
        """Notifications with a channel held until ``now`` or earlier, oldest first."""

    @abc.abstractmethod
    async def pending(self, limit: int = 500) -> list[Notification]:
        """Notifications with a channel decided ``send`` whose state is still ``pending``.

        After a crash these are the ones decided but not yet handed to a channel.
        """

    @abc.abstractmethod
    async def send_history(
        self, recipient_id: str, since: float
    ) -> dict[tuple[str, Channel], int]:
        """Notifications sent or digested per category and channel since ``since``."""

    # -- digests -------------------------------------------------------------------------

    @abc.abstractmethod
    async def close_due_windows(
        self, now: float, newest: int = 10, limit: int = 100
    ) -> list[DigestWindow]:
        """Close the digest windows due at ``now``, atomically, and return them.

        A window is the buffered items of one recipient, category and channel
        whose ``due_at`` has passed. Closing claims every buffered item of it in
        one transaction, so an item added concurrently lands either in this
        window or in the next, never in both and never in none; two closers
        racing (two processes or nodes) get disjoint windows. A crash after
        closing leaves the window ``closed``, and :meth:`closed_windows` finds it.
        """

    @abc.abstractmethod
    async def closed_windows(
        self, newest: int = 10, limit: int = 100, *, claimed_before: float | None = None
    ) -> list[DigestWindow]:
        """Windows closed but not yet marked sent (after a crash), oldest first.

        With ``claimed_before``, only those whose sender claimed them before then
        (or never): a window closed a moment ago is being sent by its closer.
        """

    @abc.abstractmethod
    async def claim_window(self, window_id: str, now: float, claimed_before: float) -> bool:
        """Claim a closed window to send it; False when another sender holds a fresher claim.

        Closing claims a window for its closer; recovery claims one whose claim is
        older than ``claimed_before`` (its sender died), so two never send it both.
        """

    @abc.abstractmethod
    async def mark_window_sent(self, window_id: str, reference: str | None) -> bool:
        """Mark a closed window sent; False when it was already (another sender won).

        Its items' decisions move to ``queued`` with the window as their reference
        (``skipped`` when ``reference`` starts with ``skipped:``), in the same transaction.
        """

    # -- API keys ------------------------------------------------------------------------

    @abc.abstractmethod
    async def create_api_key(self, name: str, secret_hash: str, at: float) -> ApiKey: ...

    @abc.abstractmethod
    async def api_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        """A key and its secret hash, by id."""

    @abc.abstractmethod
    async def list_api_keys(self) -> list[ApiKey]: ...

    @abc.abstractmethod
    async def revoke_api_key(self, key_id: str, at: float) -> bool: ...

    # -- SMS -------------------------------------------------------------------------------

    @abc.abstractmethod
    async def add_sms(self, message: SmsMessage) -> None:
        """Remember the SMSC message ids of a text, to map delivery receipts back."""

    @abc.abstractmethod
    async def sms_by_message_id(self, message_id: str) -> SmsMessage | None: ...

    @abc.abstractmethod
    async def update_sms_state(self, message_id: str, state: str, at: float) -> SmsMessage | None:
        """Record a receipt's state for the text one of whose segments it names."""

    # -- audit -----------------------------------------------------------------------------

    @abc.abstractmethod
    async def audit_log(self, subject: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The newest audit entries, of one subject when given, newest first."""
