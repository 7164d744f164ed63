"""``mailwright serve``: wire the configuration into listeners, spool and delivery.

One :class:`Application` owns every long-lived part: the spool, the event
log, the credential store, the resolver, the SMTP listeners, the delivery
agent and the control socket through which CLI commands reach the running
server. :func:`serve` runs it until SIGTERM or SIGINT, then stops it in the
reverse order: listeners first (no new mail), then delivery (current messages
finish), then the spool (claims are released, so nothing waits for a lease).
SIGHUP reopens the event log (for logrotate) and reloads the DKIM keys
(``[[dkim.sign]]``), in every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailwright.auth.dkim import DkimError
from mailwright.config import Config, ListenerConfig, load_config
from mailwright.control import ControlServer
from mailwright.delivery.agent import AgentSettings, DeliveryAgent
from mailwright.delivery.nexthop import ConnectSettings
from mailwright.delivery.outcomes import OutcomePolicy
from mailwright.delivery.smtp import ClientTimeouts
from mailwright.dns.queries import CachingResolver
from mailwright.dns.resolver import make_resolver
from mailwright.errors import ConfigError, ReportError, SpoolError
from mailwright.events import EventLog
from mailwright.queue.retry import RetrySchedule
from mailwright.queue_admin import SpoolQueueAdmin
from mailwright.routes import RouteTable, normalize_domain
from mailwright.server.listener import SmtpListener
from mailwright.server.mta import MtaHandler
from mailwright.server.policies import ServerPolicies
from mailwright.server.processes import ChildRole, ChildSupervisor
from mailwright.server.signing import OutboundSigning
from mailwright.smtp.server_settings import SessionSettings
from mailwright.spool import Spool
from mailwright.users import UserStore

if TYPE_CHECKING:
    from mailwright.notify.runtime import NotifyRuntime
    from mailwright.reports.service import ReportService

logger = logging.getLogger("mailwright.server")

CONTROL_SOCKET = "control.sock"

#: How often a delivery process looks for new work stored by the receiving process.
SPLIT_POLL_INTERVAL = 0.02

#: How often a delivery process checks that the server that started it still lives.
ORPHAN_CHECK_INTERVAL = 0.5

#: Seconds a busy thread may keep the GIL while another waits for it (Python's default: 5 ms).
#: The event loop is the only busy thread of a server; the spool's fsync thread waits for
#: the GIL after every fdatasync, and each millisecond it waits is added to the time before
#: the 250 of every message of the batch. Measured with two receivers on the benchmark
#: machine: 0.5 ms cut the median store latency by a fifth and raised throughput 10-25 %.
GIL_SWITCH_INTERVAL = 0.0005


class Application:
    """Every part of a running mailwright, built from one :class:`Config`."""

    def __init__(
        self, config: Config, *, receive: bool = True, deliver: bool = True, control: bool = True
    ) -> None:
        self.config = config
        self.receive = receive
        self.deliver = deliver
        self.serve_control = control and receive
        server = config.server
        self.spool = Spool(server.spool, fsync=server.fsync, min_free_bytes=server.min_free_space)
        try:
            server.events_log.parent.mkdir(parents=True, exist_ok=True)
            self.events = EventLog(server.events_log)
        except OSError as exc:
            raise config.error_at(
                ("server", "events_log"),
                f"cannot open the event log {server.events_log}: {_why(exc)}",
            ) from exc
        self.users = UserStore(server.users_file)
        self.signing = OutboundSigning(config.dkim)
        self.routes = RouteTable(_routes_with_local_defaults(config))
        self.resolver = make_resolver(
            [str(ns) for ns in config.dns.nameservers] or None, timeout=config.dns.timeout
        )
        # One cache for every check of this process: SPF, DKIM, ARC and DMARC records.
        self.auth_resolver = CachingResolver(self.resolver)
        self.policies = ServerPolicies(config, self.auth_resolver)
        self.agent = DeliveryAgent(
            self.spool,
            self.routes,
            self.resolver,
            OutcomePolicy(
                RetrySchedule(
                    config.queue.retry_intervals,
                    config.queue.lifetime,
                    config.queue.delay_warning,
                    jitter=0.1,
                ),
                hostname=server.hostname,
                return_limit=config.queue.bounce_original_limit,
            ),
            ConnectSettings(
                helo_name=config.delivery.helo_name or server.hostname,
                tls=config.delivery.tls,
                timeouts=ClientTimeouts(connect=config.delivery.connect_timeout),
                source_address=config.delivery.source_address,
                mx_port=config.delivery.port,
                local_names=(server.hostname,),
            ),
            self.events,
            AgentSettings(
                connections_per_destination=_share(
                    config.queue.max_connections_per_destination, _delivering_processes(config)
                ),
                messages_per_connection=config.queue.max_messages_per_connection,
                # In its own process the agent is not woken by stores: it polls.
                poll_interval=1.0 if receive else SPLIT_POLL_INTERVAL,
            ),
            maildir_fsync=server.fsync,
            hooks=self.policies.delivery_hooks,
        )
        accepted = frozenset(
            normalize_domain(d) for d in (*config.domains.local, *config.domains.relay)
        )
        # Mail mailwright writes itself (DMARC reports) enters the queue here: signed
        # like submitted mail, stored, handed to this process's agent.
        self.injector = self._handler("reports", accepted)
        self.policies.inject = self.injector.inject
        # The notification layer: its mail enters the queue like reports do, signed as ours.
        self.notify: NotifyRuntime | None = None
        # TODO: a delivery-only child (delivery_process = true) has no notification
        # layer, so the email channel's delivered/failed states and hard-bounce
        # suppression are not recorded for what it delivers; it would need the runtime's
        # event subscription without the rest.
        if receive:
            from mailwright.notify.runtime import NotifyRuntime

            notify_handler = self._handler("notify", accepted)
            self.notify = NotifyRuntime(
                config,
                notify_handler.inject,
                first=self.serve_control,
                events=self.events.emit,
                subscribe=self.events.subscribe,
            )
            self.policies.notify_service = self.notify.opened
        self.listeners = (
            [self._listener(index, lst, accepted) for index, lst in enumerate(config.listener)]
            if receive
            else []
        )
        self.reports: ReportService | None = None
        if self.serve_control and self.policies.evaluations is not None:
            from mailwright.reports.service import ReportService

            self.reports = ReportService(
                config, self.policies.evaluations, self.auth_resolver, self.injector.inject
            )
        self.control = ControlServer(Path(server.spool) / CONTROL_SOCKET, _RunningQueueAdmin(self))
        self._agent_task: asyncio.Task[None] | None = None

    def _handler(self, role: str, accepted: frozenset[str]) -> MtaHandler:
        return MtaHandler(
            role=role,
            hostname=self.config.server.hostname,
            spool=self.spool,
            events=self.events,
            users=self.users,
            accepted_domains=accepted,
            # Delivering in this process too: stored messages leave from memory.
            delivery=self.agent if self.deliver else None,
            signing=self.signing,
        )

    def _listener(
        self, index: int, listener: ListenerConfig, accepted: frozenset[str]
    ) -> SmtpListener:
        handler = self._handler(listener.role, accepted)
        settings = SessionSettings(
            hostname=self.config.server.hostname,
            max_message_size=listener.max_message_size,
            max_recipients=listener.max_recipients,
            max_errors=listener.max_errors,
            bare_line_endings=listener.bare_line_endings,
            max_command_line=listener.max_command_line,
            max_data_line=listener.max_data_line,
            auth_required=listener.role == "submission",
        )
        return SmtpListener(
            f"{listener.role}-{index}",
            listener.role,
            listener.address.host,
            listener.address.port,
            self.policies.wrap(handler),
            settings,
            _tls_context(listener),
            max_connections=listener.max_connections,
            max_connections_per_ip=listener.max_connections_per_ip,
            command_timeout=listener.command_timeout,
            data_timeout=listener.data_timeout,
            reuse_port=self.config.server.receivers > 1,
        )

    async def start(self) -> None:
        """Open the spool, start delivery, the control socket and the listeners.

        Raises :class:`~mailwright.errors.ConfigError` naming the key at fault
        when the spool cannot be opened or a listener cannot bind its address;
        what was started is then stopped again.
        """
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        try:
            await self.spool.open()
        except SpoolError as exc:
            raise self.config.error_at(("server", "spool"), str(exc)) from exc
        await self.policies.start()
        if self.notify is not None:
            await self.notify.start()
        if self.deliver:
            self._agent_task = asyncio.create_task(self.agent.run(), name="delivery-agent")
        if self.serve_control:
            await self.control.start()
        if self.reports is not None and self.config.dmarc.send_reports:
            self.reports.run_schedule()
        for index, listener in enumerate(self.listeners):
            try:
                await listener.start()
            except OSError as exc:
                where = f"{listener.host}:{listener.requested_port}"
                raise self.config.error_at(
                    ("listener", index, "address"),
                    f"cannot listen on {where}: {_why(exc)}",
                ) from exc
        logger.info(
            "server.started hostname=%s listeners=%s spool=%s",
            self.config.server.hostname,
            ",".join(f"{lst.role}@{lst.host}:{lst.port}" for lst in self.listeners),
            self.config.server.spool,
        )

    async def stop(self) -> None:
        """Stop in reverse order; see the module docstring."""
        logger.info("server.stopping")
        for listener in self.listeners:
            await listener.stop(grace=10.0)
        if self.notify is not None:
            await self.notify.stop()
        await self.agent.stop()
        if self._agent_task is not None:
            self._agent_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._agent_task
        if self.serve_control:
            await self.control.stop()
        if self.reports is not None:
            await self.reports.stop()
        await self.policies.close()
        await self.spool.close()
        self.events.close()
        logger.info("server.stopped")

    def reload(self) -> None:
        """SIGHUP: reopen the event log; reload the DKIM keys and the policies.

        A configuration that no longer loads, or a key or policy module that
        does not, is logged and what is in use stays as it was.
        """
        self.events.reopen()
        source = self.config.source
        if source is None:
            return
        try:
            fresh = load_config(source)
            self.signing.reload(fresh.dkim)
        except (ConfigError, DkimError) as exc:
            logger.error("server.reload_failed error=%s", exc)
            return
        self.policies.reload(fresh)


class _RunningQueueAdmin(SpoolQueueAdmin):
    """Queue administration inside the server: a flush wakes the delivery agent."""

    def __init__(self, app: Application) -> None:
        super().__init__(
            app.spool,
            hostname=app.config.server.hostname,
            return_limit=app.config.queue.bounce_original_limit,
            events=app.events,
        )
        self.app = app

    async def flush(self, queue_id: str | None) -> dict[str, Any]:
        result = await super().flush(queue_id)
        self.app.agent.wake()
        return result

    async def dmarc_report(
        self, until: float, send: bool, include_current: bool
    ) -> list[dict[str, Any]]:
        """``mailwright dmarc report``: the server's reporter, buffer included."""
        if self.app.reports is None:
            raise ReportError(
                "this server does not enforce DMARC ([dmarc] enforce = false), so it records"
                " no evaluations to report"
            )
        result: list[dict[str, Any]] = await self.app.reports.report(
            until, send=send, include_current=include_current
        )
        return result


def _delivering_processes(config: Config) -> int:
    """How many processes run a delivery agent: each receiver, or one delivery process."""
    return 1 if config.server.delivery_process else config.server.receivers


def _share(limit: int, processes: int) -> int:
    """One process's part of a limit shared by ``processes`` (rounded up, at least 1).

    TODO: the parts are fixed, so with a limit below the number of processes
    (or a destination served by only one of them) the whole is not exact; a
    limiter shared between the processes (a lock file per slot, or Redis in
    cluster mode) would make it so.
    """
    return max(1, -(-limit // processes))


def _why(error: OSError) -> str:
    """The system's short reason for ``error`` ("address already in use")."""
    return os.strerror(error.errno) if error.errno else str(error)


def _routes_with_local_defaults(config: Config) -> dict[str, str]:
    """The routes, plus a Maildir route for every local domain that has none.

    Our own host name gets one too unless a route or relay domain covers it:
    mail to the bare ``postmaster`` is delivered to ``postmaster@HOSTNAME``,
    and sending that by MX would come back to us.
    """
    routes = dict(config.routes)
    table = RouteTable(routes)
    mail = f"maildir:{(Path(config.server.spool).parent / 'mail').resolve()}"
    for domain in config.domains.local:
        if table.lookup(domain).is_mx:
            routes[domain] = mail
    hostname = normalize_domain(config.server.hostname)
    relayed = any(
        hostname == domain or hostname.endswith("." + domain) for domain in config.domains.relay
    )
    if table.lookup(hostname).is_mx and hostname not in routes and not relayed:
        routes[hostname] = mail
    return routes


def _tls_context(listener: ListenerConfig) -> ssl.SSLContext | None:
    if listener.tls_cert is None or listener.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(listener.tls_cert, listener.tls_key)
    return context


async def serve(config: Config) -> None:
    """Run mailwright until SIGTERM or SIGINT.

    Delivery and extra receivers run as child processes when the
    configuration asks for them (see :mod:`mailwright.server.processes`).
    """
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    split = config.server.delivery_process
    app = Application(config, receive=True, deliver=not split)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await app.start()
    children = [ChildSupervisor(config, "receiver") for _ in range(config.server.receivers - 1)]
    if split:
        children.append(ChildSupervisor(config, "delivery"))
    for child in children:
        child.start()

    def reload() -> None:
        app.reload()
        for child in children:
            child.signal(signal.SIGHUP)

    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        await stop.wait()
    finally:
        await app.stop()
        await asyncio.gather(*(child.stop() for child in children))


async def serve_child(config: Config, role: ChildRole, parent: int) -> None:
    """The body of a child process, until SIGTERM or orphaned.

    A parent killed with SIGKILL cannot stop its children, so each watches
    for being re-parented and then stops itself: otherwise a delivery child
    would keep its claims, and a receiver its ports, for ever.
    """
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    receiver = role == "receiver"
    # A receiver delivers what it receives unless a delivery process does it all.
    deliver = not receiver or not config.server.delivery_process
    app = Application(config, receive=receiver, deliver=deliver, control=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, lambda: None)  # the parent decides
    loop.add_signal_handler(signal.SIGHUP, app.reload)
    await app.start()
    watch = asyncio.create_task(_watch_parent(parent, stop))
    try:
        await stop.wait()
    finally:
        watch.cancel()
        await app.stop()


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    while os.getppid() == parent:  # noqa: ASYNC110 - no event tells of a dead parent
        await asyncio.sleep(ORPHAN_CHECK_INTERVAL)
    logger.warning("server.child_orphaned parent=%d", parent)
    stop.set()
