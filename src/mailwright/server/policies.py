"""The policy side of one server process: the chain, its built-ins, their stores, reloads.

:class:`ServerPolicies` builds the :class:`~mailwright.policy.chain.PolicyChain`
from the configuration (see :mod:`mailwright.policy.runtime` for the order),
wraps every listener's handler in a
:class:`~mailwright.policy.handler.PolicyHandler`, gives the delivery agent
its hooks, and swaps the chain on SIGHUP. A configuration or module that no
longer loads at a reload is logged and the running chain stays.

The built-in DMARC policy records its evaluations in the report store
(:mod:`mailwright.reports.evaluations`), which this object opens and closes.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from mailwright.config import Config
from mailwright.dns.queries import CachingResolver
from mailwright.envelope import Envelope
from mailwright.errors import MailwrightError
from mailwright.policy.chain import PolicyChain
from mailwright.policy.delivery import PolicyDeliveryHooks
from mailwright.policy.handler import AuthSettings, PolicyHandler
from mailwright.policy.runtime import build_chain
from mailwright.server.handler import SessionHandler
from mailwright.smtp.replies import Reply

if TYPE_CHECKING:  # imported when used: a server without DMARC never loads them
    from mailwright.notify.service import NotificationService
    from mailwright.reports.evaluations import EvaluationStore
    from mailwright.reports.failure_sender import FailureReportSender
    from mailwright.reports.received import ReceivedReports

logger = logging.getLogger("mailwright.policy")

#: The file in the spool folder that keys the redaction of failure reports.
REDACTION_KEY = "dmarc-redaction.key"


class ServerPolicies:
    """Every policy-related part of one server process."""

    def __init__(self, config: Config, resolver: CachingResolver) -> None:
        self.config = config
        self.resolver = resolver
        # Queues mail mailwright writes (reports); set by the application before start.
        self.inject: Callable[[Envelope, bytes], Awaitable[Reply]] | None = None
        # The notification service (its store opened on first use); set by the application.
        self.notify_service: Callable[[], Awaitable[NotificationService]] | None = None
        self.evaluations: EvaluationStore | None = None
        if config.dmarc.enforce:
            from mailwright.reports.evaluations import EvaluationStore

            self.evaluations = EvaluationStore(
                config.dmarc.store, interval=config.dmarc.report_interval
            )
        self.failures: FailureReportSender | None = None
        self._received: ReceivedReports | None = None  # opened by the first report to arrive
        self.chain: PolicyChain = build_chain(config, self._builtins(config))
        self.handlers: list[PolicyHandler] = []
        self.delivery_hooks = PolicyDeliveryHooks(lambda: self.chain)

    def _builtins(self, config: Config) -> list[tuple[str, object]]:
        builtins: list[tuple[str, object]] = []
        if config.dmarc.enforce:
            from mailwright.policy.dmarc import DmarcPolicy, DmarcSettings

            record = self.evaluations.add if self.evaluations is not None else None
            settings = DmarcSettings.from_config(config.dmarc)
            failures = self._failure_sender(config)
            policy = DmarcPolicy(settings, record=record, failure_reports=failures)
            builtins.append(("builtin:dmarc", policy))
        if config.notify.enforce or config.notify.unsubscribe_address is not None:
            from mailwright.notify.enforce import NotifyEnforcement

            enforcement = NotifyEnforcement(
                self._notify, unsubscribe_address=config.notify.unsubscribe_address
            )
            builtins.append(("builtin:notify", enforcement))
        if config.dmarc.report_address is not None:
            from mailwright.policy.report_intake import ReportIntake

            intake = ReportIntake(config.dmarc.report_address, self._received_store)
            builtins.append(("builtin:report-intake", intake))
        return builtins

    async def _notify(self) -> NotificationService:
        """The notification service, for the built-in enforcement policy."""
        if self.notify_service is None:
            raise MailwrightError("the notification layer is not running in this process")
        return await self.notify_service()

    def _received_store(self) -> ReceivedReports:
        """The store of received reports, opened once, by the first report to arrive."""
        if self._received is None:
            from mailwright.reports.received import ReceivedReports

            self._received = ReceivedReports(self.config.dmarc.received_store)
        return self._received

    def _failure_sender(self, config: Config) -> FailureReportSender | None:
        """The failure report sender when ``[dmarc] failure_reports`` asks for one."""
        if not config.dmarc.failure_reports or config.dmarc.report_from is None:
            return None
        if self.failures is None:
            from mailwright.reports.failure import FailureReportLimiter
            from mailwright.reports.failure_sender import FailureReportSender
            from mailwright.reports.redaction import Redaction

            key = FailureReportSender.secret_at(config.server.spool / REDACTION_KEY)
            # Each receiving process gets its share of the limits, so the server as a
            # whole keeps them (rounded up: at least one report each).
            share = config.server.receivers
            limiter = FailureReportLimiter(per_domain=-(-10 // share), total=-(-500 // share))
            self.failures = FailureReportSender(
                self.resolver,
                lambda: self.inject,
                hostname=config.server.hostname,
                report_from=config.dmarc.report_from,
                limiter=limiter,
                redaction=Redaction(secret=key),
            )
        return self.failures

    def wrap(self, handler: SessionHandler) -> PolicyHandler:
        """``handler`` with the policies around it (reloads reach it too)."""
        auth = AuthSettings(
            self.resolver,
            self.config.server.hostname,
            sample=random.random if self.config.dmarc.sample_pct else None,
        )
        wrapped = PolicyHandler(handler, self.chain, auth)
        self.handlers.append(wrapped)
        return wrapped

    def reload(self, fresh: Config) -> None:
        """Rebuild the chain from ``fresh``; keep the running one when that fails."""
        try:
            chain = build_chain(fresh, self._builtins(fresh))
        except MailwrightError as error:  # ConfigError, or a built-in that does not load
            logger.error("policy.reload_failed error=%s", error)
            return
        self.config = fresh
        self.chain = chain
        for handler in self.handlers:
            handler.replace(chain)
        logger.info("policy.reloaded policies=%s", ",".join(p.name for p in chain.policies) or "-")

    async def start(self) -> None:
        """Open the stores the built-ins write to."""
        if self.evaluations is not None:
            await self.evaluations.start()

    async def close(self) -> None:
        """Let running delivery hooks finish, then flush and close the stores."""
        await self.delivery_hooks.drain()
        if self.failures is not None:
            await self.failures.drain()
        if self._received is not None:
            self._received.close()
        if self.evaluations is not None:
            await self.evaluations.close()
