"""The delivery side's hooks: ``on_delivery`` for each outcome, ``on_bounce`` for each DSN.

:class:`PolicyDeliveryHooks` is what the delivery agent calls
(:class:`~mailwright.delivery.agent.DeliveryHooks`). Outcomes are already
decided when ``on_delivery`` hears of them (their record is being written
meanwhile), so those hooks run in background tasks and cannot slow delivery
down or change what happened. ``on_bounce`` runs before
a DSN is queued: :func:`~.decisions.discard` (or a reject) drops it, which
is how a policy suppresses bounces to, say, addresses it knows are forged.
A failing ``on_bounce`` hook keeps the DSN: losing a bounce is the worse error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from mailwright.envelope import Envelope
from mailwright.events import EventName
from mailwright.policy.chain import PolicyChain
from mailwright.policy.context import Bounce, DeliveryOutcome
from mailwright.policy.decisions import Verdict
from mailwright.smtp.replies import Reply
from mailwright.spool import Claimed

#: Seconds a stopping server waits for ``on_delivery`` hooks still running.
DRAIN_TIME = 5.0

_OUTCOMES = frozenset({"delivered", "deferred", "bounced", "expired"})


class PolicyDeliveryHooks:
    """Runs the current chain's delivery hooks; ``chain`` is read at each call (reloads)."""

    def __init__(self, chain: Callable[[], PolicyChain]) -> None:
        self._chain = chain
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def filters_bounces(self) -> bool:
        """True when some policy has an ``on_bounce`` hook."""
        return self._chain().has("on_bounce")

    def outcomes(self, claimed: Claimed, events: list[tuple[EventName, dict[str, Any]]]) -> None:
        """Start ``on_delivery`` for each recipient outcome among ``events``."""
        chain = self._chain()
        if not chain.has("on_delivery"):
            return
        for name, fields in events:
            if name not in _OUTCOMES:
                continue
            reply = fields.get("reply")
            outcome = DeliveryOutcome(
                queue_id=claimed.queue_id,
                recipient=str(fields.get("recipient", "")),
                status=name,
                reply=reply if isinstance(reply, Reply) else None,
                remote_host=fields.get("remote_host"),
                attempts=int(fields.get("attempts") or 0),
                metadata=dict(claimed.envelope.metadata),
            )
            task = asyncio.get_running_loop().create_task(chain.notify("on_delivery", outcome))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def bounces(
        self, claimed: Claimed, bounces: list[tuple[Envelope, bytes]]
    ) -> list[tuple[Envelope, bytes]]:
        """The DSNs no ``on_bounce`` hook discarded or rejected."""
        chain = self._chain()
        kept = []
        for envelope, content in bounces:
            context = Bounce(claimed.queue_id, claimed.envelope, envelope, content)
            decision = await chain.run("on_bounce", context)
            # A failing hook comes back as a tempfail: the DSN is kept.
            if decision is not None and decision.verdict in (Verdict.DISCARD, Verdict.REJECT):
                continue
            kept.append((context.envelope, context.content))
        return kept

    async def drain(self) -> None:
        """Wait (up to :data:`DRAIN_TIME` seconds) for running ``on_delivery`` hooks."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=DRAIN_TIME)
