"""Tests for the group-commit writer (mailwright.spool.writer) on a real SQLite spool."""

from __future__ import annotations

import asyncio
import errno
import sqlite3
from pathlib import Path

import pytest

from mailwright.envelope import Envelope, Recipient
from mailwright.errors import SpoolError
from mailwright.spool import Delivered, Spool
from mailwright.spool import writer as writer_module
from mailwright.spool.writer import GroupCommitWriter


def make_envelope(*recipients: str) -> Envelope:
    """An envelope from alice@example.com to ``recipients`` (bob@example.org by default)."""
    return Envelope(
        "alice@example.com", [Recipient(a) for a in recipients or ("bob@example.org",)]
    )


def writer_of(spool: Spool) -> GroupCommitWriter:
    """The spool's writer, for its counters."""
    writer = spool._writer
    assert writer is not None
    return writer


async def test_a_locked_database_is_retried_while_the_loop_goes_on(tmp_path: Path) -> None:
    """While another connection holds the write lock, stores wait and the loop keeps running."""
    async with Spool(tmp_path / "spool", fsync=False, min_free_bytes=0) as spool:
        blocker = sqlite3.connect(spool.path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        store = asyncio.create_task(spool.store(make_envelope(), b"x"))
        await asyncio.sleep(0.3)
        stuck = not store.done()
        blocker.execute("ROLLBACK")
        blocker.close()
        queue_id = await store
        ticker.cancel()

        assert stuck
        assert ticks >= 15  # the loop was never blocked by SQLite's busy handler
        assert writer_of(spool).counters.busy_retries > 0
        assert (await spool.get_message(queue_id)).content == b"x"


async def test_a_failed_fsync_fails_every_store_of_its_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When fdatasync fails, the stores it covered raise SpoolError instead of succeeding."""

    def failing_sync(self: GroupCommitWriter) -> None:
        raise OSError(errno.EIO, "Input/output error")

    async with Spool(tmp_path / "spool", fsync=True, min_free_bytes=0) as spool:
        monkeypatch.setattr(GroupCommitWriter, "_sync_wal", failing_sync)
        results = await asyncio.gather(
            *(spool.store(make_envelope(), b"x") for _ in range(5)), return_exceptions=True
        )
        monkeypatch.undo()
        after = await spool.store(make_envelope(), b"y")

    assert all(isinstance(result, SpoolError) for result in results)
    assert "fsync" in str(results[0]) or "Input/output" in str(results[0])
    assert isinstance(after, str)


async def test_durable_stores_wait_for_the_fsync_of_their_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store with fsync on returns only after the WAL was synced once for its batch."""
    synced: list[int] = []
    real_sync = GroupCommitWriter._sync_wal

    def counting_sync(self: GroupCommitWriter) -> None:
        real_sync(self)
        synced.append(self.counters.transactions)

    monkeypatch.setattr(GroupCommitWriter, "_sync_wal", counting_sync)
    async with Spool(tmp_path / "spool", fsync=True, min_free_bytes=0) as spool:
        before = len(synced)
        await asyncio.gather(*(spool.store(make_envelope(), b"x") for _ in range(20)))
        commits = writer_of(spool).counters.commits

    assert len(synced) - before >= 1
    assert len(synced) - before <= commits  # one fsync per durable commit, never per message


async def test_outcomes_alone_wait_for_a_store_to_share_its_commit(tmp_path: Path) -> None:
    """A record() issued just before a store is committed in the store's transaction."""
    async with Spool(tmp_path / "spool", fsync=False, min_free_bytes=0) as spool:
        claimed = await spool.store_claimed(make_envelope(), b"x")
        before = writer_of(spool).counters.transactions

        record = asyncio.create_task(spool.record([Delivered(claimed.recipients[0].rcpt_id)]))
        await asyncio.sleep(0)
        store = asyncio.create_task(spool.store(make_envelope(), b"y"))
        await asyncio.gather(record, store)

        assert writer_of(spool).counters.transactions - before == 1


async def test_outcomes_alone_are_committed_after_the_linger(tmp_path: Path) -> None:
    """Without a store to join, outcomes still commit, within a moment."""
    async with Spool(tmp_path / "spool", fsync=False, min_free_bytes=0) as spool:
        claimed = await spool.store_claimed(make_envelope(), b"x")

        async with asyncio.timeout(2):
            await spool.record([Delivered(claimed.recipients[0].rcpt_id)])

        assert spool.statistics().messages == 0


async def test_the_wal_is_checkpointed_and_reused_under_steady_traffic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storing and delivering 24 MB keeps the WAL file near the checkpoint size, not 24 MB."""
    monkeypatch.setattr(writer_module, "CHECKPOINT_BYTES", 1024 * 1024)
    body = b"x" * 100_000
    async with Spool(tmp_path / "spool", fsync=False, min_free_bytes=0) as spool:
        for _ in range(240):
            claimed = await spool.store_claimed(make_envelope(), body)
            await spool.record([Delivered(claimed.recipients[0].rcpt_id)])
        wal = Path(f"{spool.path}-wal").stat().st_size  # noqa: ASYNC240 - one stat
        checkpoints = writer_of(spool).counters.checkpoints

    assert checkpoints >= 5
    assert wal < 8 * 1024 * 1024


async def test_a_quiet_spool_is_checkpointed_soon_after_its_last_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A few small commits, then silence: the idle timer still runs a checkpoint."""
    monkeypatch.setattr(writer_module, "CHECKPOINT_IDLE", 0.05)
    async with Spool(tmp_path / "spool", fsync=False, min_free_bytes=0) as spool:
        await spool.store(make_envelope(), b"x")
        await asyncio.sleep(0.3)

        assert writer_of(spool).counters.checkpoints >= 1
