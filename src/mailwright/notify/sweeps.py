"""The timed work of the notification layer, one sweep at a time.

A sweep (:meth:`Sweeps.run_once`) does, in this order:

1. **recovery**: decisions stored as ``send`` but never handed over (a crash
   between the answer and the send) are sent; windows closed but not sent
   are sent;
2. **digests**: windows whose local digest time has come are closed
   atomically by the store and sent as one message each;
3. **held**: notifications held for quiet hours whose hold has ended are
   routed again with fresh facts (a withdrawal meanwhile stops them) and sent;
4. **permission**: for every address with consent to a commercial category,
   re-permission notices go out before expiry (once each), and at expiry or
   sunset an ``expire`` entry is appended to the ledger saying why.

``mailwright serve`` runs a sweep every ``[notify] sweep_interval`` in its
first process; tests call :meth:`run_once` with a virtual clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from mailwright.notify.consent import (
    consent_state,
    expiry_entry,
    repermission_due,
    sunset_due,
)
from mailwright.notify.dispatch import ChannelError
from mailwright.notify.model import (
    ALL_CATEGORIES,
    Actor,
    Basis,
    Category,
    ConsentEntry,
    ConsentSource,
    Notification,
)
from mailwright.notify.render import Links, RenderedEmail
from mailwright.notify.rules import route
from mailwright.notify.service import DAY, NotificationService

logger = logging.getLogger("mailwright.notify")

SYSTEM = Actor("system", "system")

#: Seconds a ``send`` decision stays ``pending`` before recovery sends it: long enough
#: for the dispatch that made it (in this process or another node) to finish, and the
#: pause before retrying a channel that was unavailable.
# TODO: a lease per decision would make recovery safe between nodes without
# relying on this grace; two nodes can still both pick up a decision older than it.
RECOVERY_GRACE = 10.0


@dataclass(slots=True)
class SweepReport:
    """What one sweep did, for logs and tests."""

    recovered: int = 0
    digests: int = 0
    released: int = 0
    notices: int = 0
    expired: int = 0


class Sweeps:
    """Runs the sweeps of one service (see the module docstring)."""

    def __init__(self, service: NotificationService, *, interval: float = 30.0) -> None:
        self.service = service
        self.store = service.store
        self.dispatcher = service.dispatcher
        self.interval = interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._recovered_once = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="notify-sweeps")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.dispatcher.drain()

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # logged and retried next time: the loop must keep going
                logger.exception("notify.sweep_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()

    async def run_once(self) -> SweepReport:
        """One sweep of every kind; waits for the sends it started."""
        report = SweepReport()
        report.recovered = await self._recover()
        report.digests = await self._digests()
        report.released = await self._release_held()
        report.notices, report.expired = await self._permission()
        await self.dispatcher.drain()
        if any((report.recovered, report.digests, report.released, report.notices)):
            logger.info(
                "notify.swept recovered=%d digests=%d released=%d notices=%d expired=%d",
                report.recovered, report.digests, report.released, report.notices,
                report.expired,
            )  # fmt: skip
        return report

    # -- 1 recovery ---------------------------------------------------------------------

    async def _recover(self) -> int:
        count = 0
        settled = self.service.clock() - RECOVERY_GRACE
        for notification in await self.store.pending():
            if any(
                d.action == "send" and d.state == "pending" and d.updated_at > settled
                for d in notification.decisions.values()
            ):
                continue  # being sent right now, here or by another node; or just failed
            before = len(self.dispatcher.in_flight)
            self.dispatcher.start_sends(notification)
            count += len(self.dispatcher.in_flight) - before
        newest = self.dispatcher.settings.digest_items
        now = self.service.clock()
        stale = now - RECOVERY_GRACE
        for window in await self.store.closed_windows(newest=newest, claimed_before=stale):
            if not await self.store.claim_window(window.id, now, stale):
                continue  # another sweeper took it first
            with contextlib.suppress(ChannelError):
                await self.dispatcher.send_digest(window)
                count += 1
        return count

    # -- 2 digests -------------------------------------------------------------------------

    async def _digests(self) -> int:
        sent = 0
        newest = self.dispatcher.settings.digest_items
        while True:
            windows = await self.store.close_due_windows(self.service.clock(), newest=newest)
            if not windows:
                return sent
            for window in windows:
                try:
                    await self.dispatcher.send_digest(window)
                except ChannelError as error:  # stays closed: recovery sends it next sweep
                    logger.warning("notify.digest_deferred window=%s error=%s", window.id, error)
                    continue
                sent += 1

    # -- 3 held notifications -----------------------------------------------------------------

    async def _release_held(self) -> int:
        released = 0
        now = self.service.clock()
        for notification in await self.store.due_held(now):
            await self._release(notification, now)
            released += 1
        return released

    async def _release(self, notification: Notification, now: float) -> None:
        """Route a held notification again, as it stands now, and act on the result."""
        facts = await self.store.routing_facts(
            notification.recipient_id, notification.category, now - DAY
        )
        held = [ch for ch, d in notification.decisions.items() if d.action == "hold"]
        if facts is None:
            for channel in held:
                decision = notification.decisions[channel]
                decision.action, decision.state = "skip", "skipped"
                await self.store.update_decision(
                    notification.id, decision, "released: recipient or category gone"
                )
            return
        routing = route(
            facts,
            urgent=notification.urgent,
            now=now,
            settings=self.service.settings.router,
            channels_available=self.dispatcher.channels,
        )
        for channel in held:
            fresh = routing.decisions.get(channel)
            decision = notification.decisions[channel]
            if fresh is None or fresh.action in ("skip", "digest"):
                # TODO: a held item whose channel became a digest meanwhile is
                # skipped rather than moved into the window; rare, and said in the trace.
                decision.action, decision.state = "skip", "skipped"
                reason = fresh.reason if fresh is not None else "channel no longer used"
                await self.store.update_decision(
                    notification.id, decision, f"released: not sent ({reason})"
                )
                continue
            decision.action = fresh.action
            decision.at = fresh.at
            decision.address = fresh.address
            decision.state = "held" if fresh.action == "hold" else "pending"
            await self.store.update_decision(
                notification.id,
                decision,
                "still held" if fresh.action == "hold" else "released after quiet hours",
            )
        self.dispatcher.start_sends(notification)

    # -- 4 re-permission, expiry, sunset ---------------------------------------------------

    # TODO: nothing is ever purged: sent digest windows and their items, notifications,
    # the audit log and the ledger grow for ever; a retention sweep (per table, with the
    # ledger kept as long as the law asks) belongs here.
    async def _permission(self) -> tuple[int, int]:
        commercial = [c for c in await self.store.list_categories() if c.commercial]
        if not commercial:
            return 0, 0
        notices = expired = 0
        now = self.service.clock()
        settings = self.service.settings
        names = [c.name for c in commercial]
        # TODO: this walks every address with commercial consent each sweep;
        # at millions of addresses it wants an index on the computed expiry instead.
        for address in await self.store.consent_addresses(names):
            entries = await self.store.consent_entries(address)
            engaged = await self.store.engagement(address)
            for category in commercial:
                relevant = [e for e in entries if e.category in (category.name, ALL_CATEGORIES)]
                if not any(e.action in ("grant", "confirm") for e in relevant):
                    continue  # never granted (for it or for "*"): nothing to renew or expire
                state = consent_state(
                    relevant, category, now=now, lifetimes=settings.lifetimes, engaged_at=engaged
                )
                if state.ended_by is not None:
                    continue  # withdrawn or already expired: the ledger says so
                if not state.live:
                    if state.expires_at is not None and now >= state.expires_at:
                        entry = expiry_entry(address, category.name, state, now)
                        await self.store.append_consent([entry], SYSTEM)
                        expired += 1
                    continue
                sunset = settings.router.sunset_after
                rested_on = state.renewed_at or state.since
                if sunset_due(engaged, rested_on, now=now, sunset_after=sunset):
                    await self.store.append_consent(
                        [_sunset_entry(address, category.name, state.basis, sunset or 0, now)],
                        SYSTEM,
                    )
                    expired += 1
                    continue
                kind = repermission_due(state, now=now, policy=settings.repermission)
                if kind is None or state.entry_id is None or state.expires_at is None:
                    continue
                # Keyed by the expiry too: an engagement that moves it starts a new cycle.
                # Recorded before sending, so a notice goes out at most once, even when
                # two sweeps race; a send that then fails is not retried (logged).
                once = f"{kind}@{int(state.expires_at)}"
                if not await self.store.record_notice(state.entry_id, once, now):
                    continue
                if await self._send_repermission(address, category, state.expires_at, kind):
                    notices += 1
        return notices, expired

    async def _send_repermission(
        self, address: str, category: Category, expires_at: float | None, kind: str
    ) -> bool:
        """The notice (or a reminder) asking to confirm a consent about to expire."""
        recipient_id = await self.store.recipient_of(address)
        if recipient_id is None or "@" not in address:
            # TODO: re-permission by SMS is not sent; texts asking to re-confirm
            # need carrier-approved wording, so numbers simply expire.
            return False
        recipient = await self.store.get_recipient(recipient_id)
        if recipient is None:
            return False
        confirm_url = self.service.link(
            "confirm", {"a": address, "c": category.name, "r": recipient_id}, "c"
        )
        links, token = self.dispatcher.links(recipient_id, category, address, "email")
        template = await self.dispatcher.template(self.service.settings.repermission_template)
        data = {
            "category": category.name,
            "description": category.description or category.name,
            "expires_at": expires_at,
            "confirm_url": confirm_url,
            "notice": kind,
        }
        if template is not None:
            rendered = self.dispatcher.renderer.email(template, data, links=links)
        else:
            rendered = _default_repermission(category, confirm_url, links, kind)
        try:
            await self.dispatcher.send_rendered_email(
                recipient, category, address, rendered, token=token,
                message_key=f"repermission.{kind}.{recipient_id}.{category.name}",
            )  # fmt: skip
        except ChannelError as error:
            logger.warning("notify.repermission_failed address=%s error=%s", address, error)
            return False
        logger.info(
            "notify.repermission_sent recipient=%s category=%s kind=%s",
            recipient_id, category.name, kind,
        )  # fmt: skip
        return True


def _sunset_entry(
    address: str, category: str, basis: Basis | None, sunset_after: float, now: float
) -> ConsentEntry:
    """The ``expire`` entry of the sunset rule: no engagement for too long."""
    return ConsentEntry(
        address=address,
        category=category,
        action="expire",
        at=now,
        source=ConsentSource("system", "sunset"),
        basis=basis,
        reason=f"sunset: no engagement for {int(sunset_after // DAY)} days",
        recorded_at=now,
        recorded_by="system",
    )


def _default_repermission(
    category: Category, confirm_url: str, links: Links, kind: str
) -> RenderedEmail:
    """The built-in re-permission mail, when the operator wrote no template for it."""
    what = category.description or category.name
    first = "" if kind == "notice" else "Reminder: "
    subject = f"{first}Do you still want {what}?"
    text = (
        f"You agreed to receive {what}. That permission expires soon.\n\n"
        f"To keep receiving it, confirm here:\n{confirm_url}\n\n"
        "If you do nothing, we will stop sending it.\n\n"
        f"Your preferences: {links.preferences_url}\n"
    )
    return RenderedEmail(subject=subject, text=text, html=None)
