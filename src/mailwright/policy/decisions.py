"""What a hook answers: :class:`Decision` values and the functions that make them.

A hook returns ``None`` (no opinion: the next policy is asked, and without
any opinion the MTA's own answer stands) or a :class:`Decision`:

* :func:`accept` stops the chain for this stage and takes what was asked
  (later policies are not asked; the MTA's own checks, such as relay rules,
  still apply, so a policy can never open a relay);
* :func:`reject` refuses permanently (5xx), :func:`tempfail` for now (4xx);
* :func:`discard` (message stage only) answers 250 but delivers nothing.

Replies are checked when the decision is made, so a hook that asks for
``reject("...", code=450)`` fails at once with a clear :class:`ValueError`
instead of sending a contradiction to a client.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mailwright.smtp.replies import Reply


class Verdict(enum.StrEnum):
    """The kinds of decision."""

    ACCEPT = "accept"
    REJECT = "reject"
    TEMPFAIL = "tempfail"
    DISCARD = "discard"


@dataclass(frozen=True, slots=True)
class Decision:
    """A hook's answer: the kind, and for refusals the reply to send."""

    verdict: Verdict
    reply: Reply | None = None
    reason: str = ""  # for logs and ``mailwright policy test``; never sent

    @property
    def refuses(self) -> bool:
        """True for reject and tempfail."""
        return self.verdict in (Verdict.REJECT, Verdict.TEMPFAIL)

    def describe(self) -> str:
        """``reject 550 5.7.1 text`` or ``accept``, for people."""
        if self.reply is None:
            return self.verdict.value
        reply = self.reply
        status = f" {reply.status}" if reply.status else ""
        return f"{self.verdict.value} {reply.code}{status} {reply.text}"


def accept(reason: str = "") -> Decision:
    """Take what was asked; later policies are not consulted for this stage."""
    return Decision(Verdict.ACCEPT, None, reason)


def discard(reason: str = "") -> Decision:
    """Answer 250 to the message but deliver it nowhere (message stage only)."""
    return Decision(Verdict.DISCARD, None, reason)


def reject(text: str, *, code: int = 550, status: str = "5.7.1", reason: str = "") -> Decision:
    """Refuse permanently with ``code status text`` (5xx); raises ValueError otherwise."""
    if not 500 <= code <= 599 or not status.startswith("5."):
        raise ValueError(f"reject() needs a 5xx code and a 5.x.x status, got {code} {status}")
    return Decision(Verdict.REJECT, Reply(code, status, _one_line(text)), reason or text)


def tempfail(text: str, *, code: int = 451, status: str = "4.7.1", reason: str = "") -> Decision:
    """Refuse for now with ``code status text`` (4xx); raises ValueError otherwise."""
    if not 400 <= code <= 499 or not status.startswith("4."):
        raise ValueError(f"tempfail() needs a 4xx code and a 4.x.x status, got {code} {status}")
    return Decision(Verdict.TEMPFAIL, Reply(code, status, _one_line(text)), reason or text)


def _one_line(text: str) -> str:
    """Reply text on one line: CR and LF would let a hook forge extra replies."""
    cleaned = " ".join(text.split())
    if not cleaned:
        raise ValueError("a reply needs some text")
    return cleaned
