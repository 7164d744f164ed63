"""Sending failure reports from the DMARC policy: check, limit, build, queue.

:class:`FailureReportSender` is the ``failure_reports`` callable of
:class:`~mailwright.policy.dmarc.DmarcPolicy` when ``[dmarc]
failure_reports = true``. It returns at once: the report is worked out and
queued in a background task, so a slow destination check or a full spool
never delays, or refuses, the message being reported on. Errors are logged
as ``dmarc.failure_report_failed``; each report queued as
``dmarc.failure_report_sent``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from mailwright.auth.dmarc import Policy
from mailwright.auth.evaluate import Verdict
from mailwright.dns.queries import CachingResolver, run
from mailwright.envelope import Envelope
from mailwright.policy.context import Message
from mailwright.reports.failure import (
    DeliveryResult,
    FailureReportLimiter,
    build_failure_report,
    check_failure_destinations,
    failure_fingerprint,
    failure_report_due,
)
from mailwright.reports.redaction import Redaction
from mailwright.smtp.replies import Reply

logger = logging.getLogger("mailwright.dmarc")

Inject = Callable[[Envelope, bytes], Awaitable[Reply]]

_RESULTS: dict[Policy, DeliveryResult] = {
    Policy.NONE: "delivered",
    Policy.QUARANTINE: "spam",
    Policy.REJECT: "reject",
}


class FailureReportSender:
    """Queue RFC 9991 failure reports for the messages whose record asks for them."""

    def __init__(
        self,
        resolver: CachingResolver,
        inject: Callable[[], Inject | None],
        *,
        hostname: str,
        report_from: str,
        limiter: FailureReportLimiter | None = None,
        redaction: Redaction | None = None,
    ) -> None:
        self.resolver = resolver
        self._inject = inject
        self.hostname = hostname
        self.report_from = report_from
        self.limiter = limiter or FailureReportLimiter()
        self.redaction = redaction
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, message: Message, verdict: Verdict, disposition: Policy) -> None:
        """Start working out a report for ``message``, if its record asks for one."""
        if not failure_report_due(verdict, message.content):
            return
        task = asyncio.get_running_loop().create_task(
            self._send(message.content, message.envelope, verdict, disposition)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(
        self, content: bytes, envelope: Envelope, verdict: Verdict, disposition: Policy
    ) -> None:
        domain = verdict.dmarc.policy_domain or ""
        try:
            checked = await run(check_failure_destinations(verdict), self.resolver)
            destinations = [d.mailbox for d in checked if d.accepted and d.mailbox]
            if not destinations:
                logger.info("dmarc.failure_report_skipped domain=%s reason=no-destination", domain)
                return
            admission = self.limiter.admit(domain, failure_fingerprint(verdict))
            if not admission.allowed:
                logger.debug(
                    "dmarc.failure_report_skipped domain=%s reason=%s", domain, admission.reason
                )
                return
            inject = self._inject()
            if inject is None:
                return
            report = build_failure_report(
                verdict,
                content,
                envelope=envelope,
                reporter_hostname=self.hostname,
                report_from=self.report_from,
                destinations=destinations,
                now=time.time(),
                delivery_result=_RESULTS[disposition],
                incidents=admission.incidents,
                redaction=self.redaction,
            )
            reply = await inject(*report)
            logger.info(
                "dmarc.failure_report_sent domain=%s to=%s reply=%s",
                domain, ",".join(destinations), reply.code,
            )  # fmt: skip
        except Exception as error:
            logger.error("dmarc.failure_report_failed domain=%s error=%s", domain, error)

    @staticmethod
    def secret_at(path: Path) -> bytes:
        """The redaction key kept in ``path``, made (32 random octets, mode 0600) if missing.

        One key for every receiver process and across restarts, so a local
        part gives the same token in every report; it never leaves the file.
        """
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_bytes(32)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return path.read_bytes()
        with os.fdopen(descriptor, "wb") as file:
            file.write(secret)
        return secret

    async def drain(self) -> None:
        """Wait (up to 5 s) for reports still being worked out, at shutdown."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)
