"""The delivery agent: due work in the spool becomes deliveries, outcomes and bounces.

Theory of operation. One *claim loop* asks the spool for recipients that are
due (an index range scan, never a scan of the whole queue), groups each claimed
message's recipients by destination (their route, or their domain for MX
delivery) and files one :class:`WorkItem` per message and destination into
:class:`~mailwright.queue.active.ActiveQueues`. For every destination with work
and a free connection slot a *worker* task takes a batch, finds the next hop,
opens one connection and delivers the batch's messages on it one after another
(connection reuse), then gives the slot back; the queues' limits bound the
connections per destination and in total. Each attempt is settled by
:mod:`mailwright.delivery.outcomes` and written back to the spool in one
transaction together with its bounces; the spool's group commit batches those
writes with incoming messages.

The agent holds at most ``max_active`` recipients in memory; everything else
stays on disk, which is why a million queued messages cost almost no memory.
Whether the agent runs in the receiving process or its own is the caller's
choice: new work is found by polling the spool as well as by its wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import dns.asyncresolver

from mailwright.delivery.cache import ConnectionCache
from mailwright.delivery.maildir import MaildirDelivery
from mailwright.delivery.nexthop import ConnectSettings, HopFailure, connect, find_hops
from mailwright.delivery.outcomes import (
    OutcomePolicy,
    Settled,
    dsn_received_fields,
    needs_content,
    settle,
)
from mailwright.delivery.smtp import ConnectionLost, SmtpConnection, SmtpDeliveryError
from mailwright.dns.mx import NextHop
from mailwright.envelope import Envelope, Recipient
from mailwright.errors import RouteError
from mailwright.events import EventLog, EventName
from mailwright.queue.active import ActiveQueues
from mailwright.routes import Route, RouteTable, parse_route
from mailwright.smtp.replies import Reply
from mailwright.spool import Claimed, ClaimedRecipient, MessageNotFoundError, Spool

logger = logging.getLogger("mailwright.delivery")

LOCAL_FAILURE = Reply(451, "4.3.0", "Local error in delivery")

#: Messages a worker takes for one destination at a time (see ActiveQueues).
DISPATCH_BATCH = 4


@dataclass(frozen=True, slots=True)
class WorkItem:
    """The recipients of one claimed message that share one destination."""

    claimed: Claimed
    recipients: tuple[ClaimedRecipient, ...]
    route: Route
    domain: str
    content: bytes | None = None  # in memory when handed over by reception


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """Limits of the agent (see docs/configuration.md, ``[queue]``)."""

    max_active: int = 20_000
    max_held_bytes: int = 64 * 1024 * 1024  # content of handed-over messages in memory
    # Claims are written on the event loop: a hundred scattered rows of a cold
    # million-message spool take about 8 ms to mark, a thousand about 80 ms.
    claim_batch: int = 100
    poll_interval: float = 1.0
    connections_per_destination: int = 20
    messages_per_connection: int = 100
    max_connections: int = 500
    connection_idle: float = 2.0


class DeliveryAgent:
    """Runs deliveries until :meth:`stop`; see the module docstring."""

    def __init__(
        self,
        spool: Spool,
        routes: RouteTable,
        resolver: dns.asyncresolver.Resolver,
        policy: OutcomePolicy,
        connect_settings: ConnectSettings,
        events: EventLog,
        settings: AgentSettings | None = None,
        *,
        maildir_fsync: bool = True,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        hooks: DeliveryHooks | None = None,
    ) -> None:
        self.spool = spool
        self.hooks = hooks
        self.routes = routes
        self.resolver = resolver
        self.policy = policy
        self.connect_settings = connect_settings
        self.events = events
        self.settings = settings or AgentSettings()
        self.clock = clock
        self.rng = rng or random.Random()
        self.maildir_fsync = maildir_fsync
        # Workers take small batches so that the work of a destination spreads over
        # all its connections; a worker's connection goes back to the cache after
        # each batch and the next worker picks it up.
        self.active: ActiveQueues[WorkItem] = ActiveQueues(
            connections=self.settings.connections_per_destination,
            messages_per_connection=DISPATCH_BATCH,
            max_connections=self.settings.max_connections,
        )
        self._held = 0  # recipients claimed and not yet settled
        self._held_bytes = 0  # content of handed-over messages not yet settled
        self._workers: set[asyncio.Task[None]] = set()
        self._writes: set[asyncio.Future[Any]] = set()
        self._stopping = False
        self._room = asyncio.Event()
        self._maildirs: dict[str, MaildirDelivery] = {}
        self.cache = ConnectionCache(
            idle=self.settings.connection_idle,
            per_destination=self.settings.connections_per_destination,
            max_transactions=self.settings.messages_per_connection,
        )
        self.delivered = 0

    # -- The claim loop ----------------------------------------------------------------

    async def run(self) -> None:
        """Claim and dispatch work until :meth:`stop` is called."""
        while not self._stopping:
            self.cache.expire()
            claimed = await self._claim()
            self._dispatch()
            if claimed >= self.settings.claim_batch:
                await asyncio.sleep(0)
                continue

            timeout = self._sleep_time()
            if self._held >= self.settings.max_active:
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), timeout)
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self.spool.wait_for_work()

    async def _claim(self) -> int:
        room = self.settings.max_active - self._held
        if room <= 0:
            return 0
        batch = await self.spool.claim_due(self.clock(), min(room, self.settings.claim_batch))
        count = 0
        for claimed in batch:
            for item in self._split(claimed):
                self.active.add(item.route.destination_key(item.domain), item)
                count += len(item.recipients)
        self._held += count
        return count

    # -- Hand-over from reception -------------------------------------------------------

    def reserve(self, recipients: int, size: int) -> bool:
        """Make room for a message about to be stored claimed; False when there is none.

        Reception calls this before :meth:`Spool.store_claimed`, then either
        :meth:`hand_over` with the stored message or :meth:`cancel` when the
        store failed. Without room the message is stored unclaimed and waits
        for the claim loop like any other.
        """
        if (
            self._stopping
            or self._held + recipients > self.settings.max_active
            or self._held_bytes + size > self.settings.max_held_bytes
        ):
            return False
        self._held += recipients
        self._held_bytes += size
        return True

    def cancel(self, recipients: int, size: int) -> None:
        """Give back a reservation whose message was not stored."""
        self._release(recipients, size)

    def hand_over(self, claimed: Claimed, content: bytes) -> None:
        """Deliver a message stored with :meth:`Spool.store_claimed`, from memory.

        The room was reserved with :meth:`reserve`; the content is kept until
        every recipient is settled, so delivery never reads it back from disk.
        """
        items = self._split(claimed, content)
        # Each item counts the content when it is settled; the reservation counted it once.
        self._held_bytes += (len(items) - 1) * len(content)
        for item in items:
            self.active.add(item.route.destination_key(item.domain), item)
        self._dispatch()

    def _split(self, claimed: Claimed, content: bytes | None = None) -> list[WorkItem]:
        """Group a message's recipients by destination; one item per destination.

        A route a policy chose for the message (``metadata["route"]``, see
        :mod:`mailwright.policy`) replaces the configured one for every recipient.
        """
        groups: dict[str, list[ClaimedRecipient]] = {}
        routes: dict[str, tuple[Route, str]] = {}
        chosen = _chosen_route(claimed)
        for rcpt in claimed.recipients:
            route = chosen or self.routes.lookup(rcpt.domain)
            key = route.destination_key(rcpt.domain)
            groups.setdefault(key, []).append(rcpt)
            routes.setdefault(key, (route, rcpt.domain))
        return [
            WorkItem(claimed, tuple(rcpts), routes[key][0], routes[key][1], content)
            for key, rcpts in groups.items()
        ]

    def _sleep_time(self) -> float:
        due = self.spool.next_due()
        if due is None:
            return self.settings.poll_interval
        return max(0.0, min(due - self.clock(), self.settings.poll_interval))

    def _dispatch(self) -> None:
        """Start a worker for every destination with work and a free slot."""
        if self._stopping:
            return
        for destination in self.active.ready():
            while self.active.free_slots(destination) and self.active.pending(destination):
                batch = self.active.take(destination)
                if not batch:
                    break
                task = asyncio.create_task(self._work(destination, batch))
                self._workers.add(task)
                task.add_done_callback(self._workers.discard)

    # -- Workers -----------------------------------------------------------------------

    async def _work(self, destination: str, batch: list[WorkItem]) -> None:
        untried: list[WorkItem] = []
        try:
            untried = await self._deliver_batch(destination, batch)
        finally:
            self.active.release(destination, untried)
            if not self._stopping:
                self._dispatch()

    async def _deliver_batch(self, destination: str, batch: list[WorkItem]) -> list[WorkItem]:
        """Deliver a batch on one connection; return the items left untried (at stop)."""
        route = batch[0].route
        if route.kind == "maildir":
            for index, item in enumerate(batch):
                if self._stopping:
                    return batch[index:]
                try:
                    await self._deliver_maildir(item)
                except Exception:
                    logger.exception("delivery.failed queue_id=%s", item.claimed.queue_id)
                    self._settle(item, [(r, LOCAL_FAILURE) for r in item.recipients], None, None)
            return []

        try:
            hops, port = await find_hops(
                route, batch[0].domain, self.resolver, self.rng, self.connect_settings
            )
        except (HopFailure, Exception) as failure:
            if not isinstance(failure, HopFailure):
                logger.exception("delivery.next_hop_failed domain=%s", batch[0].domain)
                failure = HopFailure(LOCAL_FAILURE)
            for item in batch:
                await self._settle_all(item, failure.reply, failure.remote_host)
            return []

        return await self._deliver_smtp_batch(destination, batch, hops, port)

    async def _deliver_smtp_batch(
        self, destination: str, batch: list[WorkItem], hops: list[NextHop], port: int
    ) -> list[WorkItem]:
        """Deliver ``batch`` over one session (cached, or new), then cache it again."""
        lmtp = batch[0].route.kind == "lmtp"
        connection = self.cache.get(destination)
        used = connection is not None
        try:
            for index, item in enumerate(batch):
                if self._stopping:
                    return batch[index:]
                content = await self._content(item)
                if content is None:
                    continue
                for _ in range(2):
                    if connection is None or not connection.reusable:
                        if connection is not None:
                            await connection.close()
                        connection, used = None, False
                        try:
                            connection = await connect(
                                hops, port, lmtp=lmtp, settings=self.connect_settings
                            )
                        except HopFailure as failure:
                            for rest in batch[index:]:
                                await self._settle_all(rest, failure.reply, failure.remote_host)
                            return []
                    try:
                        if await self._deliver_smtp(connection, item, content, retry_ok=used):
                            break
                    except Exception:
                        # A bug must not lose the message: it is retried like a 4xx.
                        logger.exception("delivery.failed queue_id=%s", item.claimed.queue_id)
                        self._settle(
                            item, [(r, LOCAL_FAILURE) for r in item.recipients], None, None
                        )
                        break
                    finally:
                        used = True
                    # The reused session had died in the meantime: once more on a new one.
                    await connection.close()
                    connection = None
        finally:
            if connection is not None:
                self.cache.put(destination, connection)
        return []

    async def _deliver_smtp(
        self, connection: SmtpConnection, item: WorkItem, content: bytes, *, retry_ok: bool
    ) -> bool:
        """Send one message and settle it; False (unsettled) when a reused session was dead.

        A session that breaks before the peer answered anything, after it had
        already carried a message or sat in the cache, is most likely one the
        peer closed while idle: the caller retries on a fresh connection
        instead of deferring the message.
        """
        envelope = item.claimed.envelope
        recipients = [_as_recipient(r) for r in item.recipients]
        try:
            done = await connection.deliver(
                envelope.sender,
                recipients,
                content,
                smtputf8=envelope.smtputf8,
                envid=envelope.envid,
                ret=envelope.ret,
                crlf_checked=_crlf_checked(envelope),
                binary=envelope.body == "BINARYMIME",
            )
            replies = done.final_replies
        except SmtpDeliveryError as exc:
            if retry_ok and exc.partial is None and isinstance(exc, ConnectionLost):
                return False
            replies = (
                exc.partial.final_replies
                if exc.partial is not None
                else [exc.reply] * len(recipients)
            )
        self._settle(
            item, list(zip(item.recipients, replies, strict=True)), connection.peer_name, content
        )
        return True

    async def _deliver_maildir(self, item: WorkItem) -> None:
        content = await self._content(item)
        if content is None:
            return
        path = item.route.path or "mail"
        maildir = self._maildirs.get(path)
        if maildir is None:
            maildir = self._maildirs[path] = MaildirDelivery(
                path, hostname=self.policy.hostname, fsync=self.maildir_fsync
            )
        replies = await maildir.deliver(
            item.claimed.envelope, content, [_as_recipient(r) for r in item.recipients]
        )
        self._settle(item, list(zip(item.recipients, replies, strict=True)), None, content)

    async def _content(self, item: WorkItem) -> bytes | None:
        if item.content is not None:
            return item.content
        try:
            return await self.spool.load_content(item.claimed)
        except MessageNotFoundError:
            # Deleted by the postmaster while queued: nothing to deliver or report.
            self._release(len(item.recipients))
            return None

    async def _settle_all(self, item: WorkItem, reply: Reply, remote: str | None) -> None:
        wanted = needs_content(
            item.claimed, item.recipients, reply, policy=self.policy, now=self.clock()
        )
        content = await self._content(item) if wanted else b""
        if content is None:
            return
        self._settle(item, [(r, reply) for r in item.recipients], remote, content)

    # -- Settling ------------------------------------------------------------------------

    def _settle(
        self,
        item: WorkItem,
        results: Sequence[tuple[ClaimedRecipient, Reply]],
        remote_host: str | None,
        content: bytes | None,
    ) -> None:
        settled = settle(
            item.claimed,
            results,
            remote_host=remote_host,
            content=content,
            policy=self.policy,
            now=self.clock(),
            rng=self.rng,
            queue=item.route.destination_key(item.domain),
        )
        hooks = self.hooks
        if hooks is not None:
            hooks.outcomes(item.claimed, settled.events)
            if settled.bounces and hooks.filters_bounces:
                # The recipients stay claimed until the filtered outcome is written: a
                # crash meanwhile retries them, it never loses them.
                task = asyncio.ensure_future(self._filter_then_write(item, settled, len(results)))
                self._writes.add(task)
                task.add_done_callback(self._writes.discard)
                return
        self._write(settled, len(results), _held_size(item), item.claimed.queue_id)

    async def _filter_then_write(self, item: WorkItem, settled: Settled, count: int) -> None:
        """Let the hooks drop DSNs, then record; a failing filter keeps every DSN.

        The outcome is written whatever happens here: otherwise the
        recipients would stay held in memory (and claimed) until a restart.
        """
        assert self.hooks is not None
        try:
            settled.bounces = await self.hooks.bounces(item.claimed, settled.bounces)
        except Exception:
            logger.exception("delivery.bounce_filter_failed queue_id=%s", item.claimed.queue_id)
        self._write(settled, count, _held_size(item), item.claimed.queue_id)

    def _write(self, settled: Settled, count: int, size: int, origin: str) -> None:
        """Record outcomes in the background; the spool's writer batches them."""
        for name, fields in settled.events:
            self.events.emit(name, **fields)
            if name == "delivered":
                self.delivered += 1

        try:
            future = self.spool.submit_record(settled.outcomes, settled.bounces)
        except Exception:
            # The recipients stay claimed in the spool and are retried after a
            # restart (at least once); nothing is lost.
            logger.exception("delivery.record_failed outcomes=%d", len(settled.outcomes))
            self._release(count, size)
            return
        self._writes.add(future)
        future.add_done_callback(functools.partial(self._recorded, settled, count, size, origin))

    def _recorded(
        self,
        settled: Settled,
        count: int,
        size: int,
        origin: str,
        future: asyncio.Future[list[str]],
    ) -> None:
        """The outcomes are committed (or failed): free their room, log the bounces.

        Each DSN queued with them gets its ``received`` event, naming the
        message it reports on.
        """
        self._writes.discard(future)
        self._release(count, size)
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            # As above: still claimed in the spool, so retried after a restart.
            logger.error(
                "delivery.record_failed outcomes=%d error=%s", len(settled.outcomes), error
            )
            return
        for queue_id, (envelope, content) in zip(future.result(), settled.bounces, strict=True):
            logger.info("delivery.bounce_queued queue_id=%s original=%s", queue_id, origin)
            self.events.emit(
                "received", **dsn_received_fields(queue_id, envelope, content, origin)
            )

    def _release(self, count: int, size: int = 0) -> None:
        self._held -= count
        self._held_bytes -= size
        self._room.set()

    # -- Administration ------------------------------------------------------------------

    def wake(self) -> None:
        """Look for due work now (after a flush)."""
        self._room.set()

    def statistics(self) -> dict[str, Any]:
        """A snapshot for metrics and ``mailwright queue``."""
        stats = self.active.statistics()
        return {
            "held_recipients": self._held,
            "held_bytes": self._held_bytes,
            "workers": len(self._workers),
            "pending_writes": len(self._writes),
            "delivered": self.delivered,
            "active": stats,
        }

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming, let workers finish their current message, flush writes."""
        self._stopping = True
        self._room.set()
        if self._workers:
            _, pending = await asyncio.wait(set(self._workers), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2)
        await self.cache.close_all()
        # A bounce filter that finishes starts the write of its outcome: wait for that too.
        deadline = time.monotonic() + grace
        while self._writes and time.monotonic() < deadline:
            await asyncio.wait(set(self._writes), timeout=max(0.0, deadline - time.monotonic()))


class DeliveryHooks(Protocol):
    """The policy hooks of the delivery side (see :mod:`mailwright.policy.delivery`)."""

    @property
    def filters_bounces(self) -> bool:
        """True when some hook may drop DSNs (they are then filtered before writing)."""

    def outcomes(self, claimed: Claimed, events: list[tuple[EventName, dict[str, Any]]]) -> None:
        """Tell the hooks what happened (returns at once; hooks run in the background)."""

    async def bounces(
        self, claimed: Claimed, bounces: list[tuple[Envelope, bytes]]
    ) -> list[tuple[Envelope, bytes]]:
        """The DSNs to queue: the hooks may drop some (never raises)."""


def _chosen_route(claimed: Claimed) -> Route | None:
    """The route a policy stored in the message's metadata, or None.

    Routes were checked when the policy chose them; one that no longer
    parses (an edited spool) is ignored, with a warning, for the configured one.
    """
    text = claimed.envelope.metadata.get("route")
    if not text:
        return None
    try:
        return parse_route(text)
    except RouteError:
        logger.warning("delivery.bad_route queue_id=%s route=%s", claimed.queue_id, text)
        return None


def _crlf_checked(envelope: Envelope) -> bool:
    """Whether the content is known to hold CRLF line ends only.

    Our SMTP listeners refuse or normalise bare CR and LF in DATA and in
    BDAT (except BINARYMIME, which may hold any octet); content from any
    other source is checked again when it is sent.
    """
    return bool(envelope.listener) and envelope.body != "BINARYMIME"


def _held_size(item: WorkItem) -> int:
    """The bytes an item's reservation counted: its content, when handed over."""
    return len(item.content) if item.content is not None else 0


def _as_recipient(rcpt: ClaimedRecipient) -> Recipient:
    return Recipient(rcpt.address, rcpt.notify, rcpt.orcpt)
