"""Queue administration over the spool: the :class:`~mailwright.control.QueueAdmin` itself.

:class:`SpoolQueueAdmin` answers the control commands from an open
:class:`~mailwright.spool.Spool`. The CLI uses it directly when no server
runs (:func:`open_spool_admin`); a running server can put the same class
behind its :class:`~mailwright.control.ControlServer`, so both paths give the
same answers in the same shapes.

Bounces are complete here, not left to the delivery agent: the message's
queued recipients are claimed, a DSN (RFC 3464) is built with
:func:`mailwright.bounce.build_dsn`, and the recipients' removal and the DSN
are recorded in one spool transaction, so an administrator's bounce is never
lost and never sent twice. Recipients being delivered at that moment are
left alone (their delivery is already under way).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.parser
import email.policy
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Any

from mailwright.bounce import DEFAULT_RETURN_LIMIT, RecipientReport, build_dsn
from mailwright.config import Config
from mailwright.control import NoSuchMessage
from mailwright.delivery.outcomes import dsn_received_fields
from mailwright.envelope import Recipient
from mailwright.events import EventLog
from mailwright.smtp.replies import RETURNED_BY_ADMIN
from mailwright.spool import Failed, MessageNotFoundError, Spool
from mailwright.spool.store import DATABASE

# Headers shown by ``queue show`` are read from at most this much of the message.
_HEADER_LIMIT = 64 * 1024


class SpoolQueueAdmin:
    """Queue operations on an open ``spool``.

    ``hostname`` names us in DSNs (Reporting-MTA, MAILER-DAEMON@);
    ``return_limit`` caps how much of a bounced message is returned;
    ``events`` receives ``deleted`` and ``bounced`` events.
    """

    def __init__(
        self,
        spool: Spool,
        *,
        hostname: str,
        return_limit: int = DEFAULT_RETURN_LIMIT,
        events: EventLog | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spool = spool
        self.hostname = hostname
        self.return_limit = return_limit
        self.events = events
        self.clock = clock

    async def summary(self) -> dict[str, Any]:
        domains = await self.spool.summary()
        totals = self.spool.statistics()
        return {
            "messages": totals.messages,
            "recipients": totals.recipients,
            "active": totals.active,
            "domains": [
                {
                    "domain": item.domain,
                    "recipients": item.recipients,
                    "messages": item.messages,
                    "deferred": item.deferred,
                    "oldest": item.oldest_received_at,
                }
                for item in domains
            ],
        }

    async def list(self, domain: str | None, limit: int) -> list[dict[str, Any]]:
        messages = await self.spool.list_messages(domain=domain, limit=limit)
        return [asdict(message) for message in messages]

    async def show(self, queue_id: str) -> dict[str, Any]:
        try:
            detail = await self.spool.get_message(queue_id)
        except MessageNotFoundError:
            raise NoSuchMessage(queue_id) from None
        return {
            "queue_id": detail.queue_id,
            "sender": detail.envelope.sender,
            "size": detail.size,
            "received_at": detail.received_at,
            "envelope": detail.envelope.to_json_dict(),
            "recipients": [
                {key: value for key, value in asdict(item).items() if key != "rcpt_id"}
                for item in detail.recipients
            ],
            "headers": _headers(detail.content),
        }

    async def flush(self, queue_id: str | None) -> dict[str, Any]:
        flushed = await self.spool.flush(queue_id)
        if queue_id is not None and flushed == 0:
            await self.show(queue_id)  # raises NoSuchMessage when it is not there
        return {"flushed": flushed}

    async def delete(self, queue_id: str) -> dict[str, Any]:
        if not await self.spool.delete(queue_id):
            raise NoSuchMessage(queue_id)
        if self.events is not None:
            self.events.emit("deleted", queue_id=queue_id)
        return {"deleted": queue_id}

    async def bounce(self, queue_id: str) -> dict[str, Any]:
        """Return the message's queued recipients to the sender with one DSN.

        Recipients being delivered at this moment are left alone and counted
        as ``in_delivery``: their attempt decides their fate.
        """
        try:
            busy = sum(
                r.state == "active" for r in (await self.spool.get_message(queue_id)).recipients
            )
            claimed = await self.spool.claim_message_for_bounce(queue_id)
        except MessageNotFoundError:
            raise NoSuchMessage(queue_id) from None
        if not claimed.recipients:
            return {"bounced": 0, "dsn": None, "in_delivery": busy}

        content = await self.spool.load_content(claimed)
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        reports = [
            RecipientReport(
                Recipient(item.address, item.notify, item.orcpt),
                "failed",
                RETURNED_BY_ADMIN,
                last_attempt=now,
            )
            for item in claimed.recipients
        ]
        dsn = build_dsn(
            claimed.envelope,
            content,
            reporting_mta=self.hostname,
            reports=reports,
            now=now,
            return_limit=self.return_limit,
        )

        outcomes = [Failed(item.rcpt_id, RETURNED_BY_ADMIN.text) for item in claimed.recipients]
        dsn_ids = await self.spool.record(outcomes, [dsn] if dsn is not None else [])
        if self.events is not None and dsn is not None:
            fields = dsn_received_fields(dsn_ids[0], dsn[0], dsn[1], queue_id)
            self.events.emit("received", **fields)
        if self.events is not None:
            for item in claimed.recipients:
                self.events.emit(
                    "bounced",
                    queue_id=queue_id,
                    recipient=item.address,
                    reply=RETURNED_BY_ADMIN,
                    dsn_queue_id=dsn_ids[0] if dsn_ids else None,
                )
        return {
            "bounced": len(claimed.recipients),
            "dsn": dsn_ids[0] if dsn_ids else None,
            "in_delivery": busy,
        }


class EmptyQueueAdmin:
    """The queue of a spool that was never created: empty, and nothing to act on.

    Used so that ``mailwright queue`` on a fresh machine says "empty" without
    creating the spool folder as a side effect of looking.
    """

    async def summary(self) -> dict[str, Any]:
        return {"messages": 0, "recipients": 0, "active": 0, "domains": []}

    async def list(self, domain: str | None, limit: int) -> list[dict[str, Any]]:
        return []

    async def show(self, queue_id: str) -> dict[str, Any]:
        raise NoSuchMessage(queue_id)

    async def flush(self, queue_id: str | None) -> dict[str, Any]:
        if queue_id is not None:
            raise NoSuchMessage(queue_id)
        return {"flushed": 0}

    async def delete(self, queue_id: str) -> dict[str, Any]:
        raise NoSuchMessage(queue_id)

    async def bounce(self, queue_id: str) -> dict[str, Any]:
        raise NoSuchMessage(queue_id)


@contextlib.asynccontextmanager
async def open_spool_admin(config: Config) -> AsyncIterator[SpoolQueueAdmin | EmptyQueueAdmin]:
    """Open the configured spool (and event log) for one administrative command.

    Raises :class:`~mailwright.errors.SpoolError` when the spool cannot be opened.
    """
    directory = config.server.spool
    if not (directory / DATABASE).exists():
        yield EmptyQueueAdmin()
        return

    events = _open_events(config)
    spool = Spool(directory, fsync=config.server.fsync, min_free_bytes=0)
    try:
        async with spool:
            yield SpoolQueueAdmin(
                spool,
                hostname=config.server.hostname,
                return_limit=config.queue.bounce_original_limit,
                events=events,
            )
    finally:
        if events is not None:
            events.close()


def _open_events(config: Config) -> EventLog | None:
    # TODO: events of offline commands are lost when the log's folder does not exist
    # yet (no server ever ran); the spool still has the truth.
    path = config.server.events_log
    if not path.parent.is_dir():
        return None
    try:
        return EventLog(path)
    except OSError:
        return None


def _headers(content: bytes) -> list[list[str]]:
    """The message's header fields as ``[name, value]`` pairs, for people to read."""
    head = content[:_HEADER_LIMIT]
    end = head.find(b"\r\n\r\n")
    if end >= 0:
        head = head[: end + 2]
    message = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
    return [[name, " ".join(str(value).split())] for name, value in message.items()]
