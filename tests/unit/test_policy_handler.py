"""PolicyHandler around a fake MTA handler: who answers, and what reaches the spool.

The inner handler here is a recording stand-in for MtaHandler whose replies
each test sets; the policies are plain objects. Events are made the way the
SMTP session makes them, and the ConnectionInfo is updated the way the
listener updates it (HELO name after EHLO, user after AUTH).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from tests.dnsserver import DnsServer

from mailwright.dns.queries import CachingResolver
from mailwright.dns.resolver import make_resolver
from mailwright.envelope import Envelope, Recipient
from mailwright.policy import (
    Auth,
    Connection,
    Hello,
    Message,
    Policy,
    RecipientCheck,
    Transaction,
    accept,
    discard,
    reject,
    tempfail,
)
from mailwright.policy.chain import POLICY_ERROR, PolicyChain, Step
from mailwright.policy.handler import DISCARDED, AuthSettings, PolicyHandler, PolicyTempfail
from mailwright.server.handler import ConnectionInfo
from mailwright.smtp import replies
from mailwright.smtp.replies import Reply
from mailwright.smtp.server_events import AuthAttempt, MailFrom, MessageReceived, RcptTo
from mailwright.smtp.server_events import Hello as HelloEvent

CONTENT = b"From: a@example.org\r\nX-Spam: yes\r\nSubject: hi\r\n\r\nbody\r\n"
QUEUED = Reply(250, "2.0.0", "Ok: queued as Q1")


class FakeMta:
    """Answers like MtaHandler would, with replies set per stage; records what it stores."""

    def __init__(self) -> None:
        self.replies: dict[str, Reply | None] = {}
        self.valid_login = True
        self.calls: list[str] = []
        self.stored: list[tuple[Envelope, bytes]] = []

    async def on_connect(self, info: ConnectionInfo) -> Reply | None:
        self.calls.append("connect")
        return self.replies.get("connect")

    async def on_hello(self, info: ConnectionInfo, event: HelloEvent) -> Reply | None:
        self.calls.append("hello")
        return self.replies.get("hello")

    async def on_auth(self, info: ConnectionInfo, event: AuthAttempt) -> bool:
        self.calls.append("auth")
        return self.valid_login

    async def on_mail(self, info: ConnectionInfo, event: MailFrom) -> Reply | None:
        self.calls.append("mail")
        return self.replies.get("mail")

    async def on_rcpt(self, info: ConnectionInfo, event: RcptTo) -> Reply | None:
        self.calls.append("rcpt")
        if event.address.endswith("@elsewhere.example"):
            return replies.RELAY_DENIED  # the MTA's own relay rule
        return self.replies.get("rcpt")

    async def on_message(self, info: ConnectionInfo, event: MessageReceived) -> Reply:
        self.calls.append("message")
        self.stored.append((event.envelope, event.content))
        return self.replies.get("message") or QUEUED

    async def on_disconnect(self, info: ConnectionInfo) -> None:
        self.calls.append("disconnect")


class Session:
    """One client connection through a PolicyHandler, updating ``info`` like the listener."""

    def __init__(self, handler: PolicyHandler, role: str = "inbound", ip: str = "192.0.2.1"):
        self.handler = handler
        self.info = ConnectionInfo("s1", ip, 40000, "127.0.0.1", 25, f"{role}-0", role)

    async def connect(self) -> Reply | None:
        return await self.handler.on_connect(self.info)

    async def ehlo(self, name: str = "client.example.org") -> Reply | None:
        reply = await self.handler.on_hello(self.info, HelloEvent("EHLO", name))
        if reply is None or reply.is_positive:
            self.info.helo_name = name
        return reply

    async def auth(self, user: str) -> bool:
        valid = await self.handler.on_auth(self.info, AuthAttempt("PLAIN", "", user, "secret"))
        if valid:
            self.info.auth_user = user
        return valid

    async def mail(self, sender: str = "a@example.org") -> Reply | None:
        return await self.handler.on_mail(self.info, MailFrom(sender, {}))

    async def rcpt(self, address: str) -> Reply | None:
        return await self.handler.on_rcpt(self.info, RcptTo(address))

    async def data(self, recipients: list[str], content: bytes = CONTENT) -> Reply:
        envelope = Envelope("a@example.org", [Recipient(address) for address in recipients])
        return await self.handler.on_message(self.info, MessageReceived(content, envelope))

    async def transaction(self, recipients: list[str], content: bytes = CONTENT) -> Reply:
        """MAIL, each RCPT, and the message with the recipients that were accepted."""
        assert await self.mail() is None
        accepted = [r for r in recipients if _ok(await self.rcpt(r))]
        return await self.data(accepted, content)


def _ok(reply: Reply | None) -> bool:
    return reply is None or reply.is_positive


def _handler(*policies: object, mta: FakeMta | None = None, **options: Any) -> PolicyHandler:
    chain = PolicyChain(
        [Policy(f"p{index}", _hooks(policy)) for index, policy in enumerate(policies)]
    )
    return PolicyHandler(mta or FakeMta(), chain, **options)


def _hooks(policy: object) -> dict[str, Callable[[Any], Any]]:
    return {name: getattr(policy, name) for name in dir(policy) if name.startswith("on_")}


def _mta(handler: PolicyHandler) -> FakeMta:
    assert isinstance(handler.inner, FakeMta)
    return handler.inner


class AcceptAll:
    """A policy that accepts at every SMTP stage."""

    def on_connect(self, connection: Connection) -> object:
        return accept()

    def on_ehlo(self, hello: Hello) -> object:
        return accept()

    def on_mail(self, transaction: Transaction) -> object:
        return accept()

    def on_rcpt(self, rcpt: RecipientCheck) -> object:
        return accept("everyone is welcome")

    def on_message(self, message: Message) -> object:
        return accept()


class TestNoOpenRelay:
    """The MTA answers first; its refusals stand whatever the policies say."""

    async def test_a_relay_refusal_stands_even_if_a_policy_accepts(self) -> None:
        """RCPT to a foreign domain: 550 5.7.1 from the MTA, the accepting policy is not asked."""
        seen: list[str] = []

        class Greedy(AcceptAll):
            def on_rcpt(self, rcpt: RecipientCheck) -> object:
                seen.append(rcpt.address)
                return accept()

        session = Session(_handler(Greedy()))
        await session.connect()
        await session.ehlo()
        await session.mail()

        assert await session.rcpt("victim@elsewhere.example") == replies.RELAY_DENIED
        assert seen == []
        assert await session.rcpt("b@example.test") is None
        assert seen == ["b@example.test"]

    @pytest.mark.parametrize("stage", ["connect", "hello", "mail", "rcpt"])
    async def test_any_mta_refusal_stands(self, stage: str) -> None:
        """At every stage a negative MTA reply is the answer, before any policy."""
        mta = FakeMta()
        refusal = Reply(554, "5.7.1", f"MTA says no at {stage}")
        mta.replies[stage] = refusal
        trace: list[Step] = []
        handler = _handler(AcceptAll(), mta=mta)
        handler.trace = trace
        session = Session(handler)

        answers = {
            "connect": await session.connect(),
            "hello": await session.ehlo(),
            "mail": await session.mail(),
            "rcpt": await session.rcpt("b@example.test"),
        }

        assert answers[stage] == refusal
        assert f"on_{'ehlo' if stage == 'hello' else stage}" not in [s.stage for s in trace]

    async def test_the_mta_positive_reply_is_kept_when_policies_have_no_opinion(self) -> None:
        """A custom 250 of the MTA is not replaced by the session's default."""
        mta = FakeMta()
        mta.replies["rcpt"] = Reply(250, "2.1.5", "Recipient ok, will forward")
        session = Session(_handler(object(), mta=mta))
        await session.mail()

        assert await session.rcpt("b@example.test") == mta.replies["rcpt"]

    async def test_an_mta_refusal_of_the_message_stands_after_policies_accept(self) -> None:
        """The store can still refuse (full spool) after every policy accepted."""
        mta = FakeMta()
        mta.replies["message"] = replies.SPOOL_FULL
        session = Session(_handler(AcceptAll(), mta=mta))

        assert await session.transaction(["b@example.test"]) == replies.SPOOL_FULL


class TestRefusals:
    """A policy's refusal is sent exactly as made."""

    async def test_reject_at_rcpt_is_sent_and_the_recipient_is_not_added(self) -> None:
        """550 5.1.1 from the hook; the transaction lists only the accepted recipient."""
        recipients: list[list[str]] = []

        class NoReply:
            def on_rcpt(self, rcpt: RecipientCheck) -> object:
                if rcpt.address.startswith("noreply@"):
                    return reject("This address takes no mail", code=550, status="5.1.1")
                return None

            def on_message(self, message: Message) -> None:
                recipients.append(list(message.transaction.recipients))

        session = Session(_handler(NoReply()))
        await session.mail()

        assert await session.rcpt("noreply@example.test") == Reply(
            550, "5.1.1", "This address takes no mail"
        )
        assert await session.rcpt("b@example.test") is None
        await session.data(["b@example.test"])
        assert recipients == [["b@example.test"]]

    async def test_tempfail_at_mail_is_sent(self) -> None:
        """A greylisting 450 4.2.0 at MAIL FROM goes out as asked."""

        class Greylist:
            def on_mail(self, transaction: Transaction) -> object:
                return tempfail("Greylisted, try again in 5 minutes", code=450, status="4.2.0")

        session = Session(_handler(Greylist()))

        assert await session.mail() == Reply(450, "4.2.0", "Greylisted, try again in 5 minutes")

    async def test_reject_at_connect_is_554_and_tempfail_421(self) -> None:
        """A refused greeting is 554 (RFC 5321 §3.1); a temporary one is 421."""

        class Door:
            def __init__(self, decision: object) -> None:
                self.decision = decision

            def on_connect(self, connection: Connection) -> object:
                return self.decision

        refused = Session(_handler(Door(reject("No mail from you", status="5.7.1"))))
        later = Session(_handler(Door(tempfail("Busy", status="4.7.0"))))

        assert await refused.connect() == Reply(554, "5.7.1", "No mail from you")
        assert await later.connect() == Reply(421, "4.7.0", "Busy")

    async def test_reject_at_ehlo_is_sent(self) -> None:
        """A HELO name a policy dislikes is refused with its reply."""

        class Names:
            def on_ehlo(self, hello: Hello) -> object:
                return reject("Bad HELO", code=550, status="5.7.1") if hello.name == "x" else None

        session = Session(_handler(Names()))

        assert await session.ehlo("x") == Reply(550, "5.7.1", "Bad HELO")
        assert session.info.helo_name is None

    async def test_reject_at_message_is_sent_and_nothing_is_stored(self) -> None:
        """An end-of-data refusal keeps the message away from the MTA's store."""

        class Spam:
            def on_message(self, message: Message) -> object:
                if message.header("X-Spam") == "yes":
                    return reject("Spam refused", code=554, status="5.7.1")
                return None

        handler = _handler(Spam())

        reply = await Session(handler).transaction(["b@example.test"])

        assert reply == Reply(554, "5.7.1", "Spam refused")
        assert _mta(handler).stored == []

    async def test_a_raising_hook_gives_451_4_3_0_and_the_next_stage_works(self) -> None:
        """A hook that fails tempfails its stage; the connection goes on."""

        class Flaky:
            def on_rcpt(self, rcpt: RecipientCheck) -> None:
                if rcpt.address.startswith("boom"):
                    raise RuntimeError("database down")

        session = Session(_handler(Flaky()))
        await session.mail()

        assert await session.rcpt("boom@example.test") == POLICY_ERROR
        assert await session.rcpt("b@example.test") is None

    async def test_discard_answers_250_and_stores_nothing(self) -> None:
        """discard() at end of data: the client hears success, the MTA never sees it."""

        class Trap:
            def on_message(self, message: Message) -> object:
                return discard("spam trap")

        handler = _handler(Trap())

        reply = await Session(handler).transaction(["trap@example.test"])

        assert reply == DISCARDED == Reply(250, "2.0.0", "Ok: accepted")
        assert _mta(handler).stored == []
        assert "message" not in _mta(handler).calls

    async def test_accept_at_message_still_runs_the_queue_stage(self) -> None:
        """accept() ends one stage, not the message's life: on_queue may still refuse."""

        class Both:
            def on_message(self, message: Message) -> object:
                return accept()

            def on_queue(self, message: Message) -> object:
                return tempfail("Queue full", code=452, status="4.3.1")

        reply = await Session(_handler(Both())).transaction(["b@example.test"])

        assert reply == Reply(452, "4.3.1", "Queue full")


class TestMetadataAndRoute:
    """What hooks record travels connection -> transaction -> envelope."""

    async def test_metadata_flows_from_connection_to_the_stored_envelope(self) -> None:
        """Connection metadata is copied into each transaction, and both into the envelope."""
        seen: list[dict[str, str]] = []

        class Tags:
            def on_connect(self, connection: Connection) -> None:
                connection.metadata["tenant"] = "acme"

            def on_mail(self, transaction: Transaction) -> None:
                transaction.metadata["campaign"] = transaction.sender.split("@")[0]

            def on_rcpt(self, rcpt: RecipientCheck) -> None:
                rcpt.transaction.metadata["rcpt_seen"] = rcpt.address

            def on_message(self, message: Message) -> None:
                seen.append(dict(message.metadata))
                message.metadata["size"] = str(len(message.content))

        handler = _handler(Tags())
        session = Session(handler)
        await session.connect()
        await session.ehlo()

        assert await session.transaction(["b@example.test"]) == QUEUED
        expected = {"tenant": "acme", "campaign": "a", "rcpt_seen": "b@example.test"}
        assert seen == [expected]
        [(envelope, _)] = _mta(handler).stored
        assert envelope.metadata == {**expected, "size": str(len(CONTENT))}

    async def test_the_next_transaction_starts_from_the_connection_metadata(self) -> None:
        """Transaction metadata does not leak into the next message of the connection."""

        class Tags:
            def on_connect(self, connection: Connection) -> None:
                connection.metadata["tenant"] = "acme"

            def on_rcpt(self, rcpt: RecipientCheck) -> None:
                rcpt.transaction.metadata["first"] = "yes"
                if rcpt.address.startswith("c"):
                    rcpt.transaction.metadata.pop("first")

        handler = _handler(Tags())
        session = Session(handler)
        await session.connect()
        await session.transaction(["b@example.test"])
        await session.transaction(["c@example.test"])

        [first, second] = [envelope.metadata for envelope, _ in _mta(handler).stored]
        assert first == {"tenant": "acme", "first": "yes"}
        assert second == {"tenant": "acme"}

    async def test_a_route_chosen_at_queue_is_stored_in_the_metadata(self) -> None:
        """``message.route`` reaches the envelope as ``metadata["route"]``."""

        class Quarantine:
            def on_queue(self, message: Message) -> None:
                message.route = "maildir:/srv/quarantine"

        handler = _handler(Quarantine())

        assert await Session(handler).transaction(["b@example.test"]) == QUEUED
        [(envelope, _)] = _mta(handler).stored
        assert envelope.metadata["route"] == "maildir:/srv/quarantine"

    @pytest.mark.parametrize(
        ("route", "why"),
        [
            ("maildir:relative/path", "is not a route"),
            ("ftp://host", "is not a route"),
        ],
    )
    async def test_a_route_that_does_not_parse_gives_451_4_3_0(
        self, route: str, why: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A bad route is a policy error: tempfailed, logged, nothing stored."""

        class Bad:
            def on_queue(self, message: Message) -> None:
                message.route = route

        handler = _handler(Bad())
        trace: list[Step] = []
        handler.trace = trace

        assert await Session(handler).transaction(["b@example.test"]) == POLICY_ERROR
        assert _mta(handler).stored == []
        assert why in caplog.text
        assert trace[-1].policy == "mailwright"
        assert trace[-1].error is not None

    async def test_metadata_that_is_not_text_gives_451_4_3_0(self) -> None:
        """Metadata values must be strings: it is stored as JSON and read back as text."""

        class Numbers:
            def on_message(self, message: Message) -> None:
                message.metadata["score"] = 5  # type: ignore[assignment]

        handler = _handler(Numbers())

        assert await Session(handler).transaction(["b@example.test"]) == POLICY_ERROR
        assert _mta(handler).stored == []


class TestEdits:
    """Header edits reach the MTA's store; the body does not change."""

    async def test_added_and_removed_fields_reach_the_store(self) -> None:
        """X-Tenant is added on top and X-Spam removed before the MTA stores the message."""

        class Edit:
            def on_message(self, message: Message) -> None:
                message.remove_header("X-Spam")
                message.add_header("X-Tenant", "acme")

        handler = _handler(Edit())

        await Session(handler).transaction(["b@example.test"])

        [(_, content)] = _mta(handler).stored
        assert content == b"X-Tenant: acme\r\nFrom: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"

    async def test_edits_of_a_refused_message_are_not_applied(self) -> None:
        """Edits wait for acceptance: a message refused at on_queue is not edited or stored."""

        class EditThenRefuse:
            def on_message(self, message: Message) -> None:
                message.add_header("X-Tenant", "acme")

            def on_queue(self, message: Message) -> object:
                return reject("No")

        handler = _handler(EditThenRefuse())

        assert await Session(handler).transaction(["b@example.test"]) == Reply(550, "5.7.1", "No")
        assert _mta(handler).stored == []


class TestConnectionView:
    """Contexts show the connection as it is at each stage."""

    async def test_auth_and_tls_are_seen_at_mail(self) -> None:
        """After STARTTLS and AUTH the transaction's connection says so."""
        seen: list[tuple[bool, str | None, str | None]] = []

        class Watch:
            def on_mail(self, transaction: Transaction) -> None:
                connection = transaction.connection
                seen.append((connection.tls, connection.helo, connection.auth_user))

        session = Session(_handler(Watch()), role="submission")
        await session.connect()
        await session.ehlo("laptop")
        session.info.tls_active = True
        session.info.helo_name = None  # STARTTLS forgets the HELO name (RFC 3207 §4.2)
        await session.ehlo("laptop.tls")
        assert await session.auth("alice")
        await session.mail()

        assert seen == [(True, "laptop.tls", "alice")]

    async def test_a_policy_can_refuse_a_valid_login(self) -> None:
        """on_auth sees the checked credentials; a reject there makes the login fail."""
        seen: list[tuple[str, bool]] = []

        class NoBob:
            def on_auth(self, auth: Auth) -> object:
                seen.append((auth.username, auth.succeeded))
                return reject("Not today") if auth.username == "bob" else None

        session = Session(_handler(NoBob()), role="submission")

        assert await session.auth("alice")
        assert not await session.auth("bob")
        assert seen == [("alice", True), ("bob", True)]

    async def test_a_tempfail_at_auth_raises_for_the_listener(self) -> None:
        """The listener turns PolicyTempfail into 454 4.7.0."""

        class Down:
            def on_auth(self, auth: Auth) -> object:
                return tempfail("Directory down")

        session = Session(_handler(Down()), role="submission")

        with pytest.raises(PolicyTempfail, match="Directory down"):
            await session.auth("alice")

    async def test_replace_takes_effect_at_the_next_stage(self) -> None:
        """A reload between RCPTs: the second RCPT is asked of the new chain."""

        class Old:
            def on_rcpt(self, rcpt: RecipientCheck) -> None:
                return None

        class New:
            def on_rcpt(self, rcpt: RecipientCheck) -> object:
                return reject("Closed", code=550, status="5.7.1")

        handler = _handler(Old())
        session = Session(handler)
        await session.mail()
        assert await session.rcpt("b@example.test") is None

        handler.replace(PolicyChain([Policy("new", _hooks(New()))]))

        assert await session.rcpt("c@example.test") == Reply(550, "5.7.1", "Closed")

    async def test_without_policies_the_mta_alone_answers(self) -> None:
        """An empty chain passes every call through unchanged."""
        handler = PolicyHandler(FakeMta(), PolicyChain([]))
        session = Session(handler)

        assert await session.connect() is None
        assert await session.transaction(["b@example.test"]) == QUEUED
        await handler.on_disconnect(session.info)
        assert _mta(handler).calls == ["connect", "mail", "rcpt", "message", "disconnect"]

    async def test_the_trace_collects_every_step_in_order(self) -> None:
        """``trace`` lists each hook call with its stage, for ``mailwright policy test``."""
        handler = _handler(AcceptAll())
        trace: list[Step] = []
        handler.trace = trace
        session = Session(handler)
        await session.connect()
        await session.ehlo()
        await session.transaction(["b@example.test"])

        stages = [step.stage for step in trace]
        assert stages == ["on_connect", "on_ehlo", "on_mail", "on_rcpt", "on_message"]
        assert {step.policy for step in trace} == {"p0"}


class TestAuthentication:
    """With NEEDS_AUTHENTICATION, inbound mail is checked and our A-R field added."""

    @pytest.fixture
    def server(self, dns_server: Callable[..., DnsServer]) -> DnsServer:
        return dns_server({"example.org": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")]})

    def _auth_handler(self, server: DnsServer, policy: object) -> PolicyHandler:
        resolver = CachingResolver(make_resolver([server.nameserver], timeout=2))
        chain = PolicyChain([Policy("auth", _hooks(policy), needs_authentication=True)])
        return PolicyHandler(FakeMta(), chain, AuthSettings(resolver, "mx.example.test"))

    async def test_spf_and_the_verdict_reach_the_hooks(self, server: DnsServer) -> None:
        """Transaction.spf is known at MAIL; Message.auth holds the whole verdict."""
        seen: list[str] = []

        class Watch:
            def on_mail(self, transaction: Transaction) -> None:
                assert transaction.spf is not None
                seen.append(transaction.spf.result.value)

            def on_message(self, message: Message) -> None:
                assert message.auth is not None
                seen.append(message.auth.dmarc.result.value)

        handler = self._auth_handler(server, Watch())
        session = Session(handler)
        await session.ehlo()

        assert await session.transaction(["b@example.test"]) == QUEUED
        assert seen[0] == "pass"
        assert len(seen) == 2

    async def test_our_field_is_added_and_forged_ones_removed(self, server: DnsServer) -> None:
        """A-R fields claiming our authserv-id are dropped (RFC 8601 §5); ours is on top."""
        forged = b"Authentication-Results: mx.example.test; spf=pass smtp.mailfrom=x\r\n"
        other = b"Authentication-Results: other.example; spf=fail smtp.mailfrom=x\r\n"
        handler = self._auth_handler(server, object())
        session = Session(handler)
        await session.ehlo()

        await session.transaction(["b@example.test"], forged + other + CONTENT)

        [(_, content)] = _mta(handler).stored
        assert content.startswith(b"Authentication-Results: mx.example.test;")
        assert b"spf=pass" in content.split(b"\r\n\r\n")[0]
        assert forged not in content
        assert other in content
        assert content.endswith(other + CONTENT)

    async def test_authenticated_clients_are_not_checked(self, server: DnsServer) -> None:
        """Submission traffic gets no verdict: Message.auth is None."""
        seen: list[object] = []

        class Watch:
            def on_message(self, message: Message) -> None:
                seen.append(message.auth)

        handler = self._auth_handler(server, Watch())
        session = Session(handler, role="submission")
        await session.auth("alice")

        await session.transaction(["b@elsewhere.example", "b@example.test"])

        assert seen == [None]
        [(_, content)] = _mta(handler).stored
        assert content == CONTENT
