"""From replies to outcomes: delivered, deferred, bounced or expired.

This is the pure half of the delivery agent. Given the claimed recipients of a
message and the reply each got, it decides per recipient (RFC 5321 §4.2.1 and
§4.5.4.1): 2xx is delivered; 5xx fails at once; 4xx (and any failure that is
not an SMTP reply, which the transports already turned into a 4xx) is retried
on the :class:`~mailwright.queue.retry.RetrySchedule` until the message's
lifetime, counted from its arrival as in Postfix and Exim, runs out. Failures
and delay warnings become one RFC 3464 DSN per message, stored with the
outcomes in one spool transaction so a bounce is never lost nor sent twice.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mailwright.bounce import RecipientReport, build_dsn
from mailwright.envelope import Envelope, Recipient
from mailwright.events import EventName
from mailwright.headers import message_id
from mailwright.queue.retry import RetrySchedule
from mailwright.smtp.replies import Reply
from mailwright.spool import Claimed, ClaimedRecipient, Deferred, Delivered, Failed, Outcome


@dataclass(slots=True)
class Settled:
    """Everything one delivery attempt of one message produced."""

    outcomes: list[Outcome] = field(default_factory=list)
    bounces: list[tuple[Envelope, bytes]] = field(default_factory=list)
    events: list[tuple[EventName, dict[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OutcomePolicy:
    """What the agent needs to settle recipients: schedule, names and DSN limits."""

    retry: RetrySchedule
    hostname: str
    return_limit: int = 100_000


def settle(
    claimed: Claimed,
    results: Sequence[tuple[ClaimedRecipient, Reply]],
    *,
    remote_host: str | None,
    content: bytes | None,
    policy: OutcomePolicy,
    now: float,
    rng: random.Random,
    queue: str | None = None,
) -> Settled:
    """Turn each recipient's reply into an outcome, events and (maybe) DSNs.

    ``content`` is the message, needed only when a DSN is built; None means
    it could not be read and DSNs carry headers only from an empty body.
    ``queue`` names the destination queue the attempt was made from, for the
    events. Recipients deferred together get one retry time, so they are
    tried again together.
    """
    settled = Settled()
    failed: list[RecipientReport] = []
    delayed: list[RecipientReport] = []
    when = dt.datetime.fromtimestamp(now, dt.UTC)
    message_id = claimed.message_id
    spread = rng.random()  # one for all: recipients deferred together retry together

    for rcpt, reply in results:
        base = _event_fields(claimed, rcpt, reply, remote_host, queue)
        if reply.code < 400:
            settled.outcomes.append(Delivered(rcpt.rcpt_id, str(reply), remote_host, message_id))
            settled.events.append(("delivered", base))
            continue

        report = RecipientReport(
            recipient=_recipient(rcpt),
            action="failed",
            reply=reply,
            remote_mta=_host_only(remote_host),
            last_attempt=when,
        )
        if reply.is_permanent:
            settled.outcomes.append(Failed(rcpt.rcpt_id, str(reply), remote_host, message_id))
            settled.events.append(("bounced", base))
            failed.append(report)
            continue

        attempts = rcpt.attempts + 1
        next_attempt = policy.retry.next_attempt(claimed.received_at, attempts, now, spread=spread)
        if next_attempt is None:
            settled.outcomes.append(Failed(rcpt.rcpt_id, str(reply), remote_host, message_id))
            settled.events.append(("expired", base))
            failed.append(report)
            continue

        warn = policy.retry.should_warn(claimed.received_at, now, rcpt.warned)
        settled.outcomes.append(
            Deferred(
                rcpt.rcpt_id,
                next_attempt,
                str(reply),
                remote_host,
                attempted_at=now,
                warned=warn or rcpt.warned,
                message_id=message_id,
            )
        )
        settled.events.append(("deferred", {**base, "next_attempt": next_attempt}))
        if warn:
            until = dt.datetime.fromtimestamp(policy.retry.expires_at(claimed.received_at), dt.UTC)
            delayed.append(
                RecipientReport(
                    recipient=_recipient(rcpt),
                    action="delayed",
                    reply=reply,
                    remote_mta=_host_only(remote_host),
                    last_attempt=when,
                    will_retry_until=until,
                )
            )
            settled.events.append(("delay_warning", base))

    for reports in (failed, delayed):
        if reports:
            dsn = build_dsn(
                claimed.envelope,
                content or b"",
                reporting_mta=policy.hostname,
                reports=reports,
                now=when,
                arrival=dt.datetime.fromtimestamp(claimed.received_at, dt.UTC),
                message_id_domain=policy.hostname,
                return_limit=policy.return_limit,
            )
            if dsn is not None:
                settled.bounces.append(dsn)
    return settled


def needs_content(
    claimed: Claimed,
    recipients: Sequence[ClaimedRecipient],
    reply: Reply,
    *,
    policy: OutcomePolicy,
    now: float,
) -> bool:
    """Whether settling these recipients with ``reply`` builds a DSN (which quotes the message).

    True for a permanent failure, and for a transient one that expires the
    message or is due a delay warning; the caller then loads the content
    it would otherwise not need.
    """
    if reply.code < 400:
        return False
    if reply.is_permanent:
        return True
    retry = policy.retry
    for rcpt in recipients:
        if retry.next_attempt(claimed.received_at, rcpt.attempts + 1, now, spread=0.5) is None:
            return True
        if retry.should_warn(claimed.received_at, now, rcpt.warned):
            return True
    return False


def dsn_received_fields(
    queue_id: str, envelope: Envelope, content: bytes, original: str
) -> dict[str, Any]:
    """The fields of the ``received`` event of a DSN we queued about ``original``."""
    return {
        "queue_id": queue_id,
        "message_id": message_id(content),
        "sender": envelope.sender,
        "recipients": [r.address for r in envelope.recipients],
        "size": len(content),
        "source": "dsn",
        "original_queue_id": original,
    }


def _recipient(rcpt: ClaimedRecipient) -> Recipient:
    return Recipient(rcpt.address, rcpt.notify, rcpt.orcpt)


def _host_only(remote_host: str | None) -> str | None:
    """The name for Remote-MTA: ``mx.example[192.0.2.1]:25`` gives ``mx.example``.

    A peer known only by address (``[192.0.2.1]:25``, a route to an address)
    gives the address.
    """
    if not remote_host:
        return None
    if remote_host.startswith("["):
        return remote_host[1:].split("]", 1)[0] or None
    return remote_host.split("[", 1)[0].rsplit(":", 1)[0] or None


def _event_fields(
    claimed: Claimed,
    rcpt: ClaimedRecipient,
    reply: Reply,
    remote_host: str | None,
    queue: str | None,
) -> dict[str, Any]:
    return {
        "queue_id": claimed.queue_id,
        "message_id": claimed.envelope.message_id,
        "queue": queue,
        "sender": claimed.envelope.sender,
        "recipient": rcpt.address,
        "remote_host": remote_host,
        "reply": reply,
        "attempts": rcpt.attempts + 1,
        "size": claimed.size,
    }
