"""The notification service: what the HTTP API, the pages, the MTA and the SMSC call.

:class:`NotificationService` owns the rules of the notification layer that are
not pure routing: checking input against what is stored (an address belongs to
its recipient, a consent entry has provenance, a preference names a cadence its
category allows), posting a notification (gather the facts, route, store,
dispatch), and acting on what recipients say (one-click, mailto, SMS keywords,
the preference centre). Routing itself is :func:`mailwright.notify.rules.route`;
sending is :class:`mailwright.notify.dispatch.Dispatcher`; the timed work
(digests, held notifications, re-permission, expiry) is
:mod:`mailwright.notify.sweeps`.

Every change goes through the store with an :class:`~mailwright.notify.model.Actor`,
so the audit log says who, when and through what.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from mailwright.notify import validate
from mailwright.notify.consent import (
    Lifetimes,
    RepermissionPolicy,
    consent_state,
    provenance_gap,
)
from mailwright.notify.dispatch import Dispatcher
from mailwright.notify.errors import (
    FieldError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    ProvenanceRequired,
)
from mailwright.notify.model import (
    ALL_CATEGORIES,
    Actor,
    AuditEntry,
    Category,
    Channel,
    ChannelPreference,
    ConsentEntry,
    ConsentSource,
    Notification,
    Preferences,
    Recipient,
    SourceKind,
    Suppression,
    Template,
)
from mailwright.notify.render import Renderer
from mailwright.notify.rules import RouterSettings, route
from mailwright.notify.store.base import DigestItem, NotifyStore
from mailwright.notify.tokens import TokenBox

logger = logging.getLogger("mailwright.notify")

#: The span frequency caps and the automatic digest count over: a rolling day.
DAY = 86400.0

#: The history the preference centre's expected volume is computed from.
VOLUME_WINDOW = 28 * DAY

#: The ledger sources a caller of the API may record; the others (keywords, one-click,
#: mailto, re-permission, the preference centre) are mailwright's own, with its proof.
CALLER_SOURCES = ("form", "api", "import")

#: What a decision's action leaves its channel's state at before dispatch.
_STATE_OF_ACTION = {"send": "pending", "digest": "buffered", "hold": "held", "skip": "skipped"}


@dataclass(frozen=True, slots=True)
class ConsentView:
    """One category's consent on one address, for the preference centre and the API."""

    address: str
    category: str
    live: bool
    basis: str | None
    since: float | None
    expires_at: float | None
    reason: str


@dataclass(frozen=True)
class ServiceSettings:
    """What the service needs from ``[notify]``, ``[http]`` and ``[sms]``."""

    router: RouterSettings = field(default_factory=RouterSettings)
    public_url: str = "http://127.0.0.1:8025"
    link_lifetime: float = 365 * DAY
    max_data: int = 32 * 1024
    repermission: RepermissionPolicy = field(default_factory=RepermissionPolicy)
    repermission_template: str = "repermission"

    @property
    def lifetimes(self) -> Lifetimes:
        return self.router.lifetimes


class NotificationService:
    """The notification layer's operations (see the module docstring)."""

    def __init__(
        self,
        store: NotifyStore,
        *,
        tokens: TokenBox,
        dispatcher: Dispatcher,
        settings: ServiceSettings | None = None,
        renderer: Renderer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.dispatcher = dispatcher
        self.settings = settings or ServiceSettings()
        self.renderer = renderer or dispatcher.renderer
        self.clock = clock
        self.public_url = self.settings.public_url
        self.events = dispatcher.events

    # -- categories and templates ------------------------------------------------------

    async def put_category(self, category: Category, actor: Actor) -> bool:
        """Validate and store a category; True when created. InvalidInput names the field."""
        category = validate.category(category)
        category.updated_at = self.clock()
        return await self.store.put_category(category, actor)

    async def list_categories(self) -> list[Category]:
        return await self.store.list_categories()

    async def put_template(self, template: Template, actor: Actor) -> bool:
        """Compile-check and store a template; True when created."""
        validate.name(template.name, "/name")
        self.renderer.check(template)
        return await self.store.put_template(replace(template, updated_at=self.clock()), actor)

    # -- recipients -------------------------------------------------------------------

    async def put_recipient(self, recipient: Recipient, actor: Actor) -> bool:
        """Validate (E.164, time zone, locale, emails) and store; True when created."""
        recipient = validate.recipient(recipient)
        now = self.clock()
        existing = await self.store.get_recipient(recipient.id)
        recipient.created_at = existing.created_at if existing is not None else now
        recipient.updated_at = now
        return await self.store.put_recipient(recipient, actor)

    async def get_recipient(self, recipient_id: str) -> Recipient:
        """The recipient; NotFound when unknown."""
        recipient = await self.store.get_recipient(recipient_id)
        if recipient is None:
            raise NotFound(f"no recipient {recipient_id!r}")
        return recipient

    # -- consent ----------------------------------------------------------------------

    async def record_consent(
        self, recipient_id: str, entries: list[ConsentEntry], actor: Actor
    ) -> list[str]:
        """Append ledger entries after checking provenance; their ids.

        Each entry's address must belong to the recipient and its category must
        exist (or be ``*``). Grants without provenance raise ProvenanceRequired
        naming the entry (``/entries/3/source``); nothing is stored then.
        """
        recipient = await self.get_recipient(recipient_id)
        entries = validate.consent_entries(entries)
        addresses = set(recipient.addresses)
        categories = {c.name for c in await self.store.list_categories()}
        now = self.clock()
        errors: list[FieldError] = []
        refused: list[FieldError] = []
        for index, entry in enumerate(entries):
            where = f"/entries/{index}"
            if entry.address not in addresses:
                errors.append(
                    FieldError(f"{where}/address", f"{entry.address!r} is not {recipient_id}'s")
                )
            if entry.category != ALL_CATEGORIES and entry.category not in categories:
                errors.append(FieldError(f"{where}/category", f"no category {entry.category!r}"))
            if entry.at > now + 300:
                errors.append(FieldError(f"{where}/at", "consent cannot be given in the future"))
            lifetime = self.settings.lifetimes.of(entry.basis) if entry.basis else None
            latest = entry.at + lifetime if lifetime is not None else None
            if entry.expires_at is not None and latest is not None and entry.expires_at > latest:
                days = int((latest - entry.at) // DAY)
                errors.append(
                    FieldError(
                        f"{where}/expires_at",
                        f"beyond the {days}-day lifetime of {entry.basis} consent",
                    )
                )
            if entry.source.kind not in CALLER_SOURCES:
                allowed = ", ".join(CALLER_SOURCES)
                errors.append(
                    FieldError(
                        f"{where}/source/kind",
                        f"{entry.source.kind!r} entries are written by mailwright itself;"
                        f" a caller records {allowed}",
                    )
                )
            if entry.action in ("grant", "confirm"):
                gap = provenance_gap(entry)
                if gap is not None:
                    refused.append(FieldError(f"{where}{gap.pointer}", gap.detail))
            if entry.action == "expire":
                errors.append(
                    FieldError(f"{where}/action", "expiry is recorded by mailwright itself")
                )
        if refused:
            raise ProvenanceRequired(
                "consent needs provenance: the source, the wording shown and evidence;"
                " addresses without it (bought, appended or imported blind) are refused",
                tuple(refused),
            )
        if errors:
            raise InvalidInput(errors[0].detail, tuple(errors))

        stamped = [replace(entry, recorded_at=now, recorded_by=actor.actor) for entry in entries]
        return await self.store.append_consent(stamped, actor)

    async def consent_view(self, recipient_id: str) -> list[ConsentView]:
        """The live-or-not consent of every address and category of a recipient."""
        recipient = await self.get_recipient(recipient_id)
        categories = await self.store.list_categories()
        now = self.clock()
        views: list[ConsentView] = []
        for address in recipient.addresses:
            entries = await self.store.consent_entries(address)
            engaged = await self.store.engagement(address)
            for category in categories:
                relevant = [e for e in entries if e.category in (category.name, ALL_CATEGORIES)]
                state = consent_state(
                    relevant,
                    category,
                    now=now,
                    lifetimes=self.settings.lifetimes,
                    engaged_at=engaged,
                )
                views.append(
                    ConsentView(
                        address=address,
                        category=category.name,
                        live=state.live,
                        basis=state.basis,
                        since=state.since,
                        expires_at=state.expires_at,
                        reason=state.reason,
                    )
                )
        return views

    async def audit(self, recipient_id: str, limit: int = 200) -> list[AuditEntry]:
        """The newest changes to a recipient and to each of its addresses, newest first."""
        recipient = await self.get_recipient(recipient_id)
        subjects = [f"recipient:{recipient_id}", *(f"address:{a}" for a in recipient.addresses)]
        entries: list[AuditEntry] = []
        for subject in subjects:
            entries += await self.store.audit_log(subject, limit)
        entries.sort(key=lambda entry: entry.at, reverse=True)
        return entries[:limit]

    # -- preferences ------------------------------------------------------------------

    async def get_preferences(self, recipient_id: str) -> Preferences:
        """NotFound for an unknown recipient."""
        await self.get_recipient(recipient_id)
        return await self.store.get_preferences(recipient_id)

    async def put_preferences(
        self, preferences: Preferences, actor: Actor, *, replace: bool = False
    ) -> Preferences:
        """Validate against the categories (cadence allowed, must-send) and store."""
        await self.get_recipient(preferences.recipient_id)
        preferences = validate.preferences(preferences)
        categories = {c.name: c for c in await self.store.list_categories()}
        errors: list[FieldError] = []
        now = self.clock()
        for (name, channel), choice in preferences.channels.items():
            where = f"/channels/{name}/{channel}"
            category = categories.get(name)
            if category is None:
                errors.append(FieldError(f"/channels/{name}", f"no category {name!r}"))
                continue
            if channel not in category.defaults:
                errors.append(FieldError(where, f"{name} is not sent by {channel}"))
            elif choice.cadence not in category.cadences:
                allowed = ", ".join(category.cadences)
                detail = f"{name} allows {allowed}, not {choice.cadence}"
                errors.append(FieldError(f"{where}/cadence", detail))
            elif choice.cadence == "off" and not category.opt_out:
                errors.append(
                    FieldError(f"{where}/cadence", f"{name} is must-send and cannot be turned off")
                )
            choice.updated_at = now
        if errors:
            raise InvalidInput(errors[0].detail, tuple(errors))
        preferences.updated_at = now
        return await self.store.put_preferences(preferences, actor, replace=replace)

    async def expected_volume(self, recipient_id: str) -> dict[tuple[str, Channel], float]:
        """Messages a week per category and channel, from the last 28 days' history."""
        since = self.clock() - VOLUME_WINDOW
        history = await self.store.send_history(recipient_id, since)
        weeks = VOLUME_WINDOW / (7 * DAY)
        return {key: count / weeks for key, count in history.items()}

    # -- notifications ----------------------------------------------------------------

    async def notify(
        self,
        recipient_id: str,
        category: str,
        template: str,
        data: dict[str, Any],
        *,
        actor: Actor,
        urgent: bool = False,
        idempotency_key: str | None = None,
    ) -> Notification:
        """Route, store and dispatch a notification; its decisions per channel.

        The answer comes once the notification and its decisions are stored;
        sending runs after it (a crash in between leaves the decision
        ``pending``, which the sweeps pick up). Posting again with the same
        ``idempotency_key`` returns the first notification and sends nothing.
        """
        size = len(json.dumps(data, separators=(",", ":"), default=str))
        if size > self.settings.max_data:
            raise PayloadTooLarge(
                f"data is {size} bytes of JSON, more than the {self.settings.max_data} allowed",
                (FieldError("/data", f"at most {self.settings.max_data} bytes"),),
            )
        now = self.clock()
        facts = await self.store.routing_facts(recipient_id, category, now - DAY)
        if facts is None:
            if await self.store.get_recipient(recipient_id) is None:
                raise NotFound(
                    f"no recipient {recipient_id!r}",
                    (FieldError("/recipient", "unknown recipient"),),
                )
            raise NotFound(
                f"no category {category!r}", (FieldError("/category", "unknown category"),)
            )
        if await self.dispatcher.template(template) is None:
            raise NotFound(
                f"no template {template!r}", (FieldError("/template", "unknown template"),)
            )

        routing = route(
            facts,
            urgent=urgent,
            now=now,
            settings=self.settings.router,
            channels_available=self.dispatcher.channels,
        )
        notification = Notification(
            id=uuid.uuid4().hex,
            recipient_id=recipient_id,
            category=category,
            template=template,
            data=data,
            urgent=urgent,
            created_at=now,
            idempotency_key=idempotency_key,
            decisions={},
            trace=list(routing.trace),
        )
        digest: list[DigestItem] = []
        for channel, decision in routing.decisions.items():
            decision.state = _STATE_OF_ACTION[decision.action]  # type: ignore[assignment]
            decision.updated_at = now
            notification.decisions[channel] = decision
            if decision.action == "digest":
                digest.append(
                    DigestItem(
                        notification_id=notification.id,
                        recipient_id=recipient_id,
                        category=category,
                        channel=channel,
                        created_at=now,
                        template=template,
                        due_at=decision.at if decision.at is not None else now,
                        data=data,
                    )
                )

        stored = await self.store.add_notification(notification, digest)
        if stored.id != notification.id:
            return stored  # a repeat of an earlier post: nothing new to do

        if routing.auto_digest:
            await self._switch_to_auto_digest(facts.preferences, category, routing.auto_digest)
        logger.info(
            "notify.routed id=%s recipient=%s category=%s %s",
            notification.id, recipient_id, category,
            " ".join(f"{ch}={d.action}" for ch, d in notification.decisions.items()),
        )  # fmt: skip
        if self.events is not None:
            self.events(
                "notification_routed",
                notification=notification.id, recipient=recipient_id, category=category,
                decisions={ch: d.action for ch, d in notification.decisions.items()},
            )  # fmt: skip
        self.dispatcher.start_sends(notification)
        return notification

    async def _switch_to_auto_digest(
        self, preferences: Preferences, category: str, channels: tuple[Channel, ...]
    ) -> None:
        """Store the daily digest the automatic rule chose, marked so one click reverts it."""
        now = self.clock()
        change = Preferences(recipient_id=preferences.recipient_id)
        for channel in channels:
            change.channels[(category, channel)] = ChannelPreference(
                category=category, channel=channel, cadence="daily", auto=True, updated_at=now
            )
        await self.store.put_preferences(
            change, Actor("system", "auto_digest"), channels_only=True
        )
        logger.info(
            "notify.auto_digest recipient=%s category=%s channels=%s",
            preferences.recipient_id, category, ",".join(channels),
        )  # fmt: skip

    async def delivery_outcome(
        self,
        notification_id: str,
        address: str,
        *,
        delivered: bool,
        expired: bool,
        reply: dict[str, Any],
    ) -> None:
        """What the MTA's delivery agent reported for a notification's email.

        A permanent failure saying the mailbox does not exist (5.1.x) suppresses
        the address for all mail: sending again would only hurt our reputation.
        """
        notification = await self.store.get_notification(notification_id)
        if notification is None or "email" not in notification.decisions:
            return
        decision = notification.decisions["email"]
        decision.state = "delivered" if delivered else ("expired" if expired else "failed")
        decision.updated_at = self.clock()
        text = f"{reply.get('code', '')} {reply.get('status') or ''} {reply.get('text', '')}"
        await self.store.update_decision(
            notification_id, decision, f"MTA: {' '.join(text.split())}"
        )
        status = str(reply.get("status") or "")
        address = decision.address or address  # the stored form, as the ledger keys it
        if not delivered and not expired and status.startswith("5.1.") and address:
            suppression = Suppression(address, f"hard bounce {status}", self.clock(), True)
            await self.store.suppress(suppression, Actor("system", "bounce"))
            logger.info("notify.suppressed address=%s reason=%s", address, suppression.reason)

    async def get_notification(self, notification_id: str) -> Notification:
        notification = await self.store.get_notification(notification_id)
        if notification is None:
            raise NotFound(f"no notification {notification_id!r}")
        return notification

    # -- what recipients say ----------------------------------------------------------

    async def unsubscribe(self, token: str, *, via: str) -> tuple[str, str]:
        """Act on a one-click token (opaque, signed); (recipient id, category) it stopped.

        InvalidToken for a forged or expired one. The withdrawal is in the
        ledger (for a commercial category) and the channel's preference is
        off (for an opt-out one) before this returns, so the next send sees it.
        """
        claims = self.tokens.open("unsubscribe", token, now=self.clock())
        recipient_id, category, address = str(claims["r"]), str(claims["c"]), str(claims["a"])
        channel: Channel = "sms" if claims.get("ch") == "sms" else "email"
        await self.stop_category(recipient_id, category, address, channel, via=via)
        return recipient_id, category

    async def stop_category(
        self, recipient_id: str, category_name: str, address: str, channel: Channel, *, via: str
    ) -> None:
        """Withdraw consent for a category on an address and turn its channel off."""
        now = self.clock()
        actor = Actor("recipient", via)
        category = await self.store.get_category(category_name)
        withdrawal = ConsentEntry(
            address=address,
            category=category_name,
            action="withdraw",
            at=now,
            source=ConsentSource(_source_kind(via), reference=via),
            reason=f"unsubscribed via {via.replace('_', '-')}",
            recorded_at=now,
            recorded_by="recipient",
        )
        await self.store.append_consent([withdrawal], actor)
        if category is not None and category.opt_out and channel in category.defaults:
            change = Preferences(recipient_id=recipient_id)
            change.channels[(category_name, channel)] = ChannelPreference(
                category=category_name, channel=channel, cadence="off", updated_at=now
            )
            await self.store.put_preferences(change, actor, channels_only=True)
        if self.events is not None:
            self.events(
                "unsubscribed", recipient=recipient_id, category=category_name,
                channel=channel, via=via,
            )  # fmt: skip
        logger.info(
            "notify.unsubscribed recipient=%s category=%s channel=%s via=%s",
            recipient_id, category_name, channel, via,
        )  # fmt: skip

    async def revert_auto_digest(self, token: str) -> tuple[str, str, Channel]:
        """Switch an automatic digest back to instant, from the digest's link."""
        claims = self.tokens.open("revert", token, now=self.clock())
        recipient_id, category = str(claims["r"]), str(claims["c"])
        channel: Channel = "sms" if claims.get("ch") == "sms" else "email"
        change = Preferences(recipient_id=recipient_id)
        # auto=False and an explicit instant: the automatic rule leaves an explicit choice be.
        change.channels[(category, channel)] = ChannelPreference(
            category=category, channel=channel, cadence="instant", updated_at=self.clock()
        )
        await self.store.put_preferences(
            change, Actor("recipient", "revert_link"), channels_only=True
        )
        return recipient_id, category, channel

    async def confirm_consent(
        self, token: str, *, ip: str | None, user_agent: str | None
    ) -> tuple[str, bool]:
        """A re-permission link clicked and confirmed: (category, whether it is live now).

        Appends a ``confirm`` entry, with the click as its evidence, unless the
        person withdrew meanwhile: a re-permission link cannot undo a no.
        """
        from mailwright.notify.model import Evidence

        now = self.clock()
        claims = self.tokens.open("confirm", token, now=now)
        address, name = str(claims["a"]), str(claims["c"])
        entries = await self.store.consent_entries(address, name)
        if any(e.action == "withdraw" for e in entries[-1:]):
            return name, False
        entry = ConsentEntry(
            address=str(claims["a"]),
            category=str(claims["c"]),
            action="confirm",
            at=now,
            source=ConsentSource("repermission", reference=str(claims.get("e", ""))),
            basis="consent",
            wording=str(claims.get("w", "")) or "Yes, keep sending me these messages",
            wording_version=str(claims.get("v", "repermission-1")),
            evidence=Evidence(ip=ip, user_agent=user_agent, confirmed_at=now),
            recorded_at=now,
            recorded_by="recipient",
        )
        await self.store.append_consent([entry], Actor("recipient", "repermission"))
        await self.store.record_engagement(entry.address, now)
        category = await self.store.get_category(name)
        if category is None:
            return name, False
        state = consent_state(
            [*entries, entry], category, now=now, lifetimes=self.settings.lifetimes,
            engaged_at=now,
        )  # fmt: skip
        return name, state.live

    def link(self, purpose: str, claims: dict[str, str | int | float | bool], path: str) -> str:
        """A signed link to one of our pages (``/p``, ``/u``, ``/r``, ``/c``)."""
        token = self.tokens.seal(
            purpose, claims, now=self.clock(), ttl=self.settings.link_lifetime
        )
        return f"{self.public_url}/{path}/{token}"


def _source_kind(via: str) -> SourceKind:
    """The ledger's source kind for a way of unsubscribing."""
    kinds: dict[str, SourceKind] = {
        "one_click": "one_click",
        "mailto": "mailto",
        "sms_keyword": "sms_keyword",
        "preference_centre": "preference_centre",
    }
    return kinds.get(via, "system")


__all__ = ["ConsentView", "NotificationService", "ServiceSettings"]
