"""The built-in report intake: aggregate reports others send about our domains.

:class:`ReportIntake` is a policy like any other. When a message is
addressed to ``[dmarc] report_address``, its ``on_message`` hook unpacks
and parses the reports it carries (:mod:`mailwright.reports.unpack`,
:mod:`mailwright.reports.xml_read`) and stores them
(:mod:`mailwright.reports.received`) before the 250, in a worker thread.
It never refuses: the message itself is delivered to the address's route
like any other, so the original report is kept even when it does not parse
(which is logged as ``dmarc.report_invalid``). ``mailwright dmarc sources``
reads the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from mailwright.errors import ReportError
from mailwright.policy.context import Message
from mailwright.reports.received import ReceivedReports
from mailwright.reports.unpack import report_payloads
from mailwright.reports.xml_read import parse_aggregate

logger = logging.getLogger("mailwright.dmarc")


class ReportIntake:
    """Parse and store the aggregate reports sent to ``address``."""

    API_VERSION = 1

    def __init__(self, address: str, store: Callable[[], ReceivedReports]) -> None:
        self.address = address.lower()
        self._store = store  # opens the store on first use, shared across reloads

    @property
    def store(self) -> ReceivedReports:
        """The store (opened by the first report that arrives)."""
        return self._store()

    async def on_message(self, message: Message) -> None:
        """Store the reports of a message to the report address; never refuses it."""
        if not any(address.lower() == self.address for address in message.recipients):
            return
        session = message.connection.session_id
        sender = message.transaction.sender
        try:
            stored = await asyncio.to_thread(self._take, message.content, sender)
        except ReportError as error:
            logger.warning(
                "dmarc.report_invalid session=%s sender=%s error=%s", session, sender, error
            )
            return
        for report_id, domain, new in stored:
            logger.info(
                "dmarc.report_received session=%s sender=%s report_id=%s domain=%s duplicate=%s",
                session, sender, report_id, domain, not new,
            )  # fmt: skip

    def _take(self, content: bytes, sender: str) -> list[tuple[str, str, bool]]:
        """Parse and store every report in ``content``: (report id, domain, newly stored)."""
        now = time.time()
        stored = []
        for payload in report_payloads(content):
            report = parse_aggregate(payload.xml)
            new = self.store.add(report, received_at=now, source=sender)
            stored.append((report.metadata.report_id, report.policy.domain, new))
        return stored
