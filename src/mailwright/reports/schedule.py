"""The aggregate reporter: every period, build the reports that ended and queue them.

Use::

    reporter = AggregateReporter(
        store, resolver, mta.inject, config.dmarc,
        hostname=config.server.hostname, clock=time.time,
    )
    outcomes = await reporter.report(until=time.time(), send=False)  # a dry run
    await reporter.run()  # forever: report each period once it is over

:meth:`AggregateReporter.report` takes the store's pending rows of every
period that ended by ``until``, builds one report per policy domain and
period (:mod:`.aggregate`), writes it (:mod:`.xml_write`), compresses it,
checks its destinations (:mod:`.destinations`, over DNS), and, when
``send`` is true, composes the email (:mod:`.outgoing`), hands it to
``inject`` (the MTA's :meth:`~mailwright.server.mta.MtaHandler.inject`,
which DKIM-signs and queues it) and marks the rows reported. What happened
to each report is a :class:`ReportOutcome`, and a log line:

* ``dmarc.report_sent``: queued for its accepted destinations; rows marked;
* ``dmarc.report_skipped``: no destination may receive it (none verified,
  none supported, all over their size limit); rows marked, as sending will
  never become possible for this report;
* ``dmarc.report_deferred``: a destination could not be checked (DNS
  failed transiently) and none was accepted; rows stay pending and the
  next run tries again;
* ``dmarc.report_failed``: ``inject`` refused the message; rows stay
  pending;
* ``dmarc.report_invalid``: the report could not be written (a value the
  schema does not allow, a bug upstream); rows stay pending until purged;
* ``dmarc.report_built``: a dry run (``send=False``); nothing changes;
* ``dmarc.report_destination_skipped``: one destination left out, and why.

:meth:`AggregateReporter.run` sleeps until each period boundary (UTC
multiples of ``report_interval``) plus a grace period, so that other
processes' buffers (flushed every second) and late evaluations have landed,
then reports what ended at the boundary, sends only if
``config.send_reports``, and purges old rows. ``clock`` and ``sleep`` are
parameters, so a test with a virtual clock runs days in milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from mailwright.config import DmarcConfig
from mailwright.dns.queries import CachingResolver, run
from mailwright.envelope import Envelope
from mailwright.reports.aggregate import BuiltReport, build_reports
from mailwright.reports.destinations import (
    Destination,
    Verdict,
    apply_size_limit,
    check_destinations,
)
from mailwright.reports.evaluations import EvaluationStore, EvaluationStoreError
from mailwright.reports.model import AggregateReport
from mailwright.reports.outgoing import (
    attachment_name,
    compose_report,
    compress,
    encode_attachment,
)
from mailwright.reports.xml_write import ReportFormatError, to_xml
from mailwright.smtp.replies import Reply

logger = logging.getLogger("mailwright.dmarc")

#: ``inject(envelope, content)``: queue a message, answer with a reply (MtaHandler.inject).
Inject = Callable[[Envelope, bytes], Awaitable[Reply]]

Status = Literal["sent", "skipped", "deferred", "failed", "invalid", "built"]

_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    """What became of one report.

    ``status`` is one of ``sent``, ``skipped``, ``deferred``, ``failed``,
    ``invalid`` or ``built`` (see the module docstring). ``xml`` and
    ``attachment`` (compressed) are empty for an invalid report;
    ``destinations`` lists every ``rua`` URI with its verdict;
    ``recipients`` the mailboxes the report went (or, in a dry run, would
    go) to; ``reply`` is inject's answer when it was called.
    """

    status: Status
    report: AggregateReport
    filename: str
    xml: bytes
    attachment: bytes
    destinations: tuple[Destination, ...]
    recipients: tuple[str, ...]
    reply: Reply | None = None
    detail: str = ""

    @property
    def report_id(self) -> str:
        """The report's Report-ID."""
        return self.report.metadata.report_id


class AggregateReporter:
    """Builds, sends and schedules the aggregate reports of one server.

    ``store`` holds the evaluations (its ``interval`` must equal
    ``config.report_interval``); ``resolver`` answers the destination
    checks; ``inject`` queues the report emails. ``hostname`` is our host
    name: the receiver of the file names and the domain of Report-IDs.
    ``org_name`` is the Reporting Organization (``config.report_org_name``,
    else ``hostname``, when not given); the Subject's ``Submitter:`` is it
    when it is a domain name, else ``hostname`` (the ABNF wants a domain).
    Reports come from ``config.report_from``, also the contact address in
    every report; without it reports are built but never sent (``send`` is
    ignored, and logged), and the contact is ``postmaster@<hostname>``.
    ``grace`` is how long :meth:`run` waits after a period ends; reported
    rows are kept for ``retention`` seconds, and reports that could not be
    sent for ``give_up_after`` seconds are dropped. ``make_token`` makes
    the MIME boundaries (tests pass a fixed one). Raises
    :class:`ValueError` when the store's interval differs from the
    configuration's.
    """

    def __init__(
        self,
        store: EvaluationStore,
        resolver: CachingResolver,
        inject: Inject,
        config: DmarcConfig,
        *,
        hostname: str,
        org_name: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        grace: float = 300.0,
        retention: float = 7 * _DAY,
        give_up_after: float = 3 * _DAY,
        make_token: Callable[[], str] | None = None,
    ) -> None:
        if store.interval != config.report_interval:
            raise ValueError(
                f"the store's period ({store.interval}s) is not the configured"
                f" report_interval ({config.report_interval}s)"
            )
        if not hostname:
            raise ValueError("the reporter needs our host name")
        self.store = store
        self.resolver = resolver
        self.inject = inject
        self.config = config
        self.hostname = hostname.lower().rstrip(".")
        self.org_name = org_name or config.report_org_name or self.hostname
        self.sender = config.report_from
        self.contact = config.report_from or f"postmaster@{self.hostname}"
        self.submitter = self.org_name if _is_domain(self.org_name) else self.hostname
        self.clock = clock
        self.sleep = sleep
        self.grace = grace
        self.retention = retention
        self.give_up_after = give_up_after
        self.make_token = make_token

    # -- one run ----------------------------------------------------------------------

    async def report(
        self, until: float, *, send: bool, include_current: bool = False
    ) -> list[ReportOutcome]:
        """Build (and with ``send``, queue and mark) the reports of periods ended by ``until``.

        The store's buffer is flushed first, so this process's latest
        evaluations are counted. Without ``config.report_from`` nothing is
        sent, whatever ``send`` says. Raises :class:`EvaluationStoreError`
        when the store cannot be read or written.
        """
        await self.store.flush()
        pending = await self.store.pending(until, include_current=include_current)
        built = build_reports(
            pending, org_name=self.org_name, email=self.contact, receiver=self.hostname
        )
        if send and built and self.sender is None:
            logger.warning(
                "dmarc.report_not_sent reports=%d reason='no [dmarc] report_from'", len(built)
            )
            send = False
        outcomes = []
        for one in built:
            outcome = await self._one(one, send=send)
            self._log(outcome)
            outcomes.append(outcome)
        return outcomes

    async def _one(self, built: BuiltReport, *, send: bool) -> ReportOutcome:
        report = built.report
        filename = attachment_name(report, self.hostname, built.unique)
        try:
            xml = to_xml(report)
        except ReportFormatError as error:
            return ReportOutcome("invalid", report, filename, b"", b"", (), (), detail=str(error))
        attachment = compress(xml)

        checked = await run(check_destinations(built.policy_domain, built.rua), self.resolver)
        destinations = apply_size_limit(checked, len(encode_attachment(attachment)))
        for destination in destinations:
            if not destination.accepted:
                self._log_destination(report, destination)
        recipients = tuple(
            dict.fromkeys(d.mailbox for d in destinations if d.accepted and d.mailbox)
        )

        def outcome(status: Status, detail: str = "", reply: Reply | None = None) -> ReportOutcome:
            return ReportOutcome(
                status, report, filename, xml, attachment, destinations, recipients, reply, detail
            )

        if not send:
            return outcome("built")
        if not recipients:
            if any(d.verdict is Verdict.UNKNOWN for d in destinations):
                return outcome(
                    "deferred", "a destination could not be checked; trying again later"
                )
            await self._mark(built)
            return outcome("skipped", "no destination may receive it")

        assert self.sender is not None  # report() never sends without one
        envelope, content = compose_report(
            report,
            attachment,
            sender=self.sender,
            recipients=recipients,
            receiver=self.hostname,
            submitter=self.submitter,
            unique=built.unique,
            now=self.clock(),
            make_token=self.make_token,
        )
        reply = await self.inject(envelope, content)
        if not reply.is_positive:
            return outcome("failed", f"inject answered {reply.code} {reply.text}", reply)
        await self._mark(built)
        return outcome("sent", reply.text, reply)

    async def _mark(self, built: BuiltReport) -> None:
        """Mark the report's rows with the counts it holds (see ``mark_reported``)."""
        await self.store.mark_reported(
            built.ids, built.report.metadata.report_id, counts=built.counts, covered=built.partial
        )

    # -- the schedule -----------------------------------------------------------------

    def next_boundary(self, now: float) -> float:
        """The first period boundary after ``now`` (periods are UTC multiples of the interval)."""
        interval = self.config.report_interval
        return (math.floor(now / interval) + 1) * interval

    async def run(self) -> None:
        """Report each period once it is over, forever (until cancelled).

        Sleeps until the next boundary plus ``grace``, reports every period
        ended by that boundary (periods a failed run left pending included),
        sending when ``config.send_reports`` is set, then purges rows older
        than ``retention`` (reported) or ``give_up_after`` (never sent).
        A store failure is logged and the next period tries again.
        """
        last = -math.inf
        while True:
            # The boundary whose grace period ends next; never one already reported,
            # should a sleep end a little early.
            boundary = max(
                self.next_boundary(self.clock() - self.grace),
                last + self.config.report_interval,
            )
            last = boundary
            wake = boundary + self.grace
            delay = wake - self.clock()
            if delay > 0:
                await self.sleep(delay)
            try:
                await self.report(boundary, send=self.config.send_reports)
                now = self.clock()
                purged = await self.store.purge(
                    reported_before=now - self.retention, pending_before=now - self.give_up_after
                )
                if purged:
                    logger.info("dmarc.reports_purged rows=%d", purged)
            except EvaluationStoreError as error:
                logger.error("dmarc.report_error boundary=%d error=%s", boundary, error)

    # -- logging ------------------------------------------------------------------------

    def _log(self, outcome: ReportOutcome) -> None:
        report = outcome.report
        fields = (
            f"domain={report.policy.domain} report_id={outcome.report_id}"
            f" begin={report.metadata.begin} end={report.metadata.end}"
            f" messages={report.message_count} rows={len(report.rows)}"
        )
        if outcome.status == "sent":
            logger.info(
                "dmarc.report_sent %s recipients=%s size=%d reply=%r",
                fields,
                ",".join(outcome.recipients),
                len(outcome.attachment),
                outcome.detail,
            )
        elif outcome.status == "built":
            logger.info(
                "dmarc.report_built %s recipients=%s size=%d",
                fields,
                ",".join(outcome.recipients) or "-",
                len(outcome.attachment),
            )
        elif outcome.status == "invalid":
            logger.error("dmarc.report_invalid %s error=%r", fields, outcome.detail)
        elif outcome.status == "failed":
            logger.warning("dmarc.report_failed %s detail=%r", fields, outcome.detail)
        else:  # skipped, deferred
            logger.info("dmarc.report_%s %s detail=%r", outcome.status, fields, outcome.detail)

    def _log_destination(self, report: AggregateReport, destination: Destination) -> None:
        logger.info(
            "dmarc.report_destination_skipped domain=%s report_id=%s uri=%s verdict=%s reason=%r",
            report.policy.domain,
            report.metadata.report_id,
            destination.uri,
            destination.verdict.value,
            destination.reason,
        )


def _is_domain(name: str) -> bool:
    """True for a plausible domain name: dot-separated labels of letters, digits and hyphens."""
    labels = name.rstrip(".").split(".")
    return len(labels) >= 2 and all(
        label and label.isascii() and label.replace("-", "").isalnum() for label in labels
    )
