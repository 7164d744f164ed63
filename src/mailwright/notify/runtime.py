"""The notification layer inside ``mailwright serve``: store, service, HTTP, SMSC, sweeps.

:class:`NotifyRuntime` is built by the server's
:class:`~mailwright.server.app.Application`. Every process that receives mail
opens the store (lazily, on first use) for the built-in enforcement policy
and the ``mailto:`` unsubscribe; the first process also serves the HTTP API
and pages on uvicorn, binds to the SMSC and runs the sweeps, so timed work
happens once per server. Email goes into the MTA queue through the
application's injector: DKIM-signed like submitted mail, stored before it
counts as queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

import uvicorn

from mailwright.config import Config
from mailwright.envelope import Envelope
from mailwright.envelope import Recipient as EnvelopeRecipient
from mailwright.notify.consent import Lifetimes, RepermissionPolicy
from mailwright.notify.dispatch import ChannelError, Dispatcher, DispatchSettings, EventSink
from mailwright.notify.errors import NotifyError
from mailwright.notify.model import QuietHours
from mailwright.notify.rules import RouterSettings
from mailwright.notify.service import NotificationService, ServiceSettings
from mailwright.notify.store import open_store
from mailwright.notify.store.base import NotifyStore
from mailwright.notify.sweeps import Sweeps
from mailwright.notify.tokens import TokenBox
from mailwright.smtp.replies import Reply

if TYPE_CHECKING:
    from mailwright.notify.sms.gateway import SmppGateway

logger = logging.getLogger("mailwright.notify")

#: The file in the spool folder holding the key of link tokens (0600).
TOKEN_KEY = "notify-links.key"

#: The listener name of the mail the notification layer writes (signed as ours).
LISTENER = "notify"


def router_settings(config: Config) -> RouterSettings:
    """``[notify]`` as the router's settings."""
    notify = config.notify
    lifetimes = Lifetimes(**notify.consent_lifetimes) if notify.consent_lifetimes else Lifetimes()
    marketing = parse_span(notify.marketing_sms_hours) or QuietHours("00:00", "00:00")
    return RouterSettings(
        quiet_hours=parse_span(notify.quiet_hours),
        marketing_sms_window=marketing,
        frequency_cap=notify.frequency_cap,
        auto_digest_after=notify.auto_digest_after,
        lifetimes=lifetimes,
        sunset_after=notify.sunset_after,
        default_digest_at=notify.digest_at,
    )


def notification_of(message_id: object, hostname: str) -> str | None:
    """The notification a Message-ID names (``<ID@HOSTNAME>``, as the dispatcher writes)."""
    if not isinstance(message_id, str) or not message_id.endswith(f"@{hostname}>"):
        return None
    key = message_id[1:].rpartition("@")[0]
    # Notification ids are uuid4 hex; digests' window ids look alike and find nothing.
    return key if key.isalnum() and len(key) == 32 else None


def parse_span(text: str) -> QuietHours | None:
    """``"21:00-08:00"`` as quiet hours; "" as None."""
    if not text:
        return None
    start, _, end = text.partition("-")
    return QuietHours(start.strip(), end.strip())


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: ``mailwright serve`` has them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class NotifyRuntime:
    """The notification layer of one server process (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        inject: Callable[[Envelope, bytes], Awaitable[Reply]],
        *,
        first: bool,
        events: EventSink | None = None,
        subscribe: Callable[[Callable[[dict[str, Any]], None]], Callable[[], None]] | None = None,
    ) -> None:
        self.config = config
        self._subscribe = subscribe
        self._unsubscribe: Callable[[], None] | None = None
        self._outcome_tasks: set[asyncio.Task[None]] = set()
        self.first = first
        self._inject = inject
        self.store: NotifyStore = open_store(config.notify.store)
        try:
            config.server.spool.mkdir(parents=True, exist_ok=True)
            self.tokens = TokenBox.from_file(config.server.spool / TOKEN_KEY)
        except (OSError, NotifyError) as error:
            raise config.error_at(("server", "spool"), f"link token key: {error}") from error
        self.gateway: SmppGateway | None = None
        self.from_address = config.notify.from_address or f"notifications@{config.server.hostname}"
        settings = router_settings(config)
        self.dispatcher = Dispatcher(
            self.store,
            self.tokens,
            DispatchSettings(
                from_address=self.from_address,
                hostname=config.server.hostname,
                public_url=config.http.base_url,
                unsubscribe_address=config.notify.unsubscribe_address,
                link_lifetime=config.notify.link_lifetime,
                digest_items=config.notify.digest_items,
            ),
            lifetimes=settings.lifetimes,
            email=self._send_email,
            events=events,
        )
        self.service = NotificationService(
            self.store,
            tokens=self.tokens,
            dispatcher=self.dispatcher,
            settings=ServiceSettings(
                router=settings,
                public_url=config.http.base_url,
                link_lifetime=config.notify.link_lifetime,
                max_data=config.notify.max_data,
                repermission=RepermissionPolicy(
                    notice_before=config.notify.repermission_notice,
                    reminders=config.notify.repermission_reminders,
                ),
                repermission_template=config.notify.repermission_template,
            ),
        )
        self.sweeps = Sweeps(self.service, interval=config.notify.sweep_interval)
        self.http_port: int | None = None
        self._http: _Server | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._opened = False
        self._lock = asyncio.Lock()

    def set_clock(self, clock: Callable[[], float]) -> None:
        """Use another clock everywhere (tests run a virtual one)."""
        self.service.clock = clock
        self.dispatcher.clock = clock

    async def opened(self) -> NotificationService:
        """The service, with the store opened on first use."""
        if not self._opened:
            async with self._lock:
                if not self._opened:
                    await self.store.open()
                    self._opened = True
        return self.service

    async def _send_email(self, sender: str, recipient: str, content: bytes) -> str:
        envelope = Envelope(
            sender=sender, recipients=[EnvelopeRecipient(recipient)], listener=LISTENER
        )
        reply = await self._inject(envelope, content)
        if not reply.is_positive:
            permanent = reply.code >= 500
            raise ChannelError(" ".join(reply.lines), permanent=permanent)
        return " ".join(reply.lines)

    def _on_event(self, record: dict[str, Any]) -> None:
        """Delivery outcomes of our own mail: the email channel's final state (and bounces)."""
        kind = record.get("event")
        if kind not in ("delivered", "bounced", "expired"):
            return
        key = notification_of(record.get("message_id"), self.config.server.hostname)
        if key is None:
            return
        task = asyncio.get_running_loop().create_task(self._outcome(key, kind, record))
        self._outcome_tasks.add(task)
        task.add_done_callback(self._outcome_tasks.discard)

    async def _outcome(self, notification_id: str, kind: str, record: dict[str, Any]) -> None:
        try:
            service = await self.opened()
            await service.delivery_outcome(
                notification_id,
                str(record.get("recipient", "")),
                delivered=kind == "delivered",
                expired=kind == "expired",
                reply=record.get("reply") or {},
            )
        except Exception:  # an outcome we cannot record must not disturb delivery
            logger.exception("notify.outcome_failed notification=%s", notification_id)

    async def start(self) -> None:
        """Open the store; in the first process also the SMSC, the HTTP server, the sweeps."""
        if self._subscribe is not None:
            self._unsubscribe = self._subscribe(self._on_event)
        if not self.first:
            return
        await self.opened()
        if self.config.sms.smsc:
            await self._start_sms()
        if self.config.http.enabled:
            await self._start_http()
        self.sweeps.start()

    async def _start_sms(self) -> None:
        from mailwright.notify.sms.gateway import SmppGateway
        from mailwright.notify.sms.keywords import KeywordReplies
        from mailwright.notify.sms_intake import SmsIntake

        sms = self.config.sms
        texts = {"help": sms.help_text, "stop": sms.stop_text, "start": sms.start_text}
        replies = KeywordReplies(**{kind: text for kind, text in texts.items() if text})
        intake = SmsIntake(self.service, self.dispatcher, replies, sms.program)
        self.gateway = SmppGateway(
            sms.smsc,
            source_addr=sms.sender_id,
            window=sms.window,
            on_receipt=intake.on_receipt,
            on_inbound=intake.on_inbound,
        )
        await self.gateway.start()
        self.dispatcher.sms = self.gateway

    async def _start_http(self) -> None:
        from mailwright.notify.api.app import create_app
        from mailwright.notify.web.confirm import confirm_router
        from mailwright.notify.web.pages import page_router

        app = create_app(
            self.service,
            max_body=self.config.http.max_body,
            extra_routers=[
                page_router(
                    self.service,
                    link_lifetime=self.config.notify.link_lifetime,
                    max_body=self.config.http.max_body,
                ),
                confirm_router(self.service),
            ],
        )
        address = self.config.http.address
        try:  # bound here: uvicorn would exit the process on a port already taken
            sock = socket.create_server(
                (address.host, address.port),
                family=socket.AF_INET6 if ":" in address.host else socket.AF_INET,
                reuse_port=False,
            )
        except OSError as error:
            why = os.strerror(error.errno) if error.errno else str(error)
            raise self.config.error_at(
                ("http", "address"), f"cannot serve HTTP on {address}: {why}"
            ) from error
        self.http_port = sock.getsockname()[1]
        server = _Server(
            uvicorn.Config(
                app,
                host=address.host,
                port=address.port,
                log_config=None,
                access_log=False,
                lifespan="off",
                server_header=False,
            )
        )
        self._http = server
        self._http_task = asyncio.create_task(server.serve([sock]), name="notify-http")
        while not server.started and not self._http_task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # uvicorn has no event for it
        logger.info("notify.http_started address=%s", address)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._outcome_tasks:
            await asyncio.gather(*list(self._outcome_tasks), return_exceptions=True)
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            with contextlib.suppress(Exception):
                await self._http_task
        if self.first and self._opened:
            await self.sweeps.stop()
        if self.gateway is not None:
            await self.gateway.close()
        if self._opened:
            await self.store.close()
