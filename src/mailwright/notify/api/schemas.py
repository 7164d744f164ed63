"""The API's JSON shapes (pydantic models) and their conversion to and from the model.

Request models forbid unknown fields, so a typo (``"time_zome"``) is named
in a 422 answer instead of silently ignored. Times travel as RFC 3339
strings: requests must carry an offset (``Z`` or ``+02:00``), responses are
always UTC with ``Z``. The model keeps epoch seconds; :func:`epoch` and
:func:`moment` convert at this boundary and nowhere else.

Conversions named ``to_*`` build model dataclasses from request bodies; the
``*_out`` ones build response bodies from dataclasses. They check shape only;
:mod:`mailwright.notify.validate` and the service check the rules.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from mailwright.notify.model import (
    CADENCES,
    CHANNELS,
    AuditEntry,
    Basis,
    Cadence,
    Category,
    Channel,
    ChannelDecision,
    ChannelPreference,
    ConsentEntry,
    ConsentSource,
    DeliveryState,
    Evidence,
    LegalClass,
    Notification,
    Preferences,
    QuietHours,
    Recipient,
    SourceKind,
    Template,
    TraceStep,
)
from mailwright.notify.service import ConsentView

_READ_ONLY: dict[str, Any] = {"readOnly": True}
_TEXT = 10_000  # the longest free text a field takes (template parts, wording)


def epoch(value: datetime) -> float:
    """Epoch seconds of an aware datetime."""
    return value.timestamp()


def moment(value: float | None) -> datetime | None:
    """The UTC datetime of epoch seconds (None stays None)."""
    return None if value is None else datetime.fromtimestamp(value, UTC)


#: The times a body may name: what every store and every date library can hold.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _in_range(value: datetime) -> datetime:
    if not _EARLIEST <= value < _LATEST:
        raise ValueError("a time from 1970 to 8999 (UTC) is needed")
    return value


#: An RFC 3339 time with its offset, between 1970 and 8999.
Moment = Annotated[AwareDatetime, AfterValidator(_in_range)]


def _bad_text(value: object, depth: int = 0) -> str | None:
    """What makes a JSON value unstorable: a lone surrogate or a NUL in a string."""
    if depth > 64:
        return "nested too deeply"
    if isinstance(value, str):
        if "\x00" in value:
            return "text with a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "text that is not valid Unicode (a lone surrogate)"
        return None
    if isinstance(value, dict):
        items: list[object] = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    else:
        return None
    for item in items:
        found = _bad_text(item, depth + 1)
        if found is not None:
            return found
    return None


class _In(BaseModel):
    """A request body: unknown fields are errors, and so is text no store can hold."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                problem = _bad_text(key) or _bad_text(value)
                if problem is not None:
                    raise ValueError(
                        f"{str(key)[:64]!r} holds {problem}".encode("utf-8", "replace").decode()
                    )
        return data


class _Out(BaseModel):
    """A response body."""


# -- problems ----------------------------------------------------------------------------


class FieldProblem(_Out):
    """One field at fault."""

    pointer: str = Field(description="JSON pointer (RFC 6901) into the request body")
    detail: str = Field(description="What is wrong with the field's value")


class Problem(_Out):
    """An error, as RFC 9457 problem details (`application/problem+json`)."""

    type: str = Field(description="URI naming the problem type")
    title: str = Field(description="Short summary of the problem type")
    status: int = Field(description="HTTP status code")
    detail: str = Field(description="What went wrong with this request")
    instance: str | None = Field(default=None, description="The request path")
    errors: list[FieldProblem] = Field(default_factory=list, description="Fields at fault")


# -- categories and templates ----------------------------------------------------------


class QuietHoursBody(_In):
    """Local hours during which notifications are held (a span may wrap midnight)."""

    start: str = Field(description="Local time, HH:MM", examples=["21:00"])
    end: str = Field(description="Local time, HH:MM", examples=["08:00"])


class CategoryIn(_In):
    """A kind of notification: its legal class, channels, cadences and rules."""

    legal_class: LegalClass = Field(description="transactional or commercial (marketing)")
    description: str = Field(
        default="", max_length=1000, description="Shown in the preference centre"
    )
    defaults: dict[Channel, Cadence] = Field(
        description="Default cadence per channel; a channel missing here is never used",
        examples=[{"email": "instant", "sms": "off"}],
    )
    cadences: list[Cadence] = Field(
        default_factory=lambda: list(CADENCES), description="Cadences recipients may choose"
    )
    opt_out: bool = Field(
        True, description="Whether recipients may turn it off; false only for transactional"
    )
    channel_order: list[Channel] = Field(
        default_factory=lambda: list(CHANNELS), description="Channel preference order"
    )
    delivery: Literal["all", "first"] = Field(
        "all", description="all: every allowed channel; first: the first allowed in order"
    )
    urgent_order: list[Channel] = Field(
        default_factory=list, description="Channel order for urgent notifications, if different"
    )
    quiet_hours: QuietHoursBody | None = Field(
        default=None, description="null: the configured default"
    )
    frequency_cap: int | None = Field(default=None, description="Per recipient and local day")
    auto_digest_after: int | None = Field(
        None, description="Switch to a daily digest above this many a day"
    )
    digest_at: str = Field(default="09:00", description="Default local time of digests, HH:MM")


class CategoryOut(_Out):
    """A stored category."""

    name: str
    legal_class: LegalClass
    description: str
    defaults: dict[Channel, Cadence]
    cadences: list[Cadence]
    opt_out: bool
    channel_order: list[Channel]
    delivery: Literal["all", "first"]
    urgent_order: list[Channel]
    quiet_hours: QuietHoursBody | None
    frequency_cap: int | None
    auto_digest_after: int | None
    digest_at: str
    updated_at: datetime | None


class CategoryList(_Out):
    """Every category."""

    categories: list[CategoryOut]


def to_category(name: str, body: CategoryIn) -> Category:
    """The category a request body describes."""
    quiet = body.quiet_hours
    return Category(
        name=name,
        legal_class=body.legal_class,
        defaults=dict(body.defaults),
        description=body.description,
        cadences=tuple(body.cadences),
        opt_out=body.opt_out,
        channel_order=tuple(body.channel_order),
        delivery=body.delivery,
        urgent_order=tuple(body.urgent_order),
        quiet_hours=None if quiet is None else QuietHours(quiet.start, quiet.end),
        frequency_cap=body.frequency_cap,
        auto_digest_after=body.auto_digest_after,
        digest_at=body.digest_at,
    )


def category_out(category: Category) -> CategoryOut:
    """The response body of a category."""
    quiet = category.quiet_hours
    return CategoryOut(
        name=category.name,
        legal_class=category.legal_class,
        description=category.description,
        defaults=dict(category.defaults),
        cadences=list(category.cadences),
        opt_out=category.opt_out,
        channel_order=list(category.channel_order),
        delivery=category.delivery,
        urgent_order=list(category.urgent_order),
        quiet_hours=None if quiet is None else QuietHoursBody(start=quiet.start, end=quiet.end),
        frequency_cap=category.frequency_cap,
        auto_digest_after=category.auto_digest_after,
        digest_at=category.digest_at,
        updated_at=moment(category.updated_at or None),
    )


class TemplateIn(_In):
    """Jinja2 sources of a notification; a channel whose parts are missing is not sendable."""

    subject: str | None = Field(default=None, max_length=1000, description="Email subject")
    text: str | None = Field(default=None, max_length=_TEXT, description="Email text part")
    html: str | None = Field(
        default=None, max_length=_TEXT, description="Email HTML part (autoescaped)"
    )
    sms: str | None = Field(default=None, max_length=_TEXT, description="Text message")


class TemplateOut(_Out):
    """A stored template."""

    name: str
    subject: str | None
    text: str | None
    html: str | None
    sms: str | None


def to_template(name: str, body: TemplateIn) -> Template:
    return Template(name=name, subject=body.subject, text=body.text, html=body.html, sms=body.sms)


def template_out(template: Template) -> TemplateOut:
    return TemplateOut(
        name=template.name,
        subject=template.subject,
        text=template.text,
        html=template.html,
        sms=template.sms,
    )


# -- recipients --------------------------------------------------------------------------


class RecipientIn(_In):
    """Someone notifications are for; the id (in the path) is the sender's own user id."""

    emails: list[str] = Field(default_factory=list, max_length=50, description="addr-specs")
    phones: list[str] = Field(default_factory=list, max_length=50, description="E.164 numbers")
    time_zone: str = Field(
        default="UTC", description="IANA time zone name", examples=["Europe/Berlin"]
    )
    locale: str = Field(default="en", description="BCP 47 language tag", examples=["de-DE"])


class RecipientOut(_Out):
    """A stored recipient, addresses in normal form (domains lower-cased, in ASCII)."""

    id: str
    emails: list[str]
    phones: list[str]
    time_zone: str
    locale: str
    created_at: datetime | None
    updated_at: datetime | None


def to_recipient(recipient_id: str, body: RecipientIn) -> Recipient:
    return Recipient(
        id=recipient_id,
        emails=tuple(body.emails),
        phones=tuple(body.phones),
        time_zone=body.time_zone,
        locale=body.locale,
    )


def recipient_out(recipient: Recipient) -> RecipientOut:
    return RecipientOut(
        id=recipient.id,
        emails=list(recipient.emails),
        phones=list(recipient.phones),
        time_zone=recipient.time_zone,
        locale=recipient.locale,
        created_at=moment(recipient.created_at or None),
        updated_at=moment(recipient.updated_at or None),
    )


# -- consent -----------------------------------------------------------------------------


class SourceBody(_In):
    """Where consent came from: the kind, and the form, batch, keyword or key."""

    kind: SourceKind
    reference: str = Field(default="", max_length=1000, examples=["signup-form-v3"])


class EvidenceBody(_In):
    """What proves consent: who acted, from where, and the double opt-in."""

    ip: str | None = Field(default=None, description="The IP address the consent came from")
    user_agent: str | None = Field(default=None, max_length=1000)
    double_opt_in_token: str | None = Field(default=None, max_length=1000)
    confirmed_at: Moment | None = Field(default=None, description="When the double opt-in was")


class ConsentEntryIn(_In):
    """One ledger entry to append. Grants and confirmations need provenance."""

    address: str = Field(description="An email address or E.164 number of the recipient")
    category: str = Field(description="A category name, or * for every category")
    action: Literal["grant", "confirm", "withdraw"]
    basis: Basis | None = None
    at: Moment | None = Field(default=None, description="When it happened; default now")
    source: SourceBody | None = Field(
        None, description="Default: kind api, reference the API key's name"
    )
    wording: str | None = Field(default=None, max_length=_TEXT, description="The exact text shown")
    wording_version: str | None = Field(default=None, max_length=200)
    evidence: EvidenceBody | None = None
    expires_at: Moment | None = Field(default=None, description="Default: the basis's lifetime")
    reason: str | None = Field(default=None, max_length=1000, description="Why, for a withdrawal")


class ConsentIn(_In):
    """Ledger entries to append, all or none."""

    entries: list[ConsentEntryIn] = Field(min_length=1, max_length=1000)


class ConsentIds(_Out):
    """The ids of appended ledger entries, in the order given."""

    ids: list[str]


class ConsentViewOut(_Out):
    """Whether one address may receive one category now, and on what ground."""

    address: str
    category: str
    live: bool
    basis: str | None
    since: datetime | None
    expires_at: datetime | None
    reason: str


class ConsentList(_Out):
    """The consent of every address and category of a recipient."""

    recipient: str
    consent: list[ConsentViewOut]


def to_consent_entry(body: ConsentEntryIn, *, now: float, key_name: str) -> ConsentEntry:
    """The ledger entry a request describes; ``now`` and the key fill what it leaves out."""
    source = body.source or SourceBody(kind="api", reference=f"apikey:{key_name}")
    evidence = body.evidence or EvidenceBody()
    return ConsentEntry(
        address=body.address,
        category=body.category,
        action=body.action,
        at=now if body.at is None else epoch(body.at),
        source=ConsentSource(source.kind, source.reference),
        basis=body.basis,
        wording=body.wording,
        wording_version=body.wording_version,
        evidence=Evidence(
            ip=evidence.ip,
            user_agent=evidence.user_agent,
            double_opt_in_token=evidence.double_opt_in_token,
            confirmed_at=None if evidence.confirmed_at is None else epoch(evidence.confirmed_at),
        ),
        expires_at=None if body.expires_at is None else epoch(body.expires_at),
        reason=body.reason,
    )


class AuditEntryOut(_Out):
    """One change: who made it, when, through what, and what changed."""

    at: datetime
    actor: str
    via: str
    subject: str
    action: str
    detail: dict[str, Any]


class AuditList(_Out):
    """The newest changes to a recipient and its addresses, newest first."""

    recipient: str
    entries: list[AuditEntryOut]


def audit_list(recipient_id: str, entries: list[AuditEntry]) -> AuditList:
    return AuditList(
        recipient=recipient_id,
        entries=[
            AuditEntryOut(
                at=moment(entry.at) or datetime.fromtimestamp(0, UTC),
                actor=entry.actor,
                via=entry.via,
                subject=entry.subject,
                action=entry.action,
                detail=entry.detail,
            )
            for entry in entries
        ],
    )


def consent_list(recipient_id: str, views: list[ConsentView]) -> ConsentList:
    return ConsentList(
        recipient=recipient_id,
        consent=[
            ConsentViewOut(
                address=view.address,
                category=view.category,
                live=view.live,
                basis=view.basis,
                since=moment(view.since),
                expires_at=moment(view.expires_at),
                reason=view.reason,
            )
            for view in views
        ],
    )


# -- preferences -------------------------------------------------------------------------


class ChannelChoice(_In):
    """A recipient's choice for one category on one channel."""

    cadence: Cadence
    digest_at: str | None = Field(default=None, description="Local HH:MM of the digest")
    weekday: int | None = Field(default=None, description="Day of a weekly digest, 0 Monday to 6")
    auto: bool = Field(default=False, description="Set by the automatic digest rule")
    updated_at: Moment | None = Field(default=None, json_schema_extra=_READ_ONLY)


class PreferencesBody(_In):
    """All of a recipient's choices. Read-only fields are accepted and ignored on input,
    so a document read with GET can be changed and sent back with PUT."""

    recipient: str | None = Field(default=None, json_schema_extra=_READ_ONLY)
    stop_commercial: bool = Field(default=False, description="Stop every commercial category")
    paused_until: Moment | None = Field(default=None, description="Send nothing until then")
    channels: dict[str, dict[Channel, ChannelChoice]] = Field(
        default_factory=dict,
        description="Per category, per channel",
        examples=[{"news": {"email": {"cadence": "weekly", "digest_at": "08:00", "weekday": 0}}}],
    )
    updated_at: Moment | None = Field(default=None, json_schema_extra=_READ_ONLY)


class PreferencesPatch(_In):
    """A change to some preferences: absent fields and channels are kept."""

    stop_commercial: bool | None = None
    paused_until: Moment | None = Field(default=None, description="null: no pause")
    channels: dict[str, dict[Channel, ChannelChoice]] = Field(default_factory=dict)


def _choices(
    channels: dict[str, dict[Channel, ChannelChoice]],
) -> dict[tuple[str, Channel], ChannelPreference]:
    return {
        (name, channel): ChannelPreference(
            category=name,
            channel=channel,
            cadence=choice.cadence,
            digest_at=choice.digest_at,
            weekday=choice.weekday,
            auto=choice.auto,
        )
        for name, per_channel in channels.items()
        for channel, choice in per_channel.items()
    }


def to_preferences(recipient_id: str, body: PreferencesBody) -> Preferences:
    """The preferences a PUT body states, whole."""
    return Preferences(
        recipient_id=recipient_id,
        stop_commercial=body.stop_commercial,
        paused_until=None if body.paused_until is None else epoch(body.paused_until),
        channels=_choices(body.channels),
    )


def patched(current: Preferences, patch: PreferencesPatch) -> Preferences:
    """The preferences to store for a PATCH: the given fields over ``current``.

    Only the patched channel choices are returned in ``channels``: the store
    merges them into the others (``replace=False``).
    """
    given = patch.model_fields_set
    paused = current.paused_until
    if "paused_until" in given:
        paused = None if patch.paused_until is None else epoch(patch.paused_until)
    return Preferences(
        recipient_id=current.recipient_id,
        stop_commercial=(
            current.stop_commercial if patch.stop_commercial is None else patch.stop_commercial
        ),
        paused_until=paused,
        channels=_choices(patch.channels),
    )


def preferences_out(preferences: Preferences) -> PreferencesBody:
    channels: dict[str, dict[Channel, ChannelChoice]] = {}
    for (name, channel), choice in sorted(preferences.channels.items()):
        channels.setdefault(name, {})[channel] = ChannelChoice(
            cadence=choice.cadence,
            digest_at=choice.digest_at,
            weekday=choice.weekday,
            auto=choice.auto,
            updated_at=moment(choice.updated_at or None),
        )
    return PreferencesBody(
        recipient=preferences.recipient_id,
        stop_commercial=preferences.stop_commercial,
        paused_until=moment(preferences.paused_until),
        channels=channels,
        updated_at=moment(preferences.updated_at or None),
    )


# -- notifications -----------------------------------------------------------------------


class NotificationIn(_In):
    """A notification to route and deliver."""

    recipient: str = Field(description="The recipient's id")
    category: str
    template: str
    data: dict[str, Any] = Field(default_factory=dict, description="The template's variables")
    urgent: bool = Field(default=False, description="Use the category's urgent channel order")
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="A retry with the same key returns the first notification",
    )


class DecisionOut(_Out):
    """What the router decided for one channel, and where it stands."""

    action: Literal["send", "digest", "hold", "skip"]
    reason: str
    at: datetime | None = Field(description="hold: release time; digest: when the window is due")
    state: DeliveryState


class StatusOut(DecisionOut):
    """A channel's decision and delivery state, with the address and channel reference."""

    address: str | None
    reference: str | None = Field(description="Queue id or SMSC message ids")
    updated_at: datetime | None


class NotificationAccepted(_Out):
    """A notification accepted for routing: its id and the decision per channel."""

    id: str
    decisions: dict[Channel, DecisionOut]


class TraceStepOut(_Out):
    """One rule's verdict, in the order the router applied them."""

    rule: str
    channel: Channel | None
    outcome: Literal["pass", "stop", "hold", "digest", "choose", "note"]
    detail: str


class NotificationOut(_Out):
    """A notification, its status per channel and its evaluation trace."""

    id: str
    recipient: str
    category: str
    template: str
    urgent: bool
    created_at: datetime | None
    status: dict[Channel, StatusOut]
    trace: list[TraceStepOut]


def _decision(decision: ChannelDecision) -> DecisionOut:
    return DecisionOut(
        action=decision.action,
        reason=decision.reason,
        at=moment(decision.at),
        state=decision.state,
    )


def _status(decision: ChannelDecision) -> StatusOut:
    return StatusOut(
        action=decision.action,
        reason=decision.reason,
        at=moment(decision.at),
        state=decision.state,
        address=decision.address,
        reference=decision.reference,
        updated_at=moment(decision.updated_at or None),
    )


def _step(step: TraceStep) -> TraceStepOut:
    return TraceStepOut(
        rule=step.rule, channel=step.channel, outcome=step.outcome, detail=step.detail
    )


def notification_accepted(notification: Notification) -> NotificationAccepted:
    return NotificationAccepted(
        id=notification.id,
        decisions={channel: _decision(d) for channel, d in notification.decisions.items()},
    )


def notification_out(notification: Notification) -> NotificationOut:
    return NotificationOut(
        id=notification.id,
        recipient=notification.recipient_id,
        category=notification.category,
        template=notification.template,
        urgent=notification.urgent,
        created_at=moment(notification.created_at or None),
        status={channel: _status(d) for channel, d in notification.decisions.items()},
        trace=[_step(step) for step in notification.trace],
    )
