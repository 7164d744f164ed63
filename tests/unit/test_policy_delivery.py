"""The delivery side's hooks: on_delivery per outcome, on_bounce per DSN (policy/delivery.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from mailwright.envelope import Envelope, Recipient
from mailwright.policy import Bounce, DeliveryOutcome, Policy, discard, reject, tempfail
from mailwright.policy.chain import PolicyChain
from mailwright.policy.delivery import PolicyDeliveryHooks
from mailwright.smtp.replies import Reply
from mailwright.spool import Claimed

REPLY = Reply(250, "2.0.0", "Ok")


def _claimed(**metadata: str) -> Claimed:
    envelope = Envelope("a@example.org", [Recipient("b@example.test")], metadata=dict(metadata))
    return Claimed("Q1", 1, envelope, (), 100, 0.0)


def _hooks(**hooks: Any) -> PolicyDeliveryHooks:
    chain = PolicyChain([Policy("p", dict(hooks))], timeout=0.2)
    return PolicyDeliveryHooks(lambda: chain)


def _dsn(to: str = "a@example.org") -> tuple[Envelope, bytes]:
    return Envelope("", [Recipient(to)], metadata={"dsn": "failure"}), b"Subject: bounce\r\n\r\n"


class TestOutcomes:
    """on_delivery hears each recipient outcome, in the background."""

    async def test_each_outcome_reaches_the_hook_with_the_metadata(self) -> None:
        """Delivered and bounced events become DeliveryOutcome values; others are skipped."""
        seen: list[DeliveryOutcome] = []
        hooks = _hooks(on_delivery=seen.append)
        events: list[tuple[Any, dict[str, Any]]] = [
            ("delivered", {"recipient": "b@example.test", "reply": REPLY, "attempts": 1,
                           "remote_host": "sink[127.0.0.1]:25"}),
            ("delay_warning", {"recipient": "b@example.test"}),
            ("bounced", {"recipient": "c@example.test", "reply": "550 no", "attempts": 2}),
        ]  # fmt: skip

        hooks.outcomes(_claimed(tenant="acme"), events)
        await hooks.drain()

        assert [(o.status, o.recipient, o.attempts) for o in seen] == [
            ("delivered", "b@example.test", 1),
            ("bounced", "c@example.test", 2),
        ]
        assert seen[0].reply == REPLY
        assert seen[0].remote_host == "sink[127.0.0.1]:25"
        assert seen[1].reply is None  # not a Reply value
        assert all(o.metadata == {"tenant": "acme"} and o.queue_id == "Q1" for o in seen)

    async def test_without_an_on_delivery_hook_nothing_is_started(self) -> None:
        """A chain with no on_delivery hook costs nothing per outcome."""
        hooks = _hooks(on_rcpt=lambda r: None)

        hooks.outcomes(_claimed(), [("delivered", {"recipient": "b@example.test"})])

        assert not hooks._tasks

    async def test_a_slow_hook_does_not_hold_the_caller(self) -> None:
        """outcomes() returns at once; the hook runs (and times out) on its own."""
        started = asyncio.Event()

        async def slow(outcome: DeliveryOutcome) -> None:
            started.set()
            await asyncio.sleep(10)

        hooks = _hooks(on_delivery=slow)

        hooks.outcomes(_claimed(), [("delivered", {"recipient": "b@example.test"})])
        assert not started.is_set()
        await hooks.drain()

        assert started.is_set()
        assert not hooks._tasks


class TestBounces:
    """on_bounce may drop DSNs; a failing hook keeps them."""

    async def test_discard_and_reject_drop_the_dsn(self) -> None:
        """DSNs to a suppressed sender are dropped, the others kept in order."""

        def on_bounce(bounce: Bounce) -> object:
            to = bounce.envelope.recipients[0].address
            if to.startswith("forged"):
                return discard("forged sender")
            if to.startswith("blocked"):
                return reject("no bounces")
            return None

        hooks = _hooks(on_bounce=on_bounce)
        kept = _dsn("a@example.org")

        result = await hooks.bounces(
            _claimed(), [_dsn("forged@x.example"), kept, _dsn("blocked@x")]
        )

        assert hooks.filters_bounces
        assert result == [kept]

    async def test_the_hook_sees_the_original_envelope(self) -> None:
        """Bounce.original carries the reported message's metadata."""
        seen: list[dict[str, str]] = []
        hooks = _hooks(on_bounce=lambda b: seen.append(b.original.metadata))

        await hooks.bounces(_claimed(campaign="spring"), [_dsn()])

        assert seen == [{"campaign": "spring"}]

    async def test_a_failing_or_tempfailing_hook_keeps_the_dsn(self) -> None:
        """Losing a bounce is the worse error: raise or tempfail, the DSN stays."""

        def broken(bounce: Bounce) -> None:
            raise RuntimeError("oops")

        dsn = _dsn()

        assert await _hooks(on_bounce=broken).bounces(_claimed(), [dsn]) == [dsn]
        assert await _hooks(on_bounce=lambda b: tempfail("later")).bounces(_claimed(), [dsn]) == [
            dsn
        ]

    def test_without_an_on_bounce_hook_bounces_are_not_filtered(self) -> None:
        """The agent skips the filter (and its extra task) when no hook wants DSNs."""
        assert not _hooks(on_delivery=lambda o: None).filters_bounces
