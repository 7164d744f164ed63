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
) -> Settled:
    """Turn each recipient's reply into an outcome, events and (maybe) DSNs.

    ``content`` is the message, needed only when a DSN is built; None means
    it could not be read and DSNs carry headers only from an empty body.
    """
    settled = Settled()
    failed: list[RecipientReport] = []
    delayed: list[RecipientReport] = []
    when = dt.datetime.fromtimestamp(now, dt.UTC)
    message_id = claimed.message_id

    for rcpt, reply in results:
        base = _event_fields(claimed, rcpt, reply, remote_host)
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
        next_attempt = policy.retry.next_attempt(
            claimed.received_at, attempts, now, spread=rng.random()
        )
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


def _recipient(rcpt: ClaimedRecipient) -> Recipient:
    return Recipient(rcpt.address, rcpt.notify, rcpt.orcpt)


def _host_only(remote_host: str | None) -> str | None:
    """``mx.example[192.0.2.1]:25`` becomes ``mx.example`` for Remote-MTA."""
    if not remote_host:
        return None
    return remote_host.split("[", 1)[0].rsplit(":", 1)[0].strip("[]") or None


def _event_fields(
    claimed: Claimed, rcpt: ClaimedRecipient, reply: Reply, remote_host: str | None
) -> dict[str, Any]:
    return {
        "queue_id": claimed.queue_id,
        "sender": claimed.envelope.sender,
        "recipient": rcpt.address,
        "remote_host": remote_host,
        "reply": reply,
        "attempts": rcpt.attempts + 1,
        "size": claimed.size,
    }
