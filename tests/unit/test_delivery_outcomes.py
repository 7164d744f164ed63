"""Tests for settling delivery attempts: delivered, deferred, bounced, expired."""

from __future__ import annotations

import email
import random

from mailwright.delivery.outcomes import OutcomePolicy, Settled, needs_content, settle
from mailwright.envelope import Envelope, Recipient
from mailwright.queue.retry import RetrySchedule
from mailwright.smtp.replies import Reply
from mailwright.spool import Claimed, ClaimedRecipient, Deferred, Delivered, Failed

ARRIVAL = 1_000_000.0
POLICY = OutcomePolicy(
    RetrySchedule([300.0, 3600.0], lifetime=5 * 86400.0, delay_warning=4 * 3600.0),
    hostname="mx.example.test",
)
CONTENT = b"From: a@sender.test\r\nSubject: hi\r\n\r\nbody\r\n"


def _claimed(*rcpts: ClaimedRecipient, sender: str = "a@sender.test") -> Claimed:
    envelope = Envelope(sender, [Recipient(r.address) for r in rcpts])
    return Claimed("Q1", 1, envelope, rcpts, len(CONTENT), ARRIVAL)


def _rcpt(rcpt_id: int, attempts: int = 0, warned: bool = False) -> ClaimedRecipient:
    return ClaimedRecipient(
        rcpt_id,
        f"r{rcpt_id}@example.test",
        "example.test",
        attempts,
        None if attempts == 0 else ARRIVAL,
        warned=warned,
    )


def _settle(claimed: Claimed, replies: list[Reply], now: float) -> Settled:
    return settle(
        claimed,
        list(zip(claimed.recipients, replies, strict=True)),
        remote_host="mx1.example.test[127.0.0.1]:25",
        content=CONTENT,
        policy=POLICY,
        now=now,
        rng=random.Random(1),
    )


def test_each_recipient_is_settled_by_its_own_reply() -> None:
    """2xx delivers, 5xx fails with one DSN, 4xx defers to the schedule's next time."""
    claimed = _claimed(_rcpt(1), _rcpt(2), _rcpt(3))
    replies = [
        Reply(250, "2.0.0", "ok"),
        Reply(550, "5.1.1", "no such user"),
        Reply(451, "4.3.0", "later"),
    ]

    settled = _settle(claimed, replies, now=ARRIVAL + 10)

    delivered, failed, deferred = settled.outcomes
    assert isinstance(delivered, Delivered)
    assert isinstance(failed, Failed)
    assert isinstance(deferred, Deferred)
    assert deferred.next_attempt == ARRIVAL + 10 + 300.0
    assert [name for name, _ in settled.events] == ["delivered", "bounced", "deferred"]
    [(dsn_envelope, dsn)] = settled.bounces
    assert dsn_envelope.sender == ""
    assert [r.address for r in dsn_envelope.recipients] == ["a@sender.test"]
    report = email.message_from_bytes(dsn).get_payload()[1].as_string()
    assert "Final-Recipient: rfc822; r2@example.test" in report
    assert "r3@example.test" not in report


def test_transient_failure_after_the_lifetime_expires_and_bounces() -> None:
    """A 4xx five days after arrival is final: the recipient expires with a DSN."""
    claimed = _claimed(_rcpt(1, attempts=30))

    settled = _settle(claimed, [Reply(421, "4.4.2", "busy")], now=ARRIVAL + 5 * 86400.0)

    [outcome] = settled.outcomes
    assert isinstance(outcome, Failed)
    assert [name for name, _ in settled.events] == ["expired"]
    assert len(settled.bounces) == 1


def test_delay_warning_is_sent_once_after_the_threshold() -> None:
    """The first deferral past four hours sends an action=delayed DSN and marks it warned."""
    late = ARRIVAL + 5 * 3600.0

    first = _settle(_claimed(_rcpt(1, attempts=3)), [Reply(451, "4.4.1", "x")], now=late)
    again = _settle(
        _claimed(_rcpt(1, attempts=4, warned=True)), [Reply(451, "4.4.1", "x")], now=late
    )

    [outcome] = first.outcomes
    assert isinstance(outcome, Deferred)
    assert outcome.warned
    [(_, dsn)] = first.bounces
    assert b"Action: delayed" in dsn
    assert again.bounces == []


def test_failures_of_a_bounce_are_never_bounced() -> None:
    """A message from the null sender that fails produces no DSN (RFC 5321 §4.5.5)."""
    claimed = _claimed(_rcpt(1), sender="")

    settled = _settle(claimed, [Reply(550, "5.1.1", "gone")], now=ARRIVAL)

    assert isinstance(settled.outcomes[0], Failed)
    assert settled.bounces == []


def test_recipients_deferred_together_retry_together() -> None:
    """Two recipients of one message refused alike get one next attempt, not two."""
    claimed = _claimed(_rcpt(1), _rcpt(2))
    later = Reply(451, "4.3.0", "later")

    settled = _settle(claimed, [later, later], now=ARRIVAL + 10)

    first, second = settled.outcomes
    assert isinstance(first, Deferred)
    assert isinstance(second, Deferred)
    assert first.next_attempt == second.next_attempt


def test_content_is_needed_only_when_a_dsn_will_quote_it() -> None:
    """A bounce, an expiry and a delay warning quote the message; a plain deferral does not."""
    fresh = _claimed(_rcpt(1))
    later = Reply(451, "4.4.1", "no answer")

    def needs(reply: Reply, after: float) -> bool:
        return needs_content(fresh, fresh.recipients, reply, policy=POLICY, now=ARRIVAL + after)

    plain = needs(later, 60)
    permanent = needs(Reply(550, "5.1.1", "no"), 60)
    expiring = needs(later, 6e5)
    warning = needs(later, 5 * 3600)
    delivered = needs(Reply(250, None), 0)

    assert (plain, permanent, expiring, warning, delivered) == (False, True, True, True, False)
