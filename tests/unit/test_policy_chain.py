"""Running hooks in order, each call bounded and contained (policy/chain.py)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any

import pytest

from mailwright.policy import Decision, Policy, Verdict, accept, discard, reject, tempfail
from mailwright.policy.chain import (
    DEFAULT_REJECT,
    DEFAULT_TEMPFAIL,
    POLICY_ERROR,
    PolicyChain,
    Step,
)
from mailwright.smtp.replies import Reply


def _policy(name: str, **hooks: Callable[[Any], Any]) -> Policy:
    return Policy(name, dict(hooks))


def _recording(
    calls: list[str], name: str, answer: Decision | None = None
) -> Callable[[Any], Any]:
    def hook(context: Any) -> Decision | None:
        calls.append(name)
        return answer

    return hook


class TestOrder:
    """Policies are asked in configuration order; the first decision ends the stage."""

    async def test_every_hook_is_asked_while_they_have_no_opinion(self) -> None:
        """None from each hook asks the next; the stage ends with no decision."""
        calls: list[str] = []
        chain = PolicyChain(
            [
                _policy("a", on_rcpt=_recording(calls, "a")),
                _policy("b", on_rcpt=_recording(calls, "b")),
            ]
        )

        assert await chain.run("on_rcpt", object()) is None
        assert calls == ["a", "b"]

    async def test_the_first_decision_wins_and_later_policies_are_not_asked(self) -> None:
        """A reject from the first policy is the answer; the second never runs."""
        calls: list[str] = []
        refusal = reject("No", code=550, status="5.1.1")
        chain = PolicyChain(
            [
                _policy("a", on_rcpt=_recording(calls, "a", refusal)),
                _policy("b", on_rcpt=_recording(calls, "b", accept())),
            ]
        )

        assert await chain.run("on_rcpt", object()) == refusal
        assert calls == ["a"]

    async def test_accept_also_ends_the_stage(self) -> None:
        """accept() stops the chain: a later reject is not consulted."""
        calls: list[str] = []
        chain = PolicyChain(
            [
                _policy("a", on_mail=_recording(calls, "a", accept("partner"))),
                _policy("b", on_mail=_recording(calls, "b", reject("No"))),
            ]
        )

        decision = await chain.run("on_mail", object())

        assert decision is not None
        assert decision.verdict is Verdict.ACCEPT
        assert calls == ["a"]

    async def test_only_the_hooks_of_the_stage_run(self) -> None:
        """A policy without a hook for the stage is skipped."""
        calls: list[str] = []
        chain = PolicyChain(
            [_policy("a", on_mail=_recording(calls, "a")), _policy("b", on_rcpt=lambda c: None)]
        )

        assert await chain.run("on_rcpt", object()) is None
        assert calls == []
        assert chain.has("on_mail")
        assert chain.has("on_rcpt")
        assert not chain.has("on_message")

    async def test_the_trace_records_each_call(self) -> None:
        """Each hook called leaves a Step with its policy, stage and decision."""
        trace: list[Step] = []
        refusal = tempfail("Later")
        chain = PolicyChain(
            [_policy("a", on_rcpt=lambda c: None), _policy("b", on_rcpt=lambda c: refusal)]
        )

        await chain.run("on_rcpt", object(), trace)

        assert trace == [Step("a", "on_rcpt", None), Step("b", "on_rcpt", refusal)]

    def test_an_empty_chain_is_false(self) -> None:
        """``if chain:`` tells whether any policy is loaded."""
        assert not PolicyChain([])
        assert PolicyChain([_policy("a")])

    def test_needs_authentication_when_any_policy_does(self) -> None:
        """One policy asking for authentication is enough."""
        chain = PolicyChain([_policy("a"), Policy("b", {}, needs_authentication=True)])

        assert chain.needs_authentication


class TestSyncAndAsync:
    """Hooks may be plain functions or coroutine functions."""

    async def test_an_async_hook_is_awaited(self) -> None:
        """The decision of a coroutine function is the awaited result."""

        async def on_rcpt(context: Any) -> Decision:
            await asyncio.sleep(0)
            return reject("async no")

        chain = PolicyChain([_policy("a", on_rcpt=on_rcpt)])

        assert await chain.run("on_rcpt", object()) == reject("async no")

    async def test_a_sync_hook_returning_an_awaitable_is_awaited(self) -> None:
        """A plain function may hand back a coroutine; it is awaited like an async hook."""

        async def later() -> Decision:
            return tempfail("later")

        chain = PolicyChain([_policy("a", on_rcpt=lambda c: later())])

        assert await chain.run("on_rcpt", object()) == tempfail("later")

    async def test_the_hook_receives_the_context(self) -> None:
        """The one argument is the stage's context, unchanged."""
        seen: list[object] = []
        context = object()
        chain = PolicyChain([_policy("a", on_rcpt=seen.append)])

        await chain.run("on_rcpt", context)

        assert seen == [context]


class TestContainment:
    """A failing hook never raises into the session: it tempfails with 451 4.3.0."""

    async def test_a_raising_hook_gives_451_4_3_0(self, caplog: pytest.LogCaptureFixture) -> None:
        """The exception becomes a tempfail with POLICY_ERROR and is logged as policy.error."""

        def on_rcpt(context: Any) -> None:
            raise KeyError("tenant")

        chain = PolicyChain([_policy("p.py", on_rcpt=on_rcpt)])
        trace: list[Step] = []

        with caplog.at_level(logging.ERROR, logger="mailwright.policy"):
            decision = await chain.run("on_rcpt", object(), trace)

        assert decision is not None
        assert decision.verdict is Verdict.TEMPFAIL
        assert (
            decision.reply
            == POLICY_ERROR
            == Reply(451, "4.3.0", "Local policy error, try again later")
        )
        assert trace[0].error == "KeyError: 'tenant'"
        assert "policy.error policy=p.py hook=on_rcpt error=KeyError: 'tenant'" in caplog.text

    async def test_a_raising_hook_stops_the_chain(self) -> None:
        """Later policies are not asked once a hook failed: the stage is tempfailed."""
        calls: list[str] = []
        chain = PolicyChain(
            [
                _policy("a", on_rcpt=lambda c: 1 / 0),
                _policy("b", on_rcpt=_recording(calls, "b", accept())),
            ]
        )

        decision = await chain.run("on_rcpt", object())

        assert decision is not None
        assert decision.reply == POLICY_ERROR
        assert calls == []

    async def test_an_async_hook_past_the_timeout_gives_451_4_3_0(self) -> None:
        """A hook that sleeps longer than ``timeout`` is cancelled and the stage tempfails."""
        cancelled = asyncio.Event()

        async def on_message(context: Any) -> None:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        chain = PolicyChain([_policy("slow", on_message=on_message)], timeout=0.05)
        trace: list[Step] = []

        decision = await chain.run("on_message", object(), trace)

        assert decision is not None
        assert decision.reply == POLICY_ERROR
        assert trace[0].error == "timed out"
        assert cancelled.is_set()

    async def test_sys_exit_in_a_hook_is_contained(self) -> None:
        """SystemExit from a hook is a failing hook, not the end of the server."""
        chain = PolicyChain([_policy("a", on_rcpt=lambda c: sys.exit(1))])

        decision = await chain.run("on_rcpt", object())

        assert decision is not None
        assert decision.reply == POLICY_ERROR

    @pytest.mark.parametrize("value", [True, "reject", 550, Reply(550, "5.7.1", "No")])
    async def test_a_wrong_return_type_gives_451_4_3_0(self, value: object) -> None:
        """Anything but None or a Decision is a bug in the hook, contained like an exception."""
        trace: list[Step] = []
        chain = PolicyChain([_policy("a", on_rcpt=lambda c: value)])

        decision = await chain.run("on_rcpt", object(), trace)

        assert decision is not None
        assert decision.reply == POLICY_ERROR
        assert trace[0].error is not None
        assert trace[0].error.startswith("TypeError: a hook must return None or a Decision")

    @pytest.mark.parametrize(
        "made",
        [
            Decision(Verdict.REJECT, Reply(250, "2.0.0", "Ok")),
            Decision(Verdict.REJECT, Reply(451, "4.7.1", "Later")),
            Decision(Verdict.TEMPFAIL, Reply(550, "5.7.1", "No")),
        ],
    )
    async def test_a_hand_made_decision_with_a_reply_of_the_wrong_class_fails(
        self, made: Decision
    ) -> None:
        """A reject carrying a 250 must not accept: it is a failing hook (451 4.3.0)."""
        chain = PolicyChain([_policy("a", on_rcpt=lambda c: made)])

        decision = await chain.run("on_rcpt", object())

        assert decision is not None
        assert decision.reply == POLICY_ERROR

    @pytest.mark.parametrize(
        ("verdict", "reply"),
        [(Verdict.REJECT, DEFAULT_REJECT), (Verdict.TEMPFAIL, DEFAULT_TEMPFAIL)],
    )
    async def test_a_hand_made_refusal_without_a_reply_gets_the_default(
        self, verdict: Verdict, reply: Reply
    ) -> None:
        """``Decision(Verdict.REJECT)`` still refuses, with 550 5.7.1 (or 451 4.7.1)."""
        chain = PolicyChain([_policy("a", on_rcpt=lambda c: Decision(verdict))])

        decision = await chain.run("on_rcpt", object())

        assert decision == Decision(verdict, reply)

    async def test_discard_passes_through(self) -> None:
        """discard() is a decision like the others."""
        chain = PolicyChain([_policy("a", on_message=lambda c: discard("spam trap"))])

        assert await chain.run("on_message", object()) == discard("spam trap")


class TestNotify:
    """Informational stages call every hook; results are ignored and errors only logged."""

    async def test_every_hook_runs_even_after_a_failure(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A raising on_delivery hook is logged; the next one still runs."""
        calls: list[str] = []

        def broken(context: Any) -> None:
            raise RuntimeError("disk full")

        chain = PolicyChain(
            [
                _policy("a", on_delivery=broken),
                _policy("b", on_delivery=_recording(calls, "b", reject("ignored"))),
                _policy("c", on_delivery=lambda c: "not a decision"),
            ]
        )

        with caplog.at_level(logging.ERROR, logger="mailwright.policy"):
            await chain.notify("on_delivery", object())

        assert calls == ["b"]
        assert "policy=a hook=on_delivery error=RuntimeError: disk full" in caplog.text
        assert "policy=c" not in caplog.text  # a return value is not an error here

    async def test_an_async_hook_is_bounded_by_the_timeout(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A slow on_delivery hook is cancelled after ``timeout`` and logged."""

        async def slow(context: Any) -> None:
            await asyncio.sleep(10)

        chain = PolicyChain([_policy("a", on_delivery=slow)], timeout=0.05)

        with caplog.at_level(logging.ERROR, logger="mailwright.policy"):
            await chain.notify("on_delivery", object())

        assert "error=timed out" in caplog.text
