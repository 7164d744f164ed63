"""The policy hooks around the MTA's own answers: :class:`PolicyHandler`.

:class:`PolicyHandler` is a :class:`~mailwright.server.handler.SessionHandler`
that wraps the MTA's (:class:`~mailwright.server.mta.MtaHandler`). From
connect to RCPT the MTA answers first: a refusal there (relay denied, a
SIZE that does not fit) stands and no policy is asked, so no policy can
open a relay. Otherwise the policy chain is asked, and its first refusal is
the answer (without one, the MTA's reply stands). At the end of data the
policies run first and the MTA's store last, so the store can still refuse
(a full disk, a loop) what they accepted, and nothing is ever lost.

When a policy needs authentication (``NEEDS_AUTHENTICATION``, as the
built-in DMARC policy does), messages on inbound listeners from clients
that did not authenticate are checked: SPF for MAIL FROM and HELO at MAIL
FROM (``Transaction.spf``), then DKIM, ARC and DMARC at the end of data
with the SPF result reused (``Message.auth``). Our own
Authentication-Results field is then added and any that claim our
authserv-id on arrival are removed (RFC 8601 §5), whatever the hooks decide.

The current chain is read at each stage, so :meth:`PolicyHandler.replace`
(SIGHUP) takes effect for the next stage of every connection.

What hooks leave in a message is checked before it is stored: metadata
must map strings to strings (it is stored as JSON and read by the delivery
hooks) and a route must parse as a route string with an absolute path. A
message that fails the check is answered 451 4.3.0 like a failing hook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mailwright.auth.authres import AuthResSyntaxError, parse_results
from mailwright.auth.evaluate import SenderChecks, authenticate, check_sender
from mailwright.auth.evaluate import Verdict as AuthVerdict
from mailwright.dns.queries import CachingResolver
from mailwright.errors import RouteError
from mailwright.policy.chain import POLICY_ERROR, PolicyChain, Step
from mailwright.policy.context import (
    Auth,
    Connection,
    Hello,
    Message,
    RecipientCheck,
    Transaction,
)
from mailwright.policy.decisions import Decision, Verdict
from mailwright.policy.edits import apply_edits
from mailwright.routes import parse_route
from mailwright.server.handler import ConnectionInfo, SessionHandler
from mailwright.smtp.replies import Reply
from mailwright.smtp.server_events import AuthAttempt, MailFrom, MessageReceived, RcptTo
from mailwright.smtp.server_events import Hello as HelloEvent

logger = logging.getLogger("mailwright.policy")

DISCARDED = Reply(250, "2.0.0", "Ok: accepted")

#: The name under which the handler's own checks of the hooks' work appear in a trace.
CHECKS = "mailwright"


class PolicyTempfail(Exception):
    """A policy tempfailed AUTH: the listener answers 454 4.7.0."""


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """How inbound messages are authenticated for the policies that need it."""

    resolver: CachingResolver
    authserv_id: str  # our host name: the id of our Authentication-Results fields
    check_helo: bool = True
    sample: Callable[[], float] | None = None  # the legacy pct draw; None: full policy


@dataclass(slots=True)
class _State:
    """One connection's policy view: its context and the open transaction."""

    connection: Connection
    transaction: Transaction | None = None


class PolicyHandler:
    """Runs ``chain`` around ``inner`` at every stage of every SMTP connection."""

    def __init__(
        self, inner: SessionHandler, chain: PolicyChain, auth: AuthSettings | None = None
    ) -> None:
        self.inner = inner
        self.chain = chain
        self.auth = auth
        self.trace: list[Step] | None = None  # set by ``mailwright policy test``
        self._states: dict[str, _State] = {}

    def replace(self, chain: PolicyChain) -> None:
        """Use ``chain`` from the next stage on (a reload)."""
        self.chain = chain

    # --- stages ---------------------------------------------------------------------

    async def on_connect(self, info: ConnectionInfo) -> Reply | None:
        reply = await self.inner.on_connect(info)
        if not self.chain:  # no policies: the MTA alone, at no cost
            return reply
        connection = Connection(
            info.session_id, info.peer_ip, info.peer_port, info.local_ip, info.local_port,
            info.listener_role,
        )  # fmt: skip
        self._states[info.session_id] = _State(connection)
        if reply is not None and not reply.is_positive:
            return reply
        decision = await self.chain.run_traced(self.trace, "on_connect", connection)
        if decision is None or not decision.refuses or decision.reply is None:
            return reply
        # A refused greeting is 554 (the session then answers only QUIT, RFC 5321
        # §3.1); a temporary one is 421 and the connection closes.
        code = 554 if decision.reply.code >= 500 else 421
        return Reply(code, decision.reply.status, decision.reply.text)

    async def on_hello(self, info: ConnectionInfo, event: HelloEvent) -> Reply | None:
        reply = await self.inner.on_hello(info, event)
        if not self.chain or (reply is not None and not reply.is_positive):
            return reply
        connection = self._connection(info)
        connection.helo = event.name
        decision = await self.chain.run_traced(
            self.trace, "on_ehlo", Hello(connection, event.kind, event.name)
        )
        return _answer(decision, reply)

    async def on_auth(self, info: ConnectionInfo, event: AuthAttempt) -> bool:
        valid = await self.inner.on_auth(info, event)
        if not self.chain.has("on_auth"):
            if valid and self.chain:
                self._connection(info).auth_user = event.username
            return valid
        context = Auth(self._connection(info), event.mechanism, event.username, valid)
        decision = await self.chain.run_traced(self.trace, "on_auth", context)
        if decision is not None and decision.verdict is Verdict.TEMPFAIL:
            raise PolicyTempfail(decision.reason)
        if decision is not None and decision.verdict is Verdict.REJECT:
            return False
        if valid:
            context.connection.auth_user = event.username
        return valid

    async def on_mail(self, info: ConnectionInfo, event: MailFrom) -> Reply | None:
        reply = await self.inner.on_mail(info, event)
        if not self.chain or (reply is not None and not reply.is_positive):
            return reply
        state = self._state(info)
        connection = state.connection
        transaction = Transaction(
            connection, event.address, dict(event.params), metadata=dict(connection.metadata)
        )
        state.transaction = transaction
        if self._authenticates(info):
            await self._check_sender(info, transaction)
        decision = await self.chain.run_traced(self.trace, "on_mail", transaction)
        return _answer(decision, reply)

    async def on_rcpt(self, info: ConnectionInfo, event: RcptTo) -> Reply | None:
        reply = await self.inner.on_rcpt(info, event)
        if not self.chain or (reply is not None and not reply.is_positive):
            return reply
        transaction = self._transaction(info)
        decision = await self.chain.run_traced(
            self.trace, "on_rcpt", RecipientCheck(transaction, event.address)
        )
        answer = _answer(decision, reply)
        if answer is None or answer.is_positive:
            transaction.recipients.append(event.address)
        return answer

    async def on_message(self, info: ConnectionInfo, event: MessageReceived) -> Reply:
        if not self.chain:
            return await self.inner.on_message(info, event)
        transaction = self._transaction(info)
        state = self._state(info)
        state.transaction = None  # the next MAIL FROM starts afresh
        envelope = event.envelope
        envelope.metadata.update(transaction.metadata)

        verdict = None
        if self._authenticates(info):
            verdict = await self._authenticate(info, transaction, event.content)
        message = Message(transaction, envelope, event.content, verdict)

        for stage in ("on_message", "on_queue"):
            decision = await self.chain.run_traced(self.trace, stage, message)
            if decision is not None and decision.verdict is not Verdict.ACCEPT:
                what = "discarded" if decision.verdict is Verdict.DISCARD else "refused"
                logger.info(
                    "policy.%s session=%s stage=%s decision=%s reason=%s",
                    what, info.session_id, stage, decision.describe(), decision.reason or "-",
                )  # fmt: skip
                return _final(decision)

        if message.route is not None:
            envelope.metadata["route"] = message.route
        problem = _unstorable(envelope.metadata)
        if problem is not None:
            return self._unusable(info, problem)
        try:
            content = self._edited(message, verdict)
        except ValueError as error:  # a HeaderEdit made by hand, past add_header's checks
            return self._unusable(info, str(error))
        return await self.inner.on_message(info, MessageReceived(content, envelope))

    def _unusable(self, info: ConnectionInfo, problem: str) -> Reply:
        """What the hooks left cannot be stored: log it and answer like a failing hook."""
        logger.error("policy.error session=%s hook=on_queue error=%s", info.session_id, problem)
        if self.trace is not None:
            failed = Decision(Verdict.TEMPFAIL, POLICY_ERROR, problem)
            self.trace.append(Step(CHECKS, "on_queue", failed, problem))
        return POLICY_ERROR

    async def on_disconnect(self, info: ConnectionInfo) -> None:
        self._states.pop(info.session_id, None)
        await self.inner.on_disconnect(info)

    # --- authentication -------------------------------------------------------------

    def _authenticates(self, info: ConnectionInfo) -> bool:
        return (
            self.auth is not None
            and self.chain.needs_authentication
            and info.listener_role == "inbound"
            and info.auth_user is None
        )

    async def _check_sender(self, info: ConnectionInfo, transaction: Transaction) -> None:
        assert self.auth is not None
        checks = await check_sender(
            self.auth.resolver,
            ip=info.peer_ip,
            helo=info.helo_name or "",
            mail_from=transaction.sender,
            receiver=self.auth.authserv_id,
            check_helo=self.auth.check_helo,
        )
        transaction.spf, transaction.helo_spf = checks.spf, checks.helo

    async def _authenticate(
        self, info: ConnectionInfo, transaction: Transaction, content: bytes
    ) -> AuthVerdict:
        assert self.auth is not None
        sender = None
        if transaction.spf is not None:
            sender = SenderChecks(transaction.spf, transaction.helo_spf)
        return await authenticate(
            self.auth.resolver,
            content,
            ip=info.peer_ip,
            helo=info.helo_name or "",
            mail_from=transaction.sender,
            receiver=self.auth.authserv_id,
            check_helo=self.auth.check_helo,
            sender=sender,
            sample=self.auth.sample,
        )

    def _edited(self, message: Message, verdict: AuthVerdict | None) -> bytes:
        """The content to store: our Authentication-Results on top, then the hooks' edits."""
        if verdict is None or self.auth is None:
            if not message.edits:
                return message.content
            return apply_edits(message.content, message.edits)
        ours = self.auth.authserv_id.lower()
        if _may_have_field(message.content, b"authentication-results"):
            message.remove_header("Authentication-Results", lambda value: _claims(value, ours))
        prepend = verdict.header_field(self.auth.authserv_id)
        return apply_edits(message.content, message.edits, prepend)

    # --- state ----------------------------------------------------------------------

    def _state(self, info: ConnectionInfo) -> _State:
        """The connection's view, brought up to date with what the listener knows.

        TLS and AUTH change after the connection started (and STARTTLS
        resets the HELO name and the login, RFC 3207 §4.2), so every stage
        sees them as they are now.
        """
        state = self._states.get(info.session_id)
        if state is None:  # policies loaded mid-connection: start the view now
            connection = Connection(
                info.session_id, info.peer_ip, info.peer_port, info.local_ip, info.local_port,
                info.listener_role,
            )  # fmt: skip
            state = self._states[info.session_id] = _State(connection)
        connection = state.connection
        connection.tls, connection.helo = info.tls_active, info.helo_name
        connection.auth_user = info.auth_user
        return state

    def _connection(self, info: ConnectionInfo) -> Connection:
        return self._state(info).connection

    def _transaction(self, info: ConnectionInfo) -> Transaction:
        state = self._state(info)
        if state.transaction is None:
            state.transaction = Transaction(
                state.connection, "", {}, metadata=dict(state.connection.metadata)
            )
        return state.transaction


def _answer(decision: Decision | None, reply: Reply | None) -> Reply | None:
    """A stage's reply: the decision's refusal, else the MTA's own ``reply`` (None: default)."""
    if decision is None or not decision.refuses:
        return reply
    return decision.reply


def _unstorable(metadata: Mapping[Any, object]) -> str | None:
    """Why ``metadata`` cannot be stored with a message, or None when it can.

    Typed loosely on purpose: hooks are not type-checked, and a value that
    is not a string would fail (or change) on its way through the spool.
    """
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            return f"metadata must map strings to strings, not {key!r}: {value!r}"
    route = metadata.get("route")
    if isinstance(route, str):
        try:
            parse_route(route)
        except RouteError as error:
            return f"route {route!r} is not a route: {error.detail}"
    return None


def _final(decision: Decision) -> Reply:
    """The end-of-data reply for a decision other than accept."""
    if decision.verdict is Verdict.DISCARD:
        return DISCARDED
    assert decision.reply is not None
    return decision.reply


def _may_have_field(content: bytes, name: bytes) -> bool:
    """False only when the header of ``content`` has no field called ``name`` (lower case).

    A substring test on the octets before the first empty line, which hold
    the whole header (see :func:`~.context.split_header`): it can say True
    for a field that is not there, never False for one that is. Most mail
    arrives without the field, and then the header need not be split.
    """
    end = content.find(b"\r\n\r\n")
    head = content if end < 0 else content[: end + 2]
    return name in head.lower()


def _claims(value: str, authserv_id: str) -> bool:
    """True when an Authentication-Results value bears ``authserv_id`` (any case)."""
    try:
        return parse_results(value).authserv_id.lower() == authserv_id
    except AuthResSyntaxError:
        return False
