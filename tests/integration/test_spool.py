"""Tests for the spool (mailwright.spool) on a real SQLite database in a temporary folder."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailwright.envelope import Envelope, Recipient
from mailwright.errors import SpoolError, SpoolFullError
from mailwright.spool import (
    DATABASE,
    Deferred,
    Delivered,
    Failed,
    MessageNotFoundError,
    Spool,
)
from mailwright.spool import store as store_module
from mailwright.spool.queue_id import ALPHABET
from mailwright.spool.reads import CLAIM_SQL, NEXT_DUE_SQL
from mailwright.spool.schema import DUE_INDEX

T0 = 1_800_000_000.0


class Clock:
    """A virtual clock the spool reads its arrival and attempt times from."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def make_envelope(*recipients: str, sender: str = "alice@example.com") -> Envelope:
    """An envelope from ``sender`` to ``recipients`` (bob@example.org by default)."""
    addresses = recipients or ("bob@example.org",)
    return Envelope(sender, [Recipient(address) for address in addresses])


@pytest.fixture
def clock() -> Clock:
    """A virtual clock at T0."""
    return Clock()


@pytest.fixture
async def spool(tmp_path: Path, clock: Clock) -> AsyncIterator[Spool]:
    """An open spool without fsync (speed) and without a free-space reserve."""
    async with Spool(tmp_path / "spool", fsync=False, min_free_bytes=0, clock=clock) as opened:
        yield opened


async def test_store_claim_record_round_trip(spool: Spool) -> None:
    """A stored message is claimed with its envelope and content, and gone once delivered."""
    queue_id = await spool.store(make_envelope("bob@Example.ORG"), b"Subject: hi\r\n\r\nbody\r\n")

    claimed = await spool.claim_due(T0, 10)

    assert [c.queue_id for c in claimed] == [queue_id]
    message = claimed[0]
    assert message.envelope.sender == "alice@example.com"
    assert [(r.address, r.domain, r.attempts) for r in message.recipients] == [
        ("bob@Example.ORG", "example.org", 0)
    ]
    assert await spool.load_content(message) == b"Subject: hi\r\n\r\nbody\r\n"

    await spool.record([Delivered(message.recipients[0].rcpt_id)])

    with pytest.raises(MessageNotFoundError):
        await spool.get_message(queue_id)
    assert spool.statistics().messages == 0


async def test_claimed_recipients_are_not_claimed_twice(spool: Spool) -> None:
    """Active recipients are invisible to the next claim_due."""
    await spool.store(make_envelope(), b"x")

    first = await spool.claim_due(T0, 10)
    second = await spool.claim_due(T0, 10)

    assert len(first) == 1
    assert second == []


async def test_claim_due_orders_by_next_attempt_and_groups_per_message(
    spool: Spool, clock: Clock
) -> None:
    """Due recipients come earliest first, grouped per message, and the limit counts recipients."""
    first = await spool.store(make_envelope("a@one.example", "b@two.example"), b"1")
    clock.now += 10
    second = await spool.store(make_envelope("c@one.example"), b"2")

    claimed = await spool.claim_due(T0 + 10, 2)
    rest = await spool.claim_due(T0 + 10, 10)

    assert [(c.queue_id, len(c.recipients)) for c in claimed] == [(first, 2)]
    assert [(c.queue_id, len(c.recipients)) for c in rest] == [(second, 1)]


async def test_claim_limit_below_one_is_refused(spool: Spool) -> None:
    """A limit of 0 is a caller bug (SQLite would read a negative one as no limit)."""
    with pytest.raises(ValueError, match="at least 1"):
        await spool.claim_due(T0, 0)


async def test_work_not_yet_due_is_not_claimed(spool: Spool, clock: Clock) -> None:
    """claim_due(now) leaves recipients whose next attempt is after now."""
    clock.now = T0 + 100
    await spool.store(make_envelope(), b"x")

    assert await spool.claim_due(T0 + 99, 10) == []
    assert spool.next_due() == T0 + 100


async def test_deferred_recipient_returns_with_its_retry_state(spool: Spool) -> None:
    """A deferral requeues the recipient at next_attempt with attempts, first attempt and reply."""
    queue_id = await spool.store(make_envelope(), b"x")
    [message] = await spool.claim_due(T0, 10)
    rcpt = message.recipients[0]

    await spool.record(
        [Deferred(rcpt.rcpt_id, T0 + 300, "451 4.7.1 greylisted", "mx.example.org", T0 + 1)]
    )

    assert spool.next_due() == T0 + 300
    assert await spool.claim_due(T0 + 299, 10) == []
    [again] = await spool.claim_due(T0 + 300, 10)
    assert again.queue_id == queue_id
    retried = again.recipients[0]
    assert (retried.attempts, retried.first_attempt, retried.last_reply) == (
        1,
        T0 + 1,
        "451 4.7.1 greylisted",
    )


async def test_first_attempt_is_kept_across_deferrals(spool: Spool) -> None:
    """The second deferral keeps the first attempt's time and counts two attempts."""
    await spool.store(make_envelope(), b"x")
    [message] = await spool.claim_due(T0, 1)
    await spool.record([Deferred(message.recipients[0].rcpt_id, T0 + 1, attempted_at=T0)])
    [message] = await spool.claim_due(T0 + 1, 1)

    await spool.record(
        [Deferred(message.recipients[0].rcpt_id, T0 + 2, attempted_at=T0 + 1, warned=True)]
    )

    [message] = await spool.claim_due(T0 + 2, 1)
    rcpt = message.recipients[0]
    assert (rcpt.attempts, rcpt.first_attempt, rcpt.warned) == (2, T0, True)


async def test_message_stays_until_its_last_recipient_is_done(spool: Spool) -> None:
    """A message with one recipient left stays; it is deleted when that one fails."""
    queue_id = await spool.store(make_envelope("a@x.example", "b@y.example"), b"x")
    [message] = await spool.claim_due(T0, 10)
    first, second = message.recipients

    await spool.record([Delivered(first.rcpt_id)])
    detail = await spool.get_message(queue_id)
    await spool.record([Failed(second.rcpt_id, "550 5.1.1 no such user")])

    assert [r.address for r in detail.recipients] == ["b@y.example"]
    assert detail.recipients[0].state == "active"
    with pytest.raises(MessageNotFoundError):
        await spool.get_message(queue_id)


async def test_bounce_is_stored_in_the_same_transaction_as_the_failure(spool: Spool) -> None:
    """record() with a bounce removes the failed message and queues the bounce together."""
    original = await spool.store(make_envelope(), b"original")
    [message] = await spool.claim_due(T0, 10)
    bounce = Envelope("", [Recipient("alice@example.com")])

    [bounce_id] = await spool.record(
        [Failed(message.recipients[0].rcpt_id, "550 5.1.1 unknown")], [(bounce, b"DSN")]
    )

    listed = [info.queue_id for info in await spool.list_messages()]
    assert listed == [bounce_id]
    assert original != bounce_id
    detail = await spool.get_message(bounce_id)
    assert (detail.envelope.sender, detail.content) == ("", b"DSN")


async def test_failed_bounce_insert_leaves_the_failure_unrecorded(spool: Spool) -> None:
    """If storing the bounce fails, the recipient is not removed either (atomic record)."""
    original = await spool.store(make_envelope(), b"original")
    [message] = await spool.claim_due(T0, 10)
    saboteur = sqlite3.connect(spool.path)
    saboteur.execute(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON contents WHEN NEW.data = X'504F49534F4E'"
        " BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
    )
    saboteur.commit()
    saboteur.close()
    bounce = Envelope("", [Recipient("alice@example.com")])

    with pytest.raises(SpoolError, match="poisoned"):
        await spool.record([Failed(message.recipients[0].rcpt_id)], [(bounce, b"POISON")])

    detail = await spool.get_message(original)
    assert [r.state for r in detail.recipients] == ["active"]
    assert [info.queue_id for info in await spool.list_messages()] == [original]


async def test_group_commit_puts_200_concurrent_stores_in_at_most_two_commits(
    spool: Spool,
) -> None:
    """Stores queued while the writer waits are all committed together in one transaction."""
    blocker = sqlite3.connect(spool.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock: the writer must wait
    before = spool.statistics()

    tasks = [asyncio.create_task(spool.store(make_envelope(), b"m" * 100)) for _ in range(200)]
    await asyncio.sleep(0)  # every task has now handed its job to the writer
    blocker.execute("ROLLBACK")
    blocker.close()
    queue_ids = await asyncio.gather(*tasks)

    after = spool.statistics()
    assert len(set(queue_ids)) == 200
    assert after.stores - before.stores == 200
    assert after.commits - before.commits <= 2
    assert after.messages == 200


async def test_due_work_is_found_through_the_partial_index(spool: Spool) -> None:
    """EXPLAIN QUERY PLAN shows claim_due and next_due searching recipients_due, no full scan."""
    for _ in range(50):
        await spool.store(make_envelope("a@x.example", "b@y.example"), b"x")
    await spool.claim_due(T0, 20)
    conn = sqlite3.connect(spool.path)

    plans = {
        "claim": conn.execute(f"EXPLAIN QUERY PLAN {CLAIM_SQL}", (T0, 1000)).fetchall(),
        "next_due": conn.execute(f"EXPLAIN QUERY PLAN {NEXT_DUE_SQL}").fetchall(),
    }
    conn.close()

    for name, plan in plans.items():
        details = [row[3] for row in plan]
        assert any(DUE_INDEX in detail for detail in details), (name, details)
        assert not any(detail == "SCAN recipients" for detail in details), (name, details)
        assert not any("TEMP B-TREE" in detail for detail in details), (name, details)
    assert any(
        d.startswith("SEARCH recipients USING INDEX recipients_due")
        for d in [row[3] for row in plans["claim"]]
    )


async def test_crash_with_claimed_work_requeues_it_on_reopen(tmp_path: Path) -> None:
    """Recipients claimed by a process killed with SIGKILL are due again after reopening."""
    folder = tmp_path / "spool"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLAIM_AND_HANG, str(folder), stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    assert await child.stdout.readline() == b"claimed 3\n"

    child.send_signal(signal.SIGKILL)
    await child.communicate()

    async with Spool(folder, fsync=False, min_free_bytes=0) as reopened:
        claimed = await reopened.claim_due(2e9, 10)
    assert sum(len(c.recipients) for c in claimed) == 3


CLAIM_AND_HANG = """
import asyncio, sys, time
from pathlib import Path
from mailwright.envelope import Envelope, Recipient
from mailwright.spool import Spool

async def main():
    spool = Spool(Path(sys.argv[1]), min_free_bytes=0)
    await spool.open()
    for n in range(3):
        await spool.store(Envelope("a@x.example", [Recipient(f"r{n}@y.example")]), b"x")
    claimed = await spool.claim_due(2e9, 10)
    print("claimed", sum(len(c.recipients) for c in claimed), flush=True)
    time.sleep(60)

asyncio.run(main())
"""


async def test_live_spool_keeps_its_claims_when_another_opens_the_folder(
    tmp_path: Path,
) -> None:
    """A second spool on the same folder does not requeue the first one's claims while it lives."""
    folder = tmp_path / "spool"
    async with Spool(folder, fsync=False, min_free_bytes=0) as first:
        await first.store(make_envelope(), b"x")
        assert len(await first.claim_due(2e9, 10)) == 1

        async with Spool(folder, fsync=False, min_free_bytes=0) as second:
            assert await second.claim_due(2e9, 10) == []
            assert await second.recover() == 0


async def test_close_requeues_unfinished_claims(tmp_path: Path) -> None:
    """Claims not recorded before close() are due again for the next spool."""
    folder = tmp_path / "spool"
    async with Spool(folder, fsync=False, min_free_bytes=0) as first:
        await first.store(make_envelope(), b"x")
        await first.claim_due(2e9, 10)

    async with Spool(folder, fsync=False, min_free_bytes=0) as second:
        assert len(await second.claim_due(2e9, 10)) == 1


async def test_second_spool_on_the_same_folder_sees_new_work(tmp_path: Path) -> None:
    """Work stored by one spool is found by another's next_due and claim_due (split processes)."""
    folder = tmp_path / "spool"
    async with (
        Spool(folder, fsync=False, min_free_bytes=0) as reception,
        Spool(folder, fsync=False, min_free_bytes=0) as delivery,
    ):
        assert delivery.next_due() is None

        queue_id = await reception.store(make_envelope(), b"hello")

        assert delivery.next_due() is not None
        [claimed] = await delivery.claim_due(2e9, 10)
        assert claimed.queue_id == queue_id
        assert await delivery.load_content(claimed) == b"hello"


async def test_store_wakes_a_waiting_delivery_loop(spool: Spool) -> None:
    """wait_for_work returns once a store in this process has committed."""
    waiter = asyncio.create_task(spool.wait_for_work())
    await asyncio.sleep(0)
    assert not waiter.done()

    await spool.store(make_envelope(), b"x")

    async with asyncio.timeout(5):
        await waiter


async def test_store_below_the_reserve_is_refused_and_stores_nothing(tmp_path: Path) -> None:
    """With free space under min_free_bytes, store raises SpoolFullError and has_room is False."""
    async with Spool(tmp_path / "spool", fsync=False, min_free_bytes=1 << 62) as spool:
        assert not spool.has_room(1000)

        with pytest.raises(SpoolFullError, match="reserve"):
            await spool.store(make_envelope(), b"x")

        assert spool.statistics().messages == 0


async def test_bounces_are_accepted_below_the_reserve(tmp_path: Path) -> None:
    """record() still stores a bounce when new mail is refused for the reserve."""
    folder = tmp_path / "spool"
    async with Spool(folder, fsync=False, min_free_bytes=0) as roomy:
        await roomy.store(make_envelope(), b"x")

    async with Spool(folder, fsync=False, min_free_bytes=1 << 62) as tight:
        [message] = await tight.claim_due(2e9, 10)
        bounce = Envelope("", [Recipient("alice@example.com")])

        new_ids = await tight.record([Failed(message.recipients[0].rcpt_id)], [(bounce, b"DSN")])

        assert [info.queue_id for info in await tight.list_messages()] == new_ids


async def test_has_room_with_plenty_of_space(spool: Spool) -> None:
    """has_room is True for a small message on a disk with room above the reserve."""
    assert spool.has_room(10_000)


async def test_envelope_without_recipients_is_refused(spool: Spool) -> None:
    """Storing a message nobody can receive raises ValueError."""
    with pytest.raises(ValueError, match="no recipients"):
        await spool.store(Envelope("alice@example.com", []), b"x")


async def test_queue_ids_are_short_printable_unique_and_sortable(spool: Spool) -> None:
    """Queue ids are 16 base32 characters and sort in the order the messages were stored."""
    queue_ids = [await spool.store(make_envelope(), b"x") for _ in range(50)]

    assert all(len(q) == 16 and set(q) <= set(ALPHABET) for q in queue_ids)
    assert sorted(queue_ids) == queue_ids
    assert len(set(queue_ids)) == 50


async def test_summary_groups_recipients_per_domain(spool: Spool, clock: Clock) -> None:
    """summary() counts recipients, messages, oldest arrival and deferred ones per domain."""
    await spool.store(make_envelope("a@one.example", "b@one.example"), b"x")
    clock.now += 5
    await spool.store(make_envelope("c@one.example", "d@two.example"), b"y")
    [first, *_] = await spool.claim_due(T0, 1)
    await spool.record([Deferred(first.recipients[0].rcpt_id, T0 + 300)])

    summary = {line.domain: line for line in await spool.summary()}

    assert (summary["one.example"].recipients, summary["one.example"].messages) == (3, 2)
    assert summary["one.example"].oldest_received_at == T0
    assert summary["one.example"].deferred == 1
    assert (summary["two.example"].recipients, summary["two.example"].deferred) == (1, 0)


async def test_list_messages_filters_by_domain_and_pages(spool: Spool) -> None:
    """list_messages() filters on a recipient domain (any case) and pages with after=."""
    ids = [await spool.store(make_envelope(f"u{n}@one.example"), b"x") for n in range(3)]
    other = await spool.store(make_envelope("v@two.example"), b"x")

    for_two = await spool.list_messages(domain="TWO.example")
    page_one = await spool.list_messages(limit=2)
    page_two = await spool.list_messages(limit=2, after=page_one[-1].queue_id)

    assert [m.queue_id for m in for_two] == [other]
    assert [m.queue_id for m in page_one + page_two] == [*ids, other]
    assert (page_one[0].recipients, page_one[0].next_attempt) == (1, T0)


async def test_delete_removes_message_and_ignores_late_outcomes(spool: Spool) -> None:
    """delete() removes a message; outcomes for its claimed recipients are then ignored."""
    queue_id = await spool.store(make_envelope(), b"x")
    [message] = await spool.claim_due(T0, 10)

    assert await spool.delete(queue_id)
    assert not await spool.delete(queue_id)
    await spool.record([Deferred(message.recipients[0].rcpt_id, T0 + 60)])

    assert spool.statistics().recipients == 0
    with pytest.raises(MessageNotFoundError):
        await spool.load_content(message)


async def test_flush_makes_deferred_recipients_due_now(spool: Spool, clock: Clock) -> None:
    """flush() brings queued recipients forward to now, for one message or all."""
    first = await spool.store(make_envelope(), b"x")
    await spool.store(make_envelope(), b"y")
    claimed = await spool.claim_due(T0, 10)
    await spool.record([Deferred(c.recipients[0].rcpt_id, T0 + 3600) for c in claimed])
    clock.now = T0 + 10

    assert await spool.flush(first) == 1
    assert spool.next_due() == T0 + 10
    assert await spool.flush() == 2
    assert len(await spool.claim_due(T0 + 10, 10)) == 2
    with pytest.raises(MessageNotFoundError):
        await spool.flush("NOSUCHMESSAGE000")


async def test_claim_message_for_bounce_takes_every_queued_recipient(spool: Spool) -> None:
    """A whole message can be claimed at once, due or not, except recipients already active."""
    queue_id = await spool.store(make_envelope("a@x.example", "b@y.example"), b"x")
    [partial] = await spool.claim_due(T0, 1)
    await spool.record([Deferred(partial.recipients[0].rcpt_id, T0 + 9999)])
    [other] = await spool.claim_due(T0, 1)

    claimed = await spool.claim_message_for_bounce(queue_id)

    assert [r.address for r in claimed.recipients] == ["a@x.example"]
    assert other.recipients[0].address == "b@y.example"
    again = await spool.claim_message_for_bounce(queue_id)
    assert again.recipients == ()
    with pytest.raises(MessageNotFoundError):
        await spool.claim_message_for_bounce("NOSUCHMESSAGE000")


async def test_statistics_count_messages_recipients_and_batches(spool: Spool) -> None:
    """statistics() reports queued rows, active recipients and writer counters."""
    await spool.store(make_envelope("a@x.example", "b@y.example"), b"x")
    await spool.claim_due(T0, 1)

    stats = spool.statistics()

    assert (stats.messages, stats.recipients, stats.active, stats.stores) == (1, 2, 1, 1)
    assert stats.commits == 1
    assert stats.transactions == 2
    assert stats.avg_batch_size == 1.0


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A spool written by a newer mailwright (higher user_version) is not opened."""
    folder = tmp_path / "spool"
    folder.mkdir()
    conn = sqlite3.connect(folder / DATABASE)
    conn.execute("PRAGMA user_version=99")
    conn.close()

    with pytest.raises(SpoolError, match="newer"):
        await Spool(folder, fsync=False).open()
    assert os.listdir(folder / "owners") == []


async def test_use_after_close_raises_spool_error(tmp_path: Path) -> None:
    """Calls on a closed spool raise SpoolError rather than hang."""
    spool = Spool(tmp_path / "spool", fsync=False, min_free_bytes=0)
    await spool.open()
    await spool.close()
    await spool.close()

    with pytest.raises(SpoolError, match="not open"):
        await spool.store(make_envelope(), b"x")
    with pytest.raises(SpoolError, match="not open"):
        spool.next_due()


async def test_flushing_the_whole_queue_goes_in_chunks_and_misses_nothing(
    spool: Spool, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flush of all, done a few recipients per transaction, makes every one of them due."""
    monkeypatch.setattr(store_module, "FLUSH_CHUNK", 3)
    for _ in range(10):
        await spool.store(make_envelope(), b"x")
    claimed = await spool.claim_due(T0, 100)
    await spool.record([Deferred(c.recipients[0].rcpt_id, T0 + 3600) for c in claimed])
    clock.now = T0 + 10
    before = spool.statistics().transactions

    assert await spool.flush() == 10

    assert spool.statistics().transactions - before >= 4  # 3 + 3 + 3 + 1
    assert len(await spool.claim_due(T0 + 10, 100)) == 10


async def test_a_claim_never_takes_what_another_spool_took_in_between(tmp_path: Path) -> None:
    """Candidates read before another process claimed them are not claimed a second time."""
    folder = tmp_path / "spool"
    async with (
        Spool(folder, fsync=False, min_free_bytes=0) as first,
        Spool(folder, fsync=False, min_free_bytes=0) as second,
    ):
        for _ in range(4):
            await first.store(make_envelope(), b"x")

        both = await asyncio.gather(first.claim_due(2e9, 10), second.claim_due(2e9, 10))

    ids = [r.rcpt_id for claims in both for c in claims for r in c.recipients]
    assert sorted(ids) == sorted(set(ids))
    assert len(ids) == 4
