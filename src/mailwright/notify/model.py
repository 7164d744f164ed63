"""The notification layer's data: recipients, categories, preferences, consent, notifications.

Plain values, shared by the store, the router, the HTTP API and the channels.
Times are UTC epoch seconds (floats); local times (digest hours, quiet hours)
are ``"HH:MM"`` strings read in the recipient's IANA time zone. An *address*
is either an email address (lower-cased domain) or an E.164 phone number
(``+`` and up to 15 digits); which one is told by :func:`channel_of`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Channel = Literal["email", "sms"]
CHANNELS: tuple[Channel, ...] = ("email", "sms")

LegalClass = Literal["transactional", "commercial"]
LEGAL_CLASSES: tuple[LegalClass, ...] = ("transactional", "commercial")

# off: never; instant: as it comes; daily/weekly: one digest at the recipient's local time.
Cadence = Literal["off", "instant", "daily", "weekly"]
CADENCES: tuple[Cadence, ...] = ("off", "instant", "daily", "weekly")
DIGEST_CADENCES: tuple[Cadence, ...] = ("daily", "weekly")

# The legal ground a consent record rests on. Only "consent" and "soft_opt_in"
# make commercial mail lawful on their own; "contract" and "legal_obligation"
# cover transactional mail; every basis has a lifetime in the configuration.
Basis = Literal["consent", "soft_opt_in", "contract", "legitimate_interest", "legal_obligation"]
BASES: tuple[Basis, ...] = (
    "consent",
    "soft_opt_in",
    "contract",
    "legitimate_interest",
    "legal_obligation",
)
COMMERCIAL_BASES: tuple[Basis, ...] = ("consent", "soft_opt_in")

# What a ledger entry records. grant: consent given; confirm: a double opt-in
# confirmation or re-permission of an earlier grant; withdraw: the recipient said
# no; expire: the lifetime ran out (written by the expiry sweep, with the reason).
ConsentAction = Literal["grant", "confirm", "withdraw", "expire"]
CONSENT_ACTIONS: tuple[ConsentAction, ...] = ("grant", "confirm", "withdraw", "expire")

# Where a consent entry came from.
SourceKind = Literal[
    "form",
    "api",
    "import",
    "sms_keyword",
    "preference_centre",
    "one_click",
    "mailto",
    "repermission",
    "system",
]
SOURCE_KINDS: tuple[SourceKind, ...] = (
    "form",
    "api",
    "import",
    "sms_keyword",
    "preference_centre",
    "one_click",
    "mailto",
    "repermission",
    "system",
)

# Any category, for ledger entries and suppressions that cover all of them
# (an SMS STOP withdraws every category for that number).
ALL_CATEGORIES = "*"

# What the router decided for one channel of one notification.
Action = Literal["send", "digest", "hold", "skip"]

# Where one channel of a notification stands. pending: decided, not yet handed
# to the channel; queued: in the MTA queue or accepted by the SMSC; buffered: in
# an open digest window; held: waiting for quiet hours to end; skipped: not sent
# (the decision says why); delivered/failed/expired: what the channel reported.
DeliveryState = Literal[
    "pending", "queued", "buffered", "held", "skipped", "delivered", "failed", "expired"
]


def channel_of(address: str) -> Channel:
    """The channel an address belongs to: ``sms`` for E.164 numbers, else ``email``."""
    return "sms" if address.startswith("+") else "email"


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A local-time span during which notifications are held, not dropped.

    ``start`` and ``end`` are ``"HH:MM"``; a span may wrap midnight
    (``21:00`` to ``08:00``). ``start == end`` means no quiet hours.
    """

    start: str
    end: str


@dataclass(slots=True)
class Category:
    """A kind of notification a sender sends, and what a recipient may do about it.

    ``defaults`` holds the cadence of every channel the category uses (a
    channel missing from it is never used). ``opt_out=False`` makes the category
    must-send, allowed only for transactional ones. ``channel_order`` and
    ``delivery`` decide channel choice: ``"all"`` sends on every allowed channel,
    ``"first"`` on the first allowed one in order (so SMS with an email
    fallback). ``urgent_order``, when set, replaces the order for urgent
    notifications. ``quiet_hours`` is ``None`` for the configured default.
    """

    name: str
    legal_class: LegalClass
    defaults: dict[Channel, Cadence]
    description: str = ""
    cadences: tuple[Cadence, ...] = CADENCES
    opt_out: bool = True
    channel_order: tuple[Channel, ...] = ("email", "sms")
    delivery: Literal["all", "first"] = "all"
    urgent_order: tuple[Channel, ...] = ()
    quiet_hours: QuietHours | None = None
    frequency_cap: int | None = None  # per recipient and local day; None: the default
    auto_digest_after: int | None = None  # per recipient and local day; None: the default
    digest_at: str = "09:00"  # the default local time of digests
    updated_at: float = 0.0

    @property
    def commercial(self) -> bool:
        return self.legal_class == "commercial"


@dataclass(slots=True)
class Recipient:
    """Someone notifications are for, named by the sender's own user id."""

    id: str
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()  # E.164
    time_zone: str = "UTC"  # IANA name
    locale: str = "en"  # BCP 47
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def addresses(self) -> tuple[str, ...]:
        return self.emails + self.phones


@dataclass(slots=True)
class ChannelPreference:
    """A recipient's choice for one category on one channel.

    ``digest_at`` is the local ``"HH:MM"`` of a digest and ``weekday`` its day
    for weekly ones (0 is Monday). ``auto`` marks a daily digest the automatic
    rule switched on, which one click switches back to ``instant``.
    """

    category: str
    channel: Channel
    cadence: Cadence
    digest_at: str | None = None
    weekday: int | None = None
    auto: bool = False
    updated_at: float = 0.0


@dataclass(slots=True)
class Preferences:
    """All of one recipient's choices: per category and channel, and the global switches."""

    recipient_id: str
    stop_commercial: bool = False
    paused_until: float | None = None
    channels: dict[tuple[str, Channel], ChannelPreference] = field(default_factory=dict)
    updated_at: float = 0.0

    def get(self, category: str, channel: Channel) -> ChannelPreference | None:
        return self.channels.get((category, channel))


@dataclass(frozen=True, slots=True)
class ConsentSource:
    """Where a consent entry came from: its kind and the form, key, batch or keyword."""

    kind: SourceKind
    reference: str = ""


@dataclass(frozen=True, slots=True)
class Evidence:
    """What proves a consent entry: who clicked, from where, and the double opt-in."""

    ip: str | None = None
    user_agent: str | None = None
    double_opt_in_token: str | None = None
    confirmed_at: float | None = None


@dataclass(slots=True)
class ConsentEntry:
    """One line of the append-only consent ledger, per address and category.

    ``wording`` is the exact text the person was shown and ``wording_version``
    its version. ``expires_at`` is an explicit expiry given with the entry;
    otherwise the lifetime of the basis applies (see
    :mod:`mailwright.notify.consent`). ``reason`` says why a withdrawal or expiry
    happened (``"sms STOP"``, ``"one-click unsubscribe"``, ``"lifetime of 730 days
    since 2024-11-02"``). Entries are never updated or deleted.
    """

    address: str
    category: str
    action: ConsentAction
    at: float
    source: ConsentSource
    basis: Basis | None = None
    wording: str | None = None
    wording_version: str | None = None
    evidence: Evidence = field(default_factory=Evidence)
    expires_at: float | None = None
    reason: str | None = None
    id: str = ""
    recorded_at: float = 0.0
    recorded_by: str = ""


@dataclass(frozen=True, slots=True)
class ConsentState:
    """Whether an address may receive a category now, and on what ground."""

    live: bool
    basis: Basis | None = None
    since: float | None = None  # the grant or confirmation it rests on
    expires_at: float | None = None
    entry_id: str | None = None
    reason: str = ""  # why not, when not live
    lifetime: float | None = None  # seconds the basis lasts; None: explicit or no expiry
    renewed_at: float | None = None  # the later of last confirmation and engagement
    ended_by: ConsentAction | None = None  # "withdraw" or "expire" when an entry ended it


@dataclass(frozen=True, slots=True)
class Suppression:
    """An address nothing commercial (or, with ``all_mail``, nothing) may go to."""

    address: str
    reason: str  # "hard bounce", "complaint", "sms STOP", "one-click", ...
    at: float
    all_mail: bool = False  # also transactional: the address does not exist


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One rule's verdict in a notification's evaluation trace, for support agents."""

    rule: str  # suppression, consent, preference, quiet_hours, frequency_cap, channel
    channel: Channel | None
    outcome: Literal["pass", "stop", "hold", "digest", "choose", "note"]
    detail: str


@dataclass(slots=True)
class ChannelDecision:
    """What happens to one notification on one channel, and where it stands."""

    channel: Channel
    action: Action
    address: str | None = None
    reason: str = ""
    at: float | None = None  # hold: release time; digest: when the window is due
    state: DeliveryState = "pending"
    reference: str | None = None  # queue id or SMSC message ids
    updated_at: float = 0.0


@dataclass(slots=True)
class Notification:
    """A notification posted for a recipient and category, with the router's decisions."""

    id: str
    recipient_id: str
    category: str
    template: str
    data: dict[str, Any] = field(default_factory=dict)
    urgent: bool = False
    created_at: float = 0.0
    idempotency_key: str | None = None
    decisions: dict[Channel, ChannelDecision] = field(default_factory=dict)
    trace: list[TraceStep] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Template:
    """What a notification looks like: Jinja2 sources for email and SMS.

    ``subject``, ``text`` and ``html`` make the email (HTML is autoescaped);
    ``sms`` is the text message. A template may leave out a channel's parts; it
    is then not sendable on that channel.
    """

    name: str
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    sms: str | None = None
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who changed what, when and through what (API key, preference centre, SMS, …)."""

    at: float
    actor: str  # "apikey:NAME", "recipient", "system", "smsc", ...
    via: str  # "api", "preference_centre", "one_click", "mailto", "sms", "cli", "system"
    subject: str  # "recipient:ID", "address:ADDR", "category:NAME"
    action: str  # "preferences.update", "consent.grant", "suppression.add", ...
    detail: dict[str, Any] = field(default_factory=dict)
    id: str = ""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is making a change, for the audit log."""

    actor: str
    via: str
