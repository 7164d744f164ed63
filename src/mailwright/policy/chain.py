"""Running hooks: the policies of one server in order, each call bounded and contained.

:class:`PolicyChain` asks each policy's hook for a stage in configuration
order. The first :class:`~.decisions.Decision` ends the stage; ``None``
asks the next policy. A hook may be a plain function or a coroutine
function; an awaitable result is awaited for at most ``timeout`` seconds.

Containment is the point of this module: a hook that raises, or runs out of
time, never reaches the SMTP session. The stage is answered 451 4.3.0 (the
message stays with the client, which retries: nothing is lost), the error
is logged as ``policy.error`` with the policy, the hook and the exception,
and the server goes on. Informational stages (``on_delivery``) just log.

A plain function runs on the event loop: it must not block (use an async
hook and ``asyncio.to_thread`` for slow work). The timeout bounds only what
a hook awaits; a plain function that loops for ever cannot be interrupted.

A decision made by hand (``Decision(Verdict.REJECT)``) is checked like the
ones :func:`~.decisions.reject` makes: a refusal without a reply gets
:data:`DEFAULT_REJECT` or :data:`DEFAULT_TEMPFAIL`, and a reply of the wrong
class (a 250 for a reject) is a failing hook, so no hook can turn a refusal
into an acceptance by mistake.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from mailwright.policy.decisions import Decision, Verdict
from mailwright.policy.loader import Hook, Policy
from mailwright.smtp.replies import Reply

logger = logging.getLogger("mailwright.policy")

#: The answer when a hook fails: the client keeps the message and tries again.
POLICY_ERROR = Reply(451, "4.3.0", "Local policy error, try again later")

#: The replies of a hand-made refusal that carries none.
DEFAULT_REJECT = Reply(550, "5.7.1", "Rejected by local policy")
DEFAULT_TEMPFAIL = Reply(451, "4.7.1", "Try again later")

DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Step:
    """One hook call, for ``mailwright policy test`` and the logs."""

    policy: str
    stage: str
    decision: Decision | None
    error: str | None = None


class PolicyChain:
    """The loaded policies of one server, run stage by stage."""

    def __init__(self, policies: Sequence[Policy], *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.policies = tuple(policies)
        self.timeout = timeout
        self._hooks: dict[str, tuple[tuple[str, Hook], ...]] = {}
        for policy in self.policies:
            for stage, hook in policy.hooks.items():
                self._hooks[stage] = (*self._hooks.get(stage, ()), (policy.name, hook))
        self.needs_authentication = any(p.needs_authentication for p in self.policies)

    def __bool__(self) -> bool:
        return bool(self.policies)

    def has(self, stage: str) -> bool:
        """True when some policy has a hook for ``stage``."""
        return stage in self._hooks

    async def run(
        self, stage: str, context: object, trace: list[Step] | None = None
    ) -> Decision | None:
        """Ask each hook of ``stage`` in turn; the first decision wins.

        A hook that raises or times out gives a tempfail decision with
        :data:`POLICY_ERROR` (never an exception); a hook that returns
        something other than None or a Decision counts as failing too.
        """
        for name, hook in self._hooks.get(stage, ()):
            try:
                decision = await self._call(hook, context)
            except (Exception, SystemExit) as error:  # SystemExit: sys.exit() in a hook
                detail = _describe(error)
                logger.error("policy.error policy=%s hook=%s error=%s", name, stage, detail)
                logger.debug("policy.error traceback", exc_info=True)
                failed = Decision(Verdict.TEMPFAIL, POLICY_ERROR, f"{name}.{stage}: {detail}")
                if trace is not None:
                    trace.append(Step(name, stage, failed, detail))
                return failed
            if trace is not None:
                trace.append(Step(name, stage, decision))
            if decision is not None:
                logger.debug(
                    "policy.decision policy=%s hook=%s decision=%s",
                    name, stage, decision.describe(),
                )  # fmt: skip
                return decision
        return None

    async def run_traced(
        self, trace: list[Step] | None, stage: str, context: object
    ) -> Decision | None:
        """:meth:`run` with the trace first, for callers that keep one optionally."""
        return await self.run(stage, context, trace)

    async def notify(self, stage: str, context: object) -> None:
        """Call every hook of an informational stage; results are ignored, errors logged."""
        for name, hook in self._hooks.get(stage, ()):
            try:
                await self._invoke(hook, context)
            except (Exception, SystemExit) as error:
                logger.error(
                    "policy.error policy=%s hook=%s error=%s", name, stage, _describe(error)
                )

    async def _invoke(self, hook: Hook, context: object) -> object:
        """Call ``hook``; await what it returns for at most ``timeout`` seconds."""
        # TODO: a plain (not async) hook that blocks or loops stalls every connection of
        # this process and no timeout can stop it; running such hooks in a worker thread
        # would bound them at the cost of a thread hop per call.
        result = hook(context)
        if inspect.isawaitable(result):
            async with asyncio.timeout(self.timeout):
                result = await result
        return result

    async def _call(self, hook: Hook, context: object) -> Decision | None:
        result = await self._invoke(hook, context)
        if result is None:
            return None
        if not isinstance(result, Decision):
            raise TypeError(
                f"a hook must return None or a Decision (accept, reject, ...), "
                f"not {type(result).__name__}"
            )
        return _checked(result)


def _checked(decision: Decision) -> Decision:
    """``decision`` with a reply that matches its verdict; raises ValueError otherwise."""
    verdict, reply = decision.verdict, decision.reply
    if not isinstance(verdict, Verdict):
        raise TypeError(f"a Decision's verdict must be a Verdict, not {verdict!r}")
    if verdict is Verdict.REJECT:
        if reply is None:
            return Decision(verdict, DEFAULT_REJECT, decision.reason)
        if not reply.is_permanent:
            raise ValueError(f"a reject decision needs a 5xx reply, not {reply}")
    elif verdict is Verdict.TEMPFAIL:
        if reply is None:
            return Decision(verdict, DEFAULT_TEMPFAIL, decision.reason)
        if not reply.is_transient:
            raise ValueError(f"a tempfail decision needs a 4xx reply, not {reply}")
    return decision


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
