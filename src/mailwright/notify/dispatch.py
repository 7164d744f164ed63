"""Sending what the router decided: render, check once more, hand to the channel.

:class:`Dispatcher` turns a ``send`` decision into an email injected into the
MTA queue or a text handed to the SMSC, and a closed digest window into one
message. Just before handing over it checks the recipient's permission again
(:func:`mailwright.notify.enforce.refusal`), so a one-click unsubscribe or a
STOP that arrived after routing still stops the message: that check is the
send-time enforcement.

The channels are seams: :class:`EmailSender` and :class:`SmsSender` are
protocols; ``mailwright serve`` gives the MTA's injector and the SMPP
gateway, tests may give anything that speaks them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mailwright.notify.consent import Lifetimes
from mailwright.notify.email import build_message, mailto_uri
from mailwright.notify.enforce import refusal
from mailwright.notify.model import (
    Category,
    Channel,
    ChannelDecision,
    Notification,
    Recipient,
    Template,
)
from mailwright.notify.render import Links, RenderedEmail, Renderer
from mailwright.notify.store.base import DigestWindow, NotifyStore, SmsMessage
from mailwright.notify.tokens import TokenBox

logger = logging.getLogger("mailwright.notify")

#: Seconds a template stays cached before it is looked up again (edits show up after it).
TEMPLATE_TTL = 5.0


class ChannelError(Exception):
    """A channel could not take a message; ``permanent`` when retrying cannot help."""

    def __init__(self, detail: str, *, permanent: bool = False) -> None:
        super().__init__(detail)
        self.permanent = permanent


class EventSink(Protocol):
    """Where the layer's events go (``EventLog.emit``: the seam webhooks will use)."""

    def __call__(self, event: Any, **fields: Any) -> None: ...


class EmailSender(Protocol):
    """Queues one message for one recipient; returns a reference (the queue's answer)."""

    async def __call__(self, sender: str, recipient: str, content: bytes) -> str: ...


class SmsSender(Protocol):
    """Hands one text to the SMSC; returns the message ids of its segments."""

    async def send(self, to: str, text: str) -> list[str]: ...


@dataclass(frozen=True)
class DispatchSettings:
    """Where messages come from and where their links point."""

    from_address: str
    hostname: str
    public_url: str
    unsubscribe_address: str | None = None
    link_lifetime: float = 365 * 86400.0
    digest_items: int = 10


class Dispatcher:
    """Renders and sends notifications, digests and notices (see the module docstring)."""

    def __init__(
        self,
        store: NotifyStore,
        tokens: TokenBox,
        settings: DispatchSettings,
        *,
        lifetimes: Lifetimes,
        email: EmailSender | None = None,
        sms: SmsSender | None = None,
        renderer: Renderer | None = None,
        clock: Callable[[], float] = time.time,
        events: EventSink | None = None,
    ) -> None:
        self.events = events
        self.store = store
        self.tokens = tokens
        self.settings = settings
        self.lifetimes = lifetimes
        self.email = email
        self.sms = sms
        self.renderer = renderer or Renderer()
        self.clock = clock
        self._templates: dict[str, tuple[float, Template | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.in_flight: set[tuple[str, Channel]] = set()

    @property
    def channels(self) -> frozenset[Channel]:
        """The channels this server can send on."""
        available: set[Channel] = set()
        if self.email is not None:
            available.add("email")
        if self.sms is not None:
            available.add("sms")
        return frozenset(available)

    async def template(self, name: str) -> Template | None:
        """A template by name, cached for :data:`TEMPLATE_TTL` seconds."""
        now = time.monotonic()
        cached = self._templates.get(name)
        if cached is not None and now - cached[0] < TEMPLATE_TTL:
            return cached[1]
        template = await self.store.get_template(name)
        self._templates[name] = (now, template)
        return template

    def forget_template(self, name: str) -> None:
        self._templates.pop(name, None)

    # -- links --------------------------------------------------------------------------

    def _link(self, purpose: str, claims: dict[str, str | int | float | bool], path: str) -> str:
        token = self.tokens.seal(
            purpose, claims, now=self.clock(), ttl=self.settings.link_lifetime
        )
        return f"{self.settings.public_url}/{path}/{token}"

    def links(
        self,
        recipient_id: str,
        category: Category,
        address: str,
        channel: Channel,
        *,
        revert: bool = False,
    ) -> tuple[Links, str | None]:
        """The links of a message, and its unsubscribe token (None for must-send mail)."""
        unsubscribe_url = token = None
        if category.opt_out:
            claims: dict[str, str | int | float | bool] = {
                "r": recipient_id, "c": category.name, "a": address, "ch": channel,
            }  # fmt: skip
            token = self.tokens.seal(
                "unsubscribe", claims, now=self.clock(), ttl=self.settings.link_lifetime
            )
            unsubscribe_url = f"{self.settings.public_url}/u/{token}"
        revert_url = None
        if revert:
            claims = {"r": recipient_id, "c": category.name, "ch": channel}
            revert_url = self._link("revert", claims, "r")
        links = Links(
            preferences_url=self._link("preferences", {"r": recipient_id}, "p"),
            unsubscribe_url=unsubscribe_url,
            revert_url=revert_url,
        )
        return links, token

    # -- notifications --------------------------------------------------------------------

    def start_sends(self, notification: Notification) -> None:
        """Send every ``pending`` channel of a notification in the background."""
        for channel, decision in notification.decisions.items():
            if decision.action != "send" or decision.state != "pending":
                continue
            key = (notification.id, channel)
            if key in self.in_flight:
                continue
            self.in_flight.add(key)
            task = asyncio.create_task(self._send_guarded(notification, channel))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the sends in progress (at shutdown, and in tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _send_guarded(self, notification: Notification, channel: Channel) -> None:
        try:
            await self.send(notification, channel)
        except Exception:  # a bug must not kill the loop: the decision stays pending
            logger.exception("notify.send_failed id=%s channel=%s", notification.id, channel)
        finally:
            self.in_flight.discard((notification.id, channel))

    async def send(self, notification: Notification, channel: Channel) -> ChannelDecision:
        """Send one channel of a notification and record how it went."""
        decision = notification.decisions[channel]
        recipient = await self.store.get_recipient(notification.recipient_id)
        category = await self.store.get_category(notification.category)
        template = await self.template(notification.template)
        address = decision.address
        if recipient is None or category is None or template is None or address is None:
            return await self._finish(notification, decision, "failed", "recipient, category"
                                      " or template no longer exists")  # fmt: skip

        # TODO: right after routing this repeats reads routing_facts made moments ago
        # (suppression, consent, engagement); worth skipping for a send dispatched within
        # a second or so, once a store change can be seen to have happened in between.
        why_not = await refusal(
            self.store, address, category, now=self.clock(), lifetimes=self.lifetimes
        )
        if why_not is not None:
            decision.action = "skip"
            return await self._finish(notification, decision, "skipped", f"at send: {why_not}")

        try:
            if channel == "email":
                reference = await self._send_email(
                    notification.id, recipient, category, template, address, notification.data
                )
            else:
                reference = await self._send_sms(
                    notification.id, recipient, category, template, address, notification.data
                )
        except ChannelError as error:
            state = "failed" if error.permanent else "pending"
            if not error.permanent:  # retried by the pending sweep, after its grace
                decision.updated_at = self.clock()
                await self.store.update_decision(
                    notification.id, decision, note=f"{channel} unavailable: {error}"
                )
                return decision
            return await self._finish(notification, decision, state, f"{channel}: {error}")
        # TODO: at least once, not exactly once: a crash after the queue's fsync
        # and before this commit sends the notification again at restart. The Message-ID
        # is the notification's id, so receivers can tell; an idempotent injection (the
        # spool refusing a second message with that id) would close the gap.
        decision.reference = reference
        return await self._finish(notification, decision, "queued", f"handed to {channel}")

    async def _finish(
        self, notification: Notification, decision: ChannelDecision, state: str, note: str
    ) -> ChannelDecision:
        decision.state = state  # type: ignore[assignment]
        decision.updated_at = self.clock()
        await self.store.update_decision(notification.id, decision, note=note)
        if self.events is not None:
            self.events(
                "notification_dispatched",
                notification=notification.id, channel=decision.channel, state=state,
                reference=decision.reference, note=note,
            )  # fmt: skip
        logger.info(
            "notify.dispatched id=%s channel=%s state=%s note=%s",
            notification.id, decision.channel, state, note,
        )  # fmt: skip
        return decision

    async def _send_email(
        self,
        notification_id: str,
        recipient: Recipient,
        category: Category,
        template: Template,
        address: str,
        data: dict[str, object],
    ) -> str:
        links, token = self.links(recipient.id, category, address, "email")
        rendered = self.renderer.email(template, dict(data), links=links)
        return await self.send_rendered_email(
            recipient, category, address, rendered, token=token, message_key=notification_id
        )

    async def send_rendered_email(
        self,
        recipient: Recipient,
        category: Category,
        address: str,
        rendered: RenderedEmail,
        *,
        token: str | None,
        message_key: str,
    ) -> str:
        """Build the message (List-Unsubscribe for opt-out categories) and queue it."""
        if self.email is None:
            raise ChannelError("no email channel", permanent=True)
        mailto = None
        if token is not None and self.settings.unsubscribe_address is not None:
            mailto = mailto_uri(self.settings.unsubscribe_address, token)
        content = build_message(
            from_addr=self.settings.from_address,
            to=address,
            rendered=rendered,
            message_id=f"<{message_key}@{self.settings.hostname}>",  # stable across retries
            now=self.clock(),
            list_id=f"{category.name}.{self.settings.hostname}" if category.opt_out else None,
            unsubscribe_https=f"{self.settings.public_url}/u/{token}" if token else None,
            unsubscribe_mailto=mailto,
        )
        return await self.email(self.settings.from_address, address, content)

    async def _send_sms(
        self,
        notification_id: str,
        recipient: Recipient,
        category: Category,
        template: Template,
        address: str,
        data: dict[str, object],
    ) -> str:
        if self.sms is None:
            raise ChannelError("no SMS channel", permanent=True)
        links, _ = self.links(recipient.id, category, address, "sms")
        text = self.renderer.sms(template, dict(data), links=links)
        return await self.send_text(address, text, notification_id)

    async def send_text(self, address: str, text: str, notification_id: str | None) -> str:
        """Send a text and remember its segments' ids for the delivery receipts."""
        if self.sms is None:
            raise ChannelError("no SMS channel", permanent=True)
        message_ids = await self.sms.send(address, text)
        await self.store.add_sms(
            SmsMessage(notification_id, address, tuple(message_ids), "queued", self.clock())
        )
        return ",".join(message_ids)

    # -- digests ----------------------------------------------------------------------------

    async def send_digest(self, window: DigestWindow) -> str:
        """Render and send a closed window as one message; returns the outcome."""
        recipient = await self.store.get_recipient(window.recipient_id)
        category = await self.store.get_category(window.category)
        if recipient is None or category is None:
            await self.store.mark_window_sent(window.id, "dropped: recipient or category gone")
            return "dropped"
        address = _address_for(recipient, window.channel)
        why_not = (
            "no address on this channel"
            if address is None
            else await refusal(
                self.store, address, category, now=self.clock(), lifetimes=self.lifetimes
            )
        )
        if why_not is None:
            preferences = await self.store.get_preferences(recipient.id)
            choice = preferences.get(category.name, window.channel)
            if choice is not None and choice.cadence == "off" and category.opt_out:
                why_not = f"{window.channel} turned off for {category.name}"
            elif category.commercial and preferences.stop_commercial:
                why_not = "the recipient stopped all commercial messages"
            elif (
                category.opt_out
                and preferences.paused_until is not None
                and preferences.paused_until > self.clock()
            ):
                why_not = "the recipient paused messages"
        if why_not is not None or address is None:
            await self.store.mark_window_sent(window.id, f"skipped: {why_not}")
            logger.info("notify.digest_skipped window=%s reason=%s", window.id, why_not)
            return "skipped"

        templates: dict[str, Template] = {}
        for item in window.items:
            found = await self.template(item.template)
            if found is not None:
                templates[item.template] = found
        links, token = self.links(
            recipient.id, category, address, window.channel, revert=window.auto
        )
        try:
            if window.channel == "email":
                rendered = self.renderer.digest_email(
                    category, window.items, window.count, templates,
                    links=links, auto=window.auto, locale=recipient.locale,
                )  # fmt: skip
                reference = await self.send_rendered_email(
                    recipient, category, address, rendered, token=token, message_key=window.id
                )
            else:
                text = self.renderer.digest_sms(
                    category, window.items, window.count, templates,
                    links=links, auto=window.auto, locale=recipient.locale,
                )  # fmt: skip
                reference = await self.send_text(address, text, None)
        except ChannelError as error:
            if not error.permanent:
                raise  # the window stays closed; the sweep retries it
            await self.store.mark_window_sent(window.id, f"failed: {error}")
            return "failed"
        await self.store.mark_window_sent(window.id, reference)
        logger.info(
            "notify.digest_sent window=%s recipient=%s category=%s count=%d",
            window.id, recipient.id, category.name, window.count,
        )  # fmt: skip
        return "sent"


def _address_for(recipient: Recipient, channel: Channel) -> str | None:
    addresses = recipient.phones if channel == "sms" else recipient.emails
    return addresses[0] if addresses else None


__all__ = [
    "ChannelError",
    "DispatchSettings",
    "Dispatcher",
    "EmailSender",
    "EventSink",
    "SmsSender",
]
