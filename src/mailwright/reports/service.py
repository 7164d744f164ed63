"""Aggregate reports as the server and ``mailwright dmarc report`` run them.

:class:`ReportService` ties the evaluation store, the DNS cache and the
MTA's injection path to one :class:`~.schedule.AggregateReporter`. The
server's first process runs :meth:`ReportService.run_schedule` and answers
the control command ``dmarc_report`` with :meth:`ReportService.report`,
so that a report asked for by hand counts the evaluations still in this
process's buffer and cannot race the schedule. Without a running server,
:func:`report_offline` opens the store and the spool itself.

Report outcomes travel as JSON (:func:`outcome_json`): ``status``,
``report_id``, ``domain``, ``begin``, ``end``, ``messages``, ``rows``,
``filename``, ``recipients``, ``destinations`` (each ``uri``,
``verdict``, ``reason``), ``reply`` and ``detail``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mailwright.config import Config
from mailwright.dns.queries import CachingResolver
from mailwright.reports.evaluations import EvaluationStore
from mailwright.reports.schedule import AggregateReporter, Inject, ReportOutcome

logger = logging.getLogger("mailwright.dmarc")

#: How many flush intervals a by-hand report waits for the other receivers' buffers.
OTHERS_MARGIN = 1.5


class ReportService:
    """The aggregate reporter of one server (or of one offline command)."""

    def __init__(
        self,
        config: Config,
        store: EvaluationStore,
        resolver: CachingResolver,
        inject: Inject,
    ) -> None:
        self.config = config
        self.reporter = reporter_for(config, store, resolver, inject)
        self._task: asyncio.Task[None] | None = None

    async def report(
        self, until: float, *, send: bool, include_current: bool = False
    ) -> list[dict[str, Any]]:
        """Build (and with ``send``, queue) the reports of what was recorded before ``until``.

        ``include_current`` counts the period still under way too, up to ``until``.
        """
        if self.config.server.receivers > 1:
            # The other receiving processes write their buffers every flush interval:
            # waiting one makes their latest evaluations count too.
            await asyncio.sleep(self.reporter.store.flush_interval * OTHERS_MARGIN)
        outcomes = await self.reporter.report(until, send=send, include_current=include_current)
        return [outcome_json(outcome) for outcome in outcomes]

    def run_schedule(self) -> None:
        """Start reporting every ``report_interval`` in the background."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="dmarc-reports")

    async def _run(self) -> None:
        try:
            await self.reporter.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug, not a fault of the data: logged loudly, mail flow is unaffected.
            logger.exception("dmarc.reporter_failed")

    async def stop(self) -> None:
        """Stop the schedule."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def reporter_for(
    config: Config, store: EvaluationStore, resolver: CachingResolver, inject: Inject
) -> AggregateReporter:
    """The reporter ``config`` describes, over ``store``, ``resolver`` and ``inject``."""
    return AggregateReporter(
        store,
        resolver,
        inject,
        config.dmarc,
        hostname=config.server.hostname,
        org_name=config.dmarc.report_org_name or None,
    )


def outcome_json(outcome: ReportOutcome) -> dict[str, Any]:
    """One report's outcome as the control socket and ``--json`` carry it."""
    report = outcome.report
    reply = outcome.reply
    return {
        "status": outcome.status,
        "report_id": outcome.report_id,
        "domain": report.policy.domain,
        "begin": report.metadata.begin,
        "end": report.metadata.end,
        "messages": report.message_count,
        "rows": len(report.rows),
        "filename": outcome.filename,
        "recipients": list(outcome.recipients),
        "destinations": [
            {"uri": d.uri, "verdict": str(d.verdict), "reason": d.reason}
            for d in outcome.destinations
        ],
        "reply": None if reply is None else f"{reply.code} {reply.status or ''} {reply.text}",
        "detail": outcome.detail,
    }


async def report_offline(
    config: Config,
    until: float,
    *,
    send: bool,
    resolver: CachingResolver,
    include_current: bool = False,
) -> tuple[list[dict[str, Any]], list[ReportOutcome]]:
    """:meth:`ReportService.report` with no server running: store and spool opened here.

    Returns the JSON outcomes and the outcomes themselves (whose XML the
    command line may write to files).
    """
    store = EvaluationStore(config.dmarc.store, interval=config.dmarc.report_interval)
    try:
        async with _injector(config, send) as inject:
            reporter = reporter_for(config, store, resolver, inject)
            outcomes = await reporter.report(until, send=send, include_current=include_current)
    finally:
        await store.close()
    return [outcome_json(outcome) for outcome in outcomes], outcomes


@contextlib.asynccontextmanager
async def _injector(config: Config, send: bool) -> AsyncIterator[Inject]:
    """The MTA's injection path over the configured spool (a refusal when not sending)."""
    from mailwright.server.mta import MtaHandler
    from mailwright.server.signing import OutboundSigning
    from mailwright.smtp.replies import Reply
    from mailwright.spool import Spool
    from mailwright.users import UserStore

    if not send:

        async def refuse(envelope: object, content: bytes) -> Reply:
            raise AssertionError("a dry run never injects")

        yield refuse
        return

    events = _event_log(config.server.events_log)
    spool = Spool(config.server.spool, fsync=config.server.fsync, min_free_bytes=0)
    try:
        async with spool:
            handler = MtaHandler(
                role="reports",
                hostname=config.server.hostname,
                spool=spool,
                events=events,
                users=UserStore(config.server.users_file),
                accepted_domains=frozenset(),
                signing=OutboundSigning(config.dkim),
            )
            yield handler.inject
    finally:
        events.close()


def _event_log(path: Path) -> Any:
    from mailwright.events import EventLog

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return EventLog(path)
    except OSError:
        return EventLog(None)
