"""Policy scripts: hooks at every stage of a message's life, in plain Python modules.

An operator lists modules in ``[policy] modules``; each defines hooks named
for the stages (``on_connect``, ``on_ehlo``, ``on_auth``, ``on_mail``,
``on_rcpt``, ``on_message``, ``on_queue``, ``on_delivery``, ``on_bounce``).
Each hook takes the stage's context (:mod:`.context`) and returns ``None``
or a decision::

    from mailwright.policy import reject, tempfail

    API_VERSION = 1

    def on_rcpt(rcpt):
        if rcpt.address.startswith("noreply@"):
            return reject("This address does not take mail", code=550, status="5.1.1")
        return None

    async def on_message(message):
        message.metadata["tenant"] = "acme"
        message.add_header("X-Tenant", "acme")

This package is the versioned public API (``API_VERSION``): the names
exported here keep their meaning within a version. docs/policy.md is the
guide; the built-in DMARC policy (:mod:`.dmarc`) is written on the same API.
"""

from mailwright.policy.context import (
    STAGES,
    Auth,
    Bounce,
    Connection,
    DeliveryOutcome,
    Hello,
    Message,
    RecipientCheck,
    Transaction,
)
from mailwright.policy.decisions import Decision, Verdict, accept, discard, reject, tempfail
from mailwright.policy.loader import API_VERSION, Policy, PolicyLoadError

__all__ = [
    "API_VERSION",
    "STAGES",
    "Auth",
    "Bounce",
    "Connection",
    "Decision",
    "DeliveryOutcome",
    "Hello",
    "Message",
    "Policy",
    "PolicyLoadError",
    "RecipientCheck",
    "Transaction",
    "Verdict",
    "accept",
    "discard",
    "reject",
    "tempfail",
]
