"""Tests for MtaHandler (mailwright.server.mta): relay rules and storing before the 250.

The handler runs against a real spool and event log in a temporary folder;
the delivery agent it hands messages to is a recording stand-in, since what
is checked here is the hand-over contract, not delivery.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mailwright.envelope import Envelope, Recipient
from mailwright.events import EventLog
from mailwright.server.handler import ConnectionInfo
from mailwright.server.mta import MtaHandler
from mailwright.smtp import replies
from mailwright.smtp.server_events import MessageReceived, RcptTo
from mailwright.spool import Claimed, Spool
from mailwright.users import UserStore

CONTENT = b"Subject: hi\r\n\r\nhello\r\n"


class RecordingAgent:
    """Takes hand-overs like DeliveryAgent, keeps them in a list, and can be full."""

    def __init__(self, *, room: bool = True) -> None:
        self.room = room
        self.reserved = 0
        self.handed: list[tuple[Claimed, bytes]] = []
        self.got_one = asyncio.Event()

    def reserve(self, recipients: int, size: int) -> bool:
        if self.room:
            self.reserved += recipients
        return self.room

    def cancel(self, recipients: int, size: int) -> None:
        self.reserved -= recipients

    def hand_over(self, claimed: Claimed, content: bytes) -> None:
        self.handed.append((claimed, content))
        self.got_one.set()


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    """An open spool without fsync or reserve."""
    async with Spool(tmp_path / "spool", fsync=False, min_free_bytes=0) as opened:
        yield opened


_open_logs: list[EventLog] = []


@pytest.fixture(autouse=True)
def _close_event_logs() -> Iterator[None]:
    """Close the event logs the handlers of a test opened."""
    yield
    while _open_logs:
        _open_logs.pop().close()


def make_handler(
    tmp_path: Path, spool: Spool, role: str = "inbound", agent: RecordingAgent | None = None
) -> MtaHandler:
    events = EventLog(tmp_path / "events.jsonl")
    _open_logs.append(events)
    return MtaHandler(
        role=role,
        hostname="mx.example.test",
        spool=spool,
        events=events,
        users=UserStore(tmp_path / "users"),
        accepted_domains=frozenset({"example.test"}),
        delivery=agent,
    )


def connection(auth_user: str | None = None) -> ConnectionInfo:
    return ConnectionInfo(
        session_id="s1",
        peer_ip="192.0.2.7",
        peer_port=40000,
        local_ip="127.0.0.1",
        local_port=2525,
        listener_name="inbound-0",
        listener_role="inbound",
        helo_name="client.example.net",
        auth_user=auth_user,
    )


def message(*recipients: str, content: bytes = CONTENT) -> MessageReceived:
    envelope = Envelope("alice@example.net", [Recipient(r) for r in recipients])
    return MessageReceived(content, envelope)


async def test_inbound_refuses_other_domains_with_550_571(tmp_path: Path, spool: Spool) -> None:
    """Without AUTH, only recipients in our domains are accepted: never an open relay."""
    handler = make_handler(tmp_path, spool)

    ours = await handler.on_rcpt(connection(), RcptTo("bob@EXAMPLE.test"))
    theirs = await handler.on_rcpt(connection(), RcptTo("bob@elsewhere.example"))
    bare = await handler.on_rcpt(connection(), RcptTo("root"))

    assert ours is None
    assert theirs is replies.RELAY_DENIED
    assert (theirs.code, theirs.status) == (550, "5.7.1")
    assert bare is replies.RELAY_DENIED


async def test_the_bare_postmaster_is_accepted_and_given_our_name(
    tmp_path: Path, spool: Spool
) -> None:
    """RCPT TO:<Postmaster> is accepted from anyone and stored as postmaster@ our host."""
    handler = make_handler(tmp_path, spool)

    accepted = await handler.on_rcpt(connection(), RcptTo("Postmaster"))
    reply = await handler.on_message(connection(), message("Postmaster"))

    assert accepted is None
    detail = await spool.get_message(reply.text.rsplit(" ", 1)[1])
    assert [r.address for r in detail.recipients] == ["postmaster@mx.example.test"]


async def test_authenticated_clients_may_relay_anywhere(tmp_path: Path, spool: Spool) -> None:
    """After AUTH the recipient's domain no longer matters."""
    handler = make_handler(tmp_path, spool, role="submission")

    assert await handler.on_rcpt(connection("alice"), RcptTo("bob@elsewhere.example")) is None


async def test_message_is_stored_with_a_received_header_before_the_250(
    tmp_path: Path, spool: Spool
) -> None:
    """The 250 names the queue id, and the spool holds our trace header above the content."""
    handler = make_handler(tmp_path, spool)

    reply = await handler.on_message(connection(), message("bob@example.test"))

    assert reply.code == 250
    queue_id = reply.text.rsplit(" ", 1)[1]
    detail = await spool.get_message(queue_id)
    assert detail.content.startswith(b"Received: from client.example.net ([192.0.2.7])")
    assert detail.content.endswith(CONTENT)
    assert detail.envelope.client_ip == "192.0.2.7"


async def test_a_looping_message_is_refused_with_554_546(tmp_path: Path, spool: Spool) -> None:
    """A message that already crossed 100 hops is refused and not stored."""
    handler = make_handler(tmp_path, spool)
    looping = b"Received: from a by b\r\n" * 100 + CONTENT

    reply = await handler.on_message(connection(), message("bob@example.test", content=looping))

    assert (reply.code, reply.status) == (554, "5.4.6")
    assert spool.statistics().messages == 0


async def test_with_room_the_message_is_stored_claimed_and_handed_over(
    tmp_path: Path, spool: Spool
) -> None:
    """The local agent gets the stored message from memory; its recipients are active."""
    agent = RecordingAgent()
    handler = make_handler(tmp_path, spool, agent=agent)

    reply = await handler.on_message(connection(), message("a@example.test", "b@example.test"))

    [(claimed, content)] = agent.handed
    assert reply.text.endswith(claimed.queue_id)
    assert [r.address for r in claimed.recipients] == ["a@example.test", "b@example.test"]
    assert content.endswith(CONTENT)
    assert content.startswith(b"Received:")
    detail = await spool.get_message(claimed.queue_id)
    assert [r.state for r in detail.recipients] == ["active", "active"]
    assert await spool.claim_due(2e9, 10) == []  # nobody else can claim them


async def test_without_room_the_message_waits_in_the_queue(tmp_path: Path, spool: Spool) -> None:
    """A full agent means an ordinary store: the claim loop finds the message later."""
    agent = RecordingAgent(room=False)
    handler = make_handler(tmp_path, spool, agent=agent)

    reply = await handler.on_message(connection(), message("bob@example.test"))

    assert reply.code == 250
    assert agent.handed == []
    [claimed] = await spool.claim_due(2e9, 10)
    assert reply.text.endswith(claimed.queue_id)


async def test_a_store_cancelled_midway_is_still_handed_over(tmp_path: Path, spool: Spool) -> None:
    """Cancelling the storing task does not orphan the claim: the hand-over still happens."""
    agent = RecordingAgent()
    handler = make_handler(tmp_path, spool, agent=agent)

    task = asyncio.create_task(handler.on_message(connection(), message("bob@example.test")))
    await asyncio.sleep(0)  # the store is now with the writer
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(5):
        await agent.got_one.wait()

    [(claimed, _)] = agent.handed
    assert (await spool.get_message(claimed.queue_id)).recipients[0].state == "active"


async def test_a_failed_store_gives_back_the_reservation(tmp_path: Path) -> None:
    """A store refused for the reserve answers 452 4.3.1 and cancels the agent's reservation."""
    agent = RecordingAgent()
    async with Spool(tmp_path / "spool", fsync=False, min_free_bytes=1 << 62) as full:
        handler = make_handler(tmp_path, full, agent=agent)

        reply = await handler.on_message(connection(), message("bob@example.test"))

    assert (reply.code, reply.status) == (452, "4.3.1")
    assert agent.handed == []
    assert agent.reserved == 0


async def test_every_stored_message_is_one_received_event(tmp_path: Path, spool: Spool) -> None:
    """The event log gets one "received" line per stored message, with its queue id."""
    handler = make_handler(tmp_path, spool, agent=RecordingAgent())

    reply = await handler.on_message(connection(), message("bob@example.test"))
    handler.events.close()

    [line] = (tmp_path / "events.jsonl").read_text().splitlines()
    event = json.loads(line)
    assert event["event"] == "received"
    assert reply.text.endswith(event["queue_id"])
    assert event["recipients"] == ["bob@example.test"]
    assert event["client_ip"] == "192.0.2.7"
