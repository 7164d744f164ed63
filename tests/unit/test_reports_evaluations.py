"""Tests for mailwright.reports.evaluations: the SQLite store of evaluations."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from tests.dmarc_reports import DAY, DAY0, evaluation, policy, row

from mailwright.reports.evaluations import (
    EvaluationStore,
    EvaluationStoreError,
    decode_policy,
    decode_row,
    encode_policy,
    encode_row,
)
from mailwright.reports.model import DkimAuth, OverrideReason, PolicyPublished, SpfAuth


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "dmarc.db"


def exists(path: Path) -> bool:
    return path.exists()


def table_rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT period_begin, period_end, policy_domain, count, report_id"
            " FROM report_rows ORDER BY id"
        ).fetchall()


async def test_add_only_buffers_until_a_flush(path: Path) -> None:
    """add() writes nothing; flush() writes the buffer and says how many."""
    store = EvaluationStore(path)
    store.add(evaluation(DAY0 + 10))
    store.add(evaluation(DAY0 + 20))

    assert store.statistics()["buffered"] == 2
    assert not exists(path)
    assert await store.flush() == 2
    assert store.statistics()["buffered"] == 0
    await store.close()


async def test_equal_rows_of_one_period_are_stored_once_with_a_count(path: Path) -> None:
    """Evaluations with equal row keys in one period and policy domain share one counted row."""
    store = EvaluationStore(path)
    for offset in range(5):
        store.add(evaluation(DAY0 + offset))
    await store.flush()
    for offset in range(3):
        store.add(evaluation(DAY0 + 100 + offset))
    await store.flush()
    await store.close()

    assert table_rows(path) == [(int(DAY0), int(DAY0 + DAY), "example.com", 8, None)]


async def test_rows_differ_by_period_domain_and_key(path: Path) -> None:
    """Another period, policy domain or row key makes another stored row."""
    store = EvaluationStore(path)
    store.add(evaluation(DAY0 + 1))
    store.add(evaluation(DAY0 + DAY + 1))
    store.add(evaluation(DAY0 + 2, published=policy("example.org")))
    store.add(evaluation(DAY0 + 3, row("198.51.100.9")))
    await store.close()

    stored = table_rows(path)
    assert sorted(stored, key=repr) == sorted(
        [
            (int(DAY0), int(DAY0 + DAY), "example.com", 1, None),
            (int(DAY0 + DAY), int(DAY0 + 2 * DAY), "example.com", 1, None),
            (int(DAY0), int(DAY0 + DAY), "example.org", 1, None),
            (int(DAY0), int(DAY0 + DAY), "example.com", 1, None),
        ],
        key=repr,
    )


async def test_evaluations_without_rua_are_not_stored(path: Path) -> None:
    """Nobody asked for a report about them: add() drops them at once."""
    store = EvaluationStore(path)
    store.add(evaluation(DAY0, rua=()))

    assert store.statistics()["buffered"] == 0
    await store.close()


async def test_pending_returns_rows_of_ended_periods_only(path: Path) -> None:
    """A period is pending once its end is at or before until; the current one never is."""
    store = EvaluationStore(path)
    store.add(evaluation(DAY0 + 5))
    store.add(evaluation(DAY0 + DAY + 5))
    await store.flush()

    assert await store.pending(DAY0 + DAY - 1) == []
    ended = await store.pending(DAY0 + DAY)
    assert [(p.period_begin, p.period_end, p.row.count) for p in ended] == [
        (int(DAY0), int(DAY0 + DAY), 1)
    ]
    assert len(await store.pending(DAY0 + 2 * DAY)) == 2
    await store.close()


async def test_pending_rows_round_trip_every_field(path: Path) -> None:
    """Rows, the policy and the rua come back exactly as added."""
    the_row = row(
        "2001:db8::1",
        disposition="quarantine",
        dkim="fail",
        spf="fail",
        envelope_from="",
        reasons=(OverrideReason("local_policy", "ünïcode ✓"), OverrideReason("other")),
        dkim_results=(DkimAuth("a.example", "fail", None, "bad"), DkimAuth("b", "pass", "s")),
        spf_results=(SpfAuth("", "none", None),),
    )
    published = PolicyPublished(
        "example.com", "reject", "none", "quarantine", "s", "r", "y", "treewalk", "1:d", 50
    )
    store = EvaluationStore(path)
    store.add(evaluation(DAY0 + 7, the_row, published=published, rua=("mailto:a@b!1m", "x:y")))
    await store.close()

    reopened = EvaluationStore(path)
    [stored] = await reopened.pending(DAY0 + DAY)
    await reopened.close()
    assert stored.row == the_row
    assert stored.policy == published
    assert stored.rua == ("mailto:a@b!1m", "x:y")
    assert stored.last_seen == DAY0 + 7


async def test_the_latest_evaluation_gives_the_period_its_policy_and_rua(path: Path) -> None:
    """When the record changes within a period, the report notes the final one."""
    store = EvaluationStore(path)
    store.add(evaluation(DAY0 + 50, published=policy(p="quarantine"), rua=("mailto:new@x",)))
    store.add(evaluation(DAY0 + 10, published=policy(p="none"), rua=("mailto:old@x",)))
    await store.flush()
    store.add(evaluation(DAY0 + 20, row("192.0.2.99"), published=policy(p="none")))
    await store.close()

    reopened = EvaluationStore(path)
    pending = await reopened.pending(DAY0 + DAY)
    await reopened.close()
    assert {(p.policy.p, p.rua) for p in pending} == {("quarantine", ("mailto:new@x",))}


async def test_marked_rows_are_no_longer_pending_and_take_no_more_counts(path: Path) -> None:
    """After mark_reported, a late evaluation of the same period starts a new row."""
    store = EvaluationStore(path)
    store.add(evaluation(DAY0 + 1))
    await store.flush()
    [first] = await store.pending(DAY0 + DAY)

    assert await store.mark_reported([first.id], "r1@mx") == 1
    assert await store.mark_reported([first.id], "r2@mx") == 0
    assert await store.pending(DAY0 + DAY) == []
    store.add(evaluation(DAY0 + 2))
    await store.close()

    assert table_rows(path) == [
        (int(DAY0), int(DAY0 + DAY), "example.com", 1, "r1@mx"),
        (int(DAY0), int(DAY0 + DAY), "example.com", 1, None),
    ]


async def test_mark_reported_handles_more_ids_than_one_statement_takes(path: Path) -> None:
    """Thousands of ids are marked in chunks, in one transaction."""
    store = EvaluationStore(path)
    for index in range(1200):
        store.add(evaluation(DAY0 + 1, row(f"10.0.{index // 256}.{index % 256}")))
    await store.flush()
    pending = await store.pending(DAY0 + DAY)

    assert await store.mark_reported((p.id for p in pending), "big@mx") == 1200
    assert await store.pending(DAY0 + DAY) == []
    await store.close()


async def test_purge_drops_old_reported_rows_and_given_up_pending_ones(path: Path) -> None:
    """Reported rows older than reported_before go; pending ones only before pending_before."""
    store = EvaluationStore(path)
    store.add(evaluation(DAY0 + 1))
    store.add(evaluation(DAY0 + DAY + 1))
    store.add(evaluation(DAY0 + 2, published=policy("old.example")))
    await store.flush()
    reported = [p.id for p in await store.pending(DAY0 + DAY) if p.policy_domain == "example.com"]
    await store.mark_reported(reported, "r@mx")

    assert await store.purge(reported_before=DAY0 + 1) == 1
    assert [p.policy_domain for p in await store.pending(DAY0 + 2 * DAY)] == [
        "old.example",
        "example.com",
    ]
    assert await store.purge(reported_before=DAY0 + 1, pending_before=DAY0 + 1) == 1
    await store.close()

    assert table_rows(path) == [(int(DAY0 + DAY), int(DAY0 + 2 * DAY), "example.com", 1, None)]
    with sqlite3.connect(path) as conn:
        periods = conn.execute("SELECT period_begin, policy_domain FROM report_periods").fetchall()
    assert periods == [(int(DAY0 + DAY), "example.com")]


async def test_start_flushes_every_flush_interval(path: Path) -> None:
    """With start(), the buffer is written in the background."""
    store = EvaluationStore(path, flush_interval=0.01)
    await store.start()
    store.add(evaluation(DAY0))

    for _ in range(200):
        await asyncio.sleep(0.01)
        if store.statistics()["written"]:
            break
    assert store.statistics()["written"] == 1
    await store.close()


async def test_a_full_buffer_is_flushed_without_waiting_for_the_interval(path: Path) -> None:
    """flush_size evaluations wake the flusher at once."""
    store = EvaluationStore(path, flush_interval=3600, flush_size=3)
    await store.start()
    for offset in range(3):
        store.add(evaluation(DAY0 + offset))

    for _ in range(200):
        await asyncio.sleep(0.01)
        if store.statistics()["written"] == 3:
            break
    assert store.statistics()["written"] == 3
    await store.close()


async def test_close_writes_what_is_buffered(path: Path) -> None:
    """close() flushes, so a clean shutdown loses nothing."""
    store = EvaluationStore(path, flush_interval=3600)
    await store.start()
    store.add(evaluation(DAY0))
    await store.close()
    await store.close()

    assert table_rows(path)[0][3] == 1


async def test_the_database_is_in_wal_mode_with_a_busy_timeout(path: Path) -> None:
    """Several processes may write the file: WAL, and a wait for the write lock."""
    store = EvaluationStore(path, busy_timeout=2.5)
    await store.start()
    mode = await store._run(lambda conn: conn.execute("PRAGMA journal_mode").fetchone()[0])
    timeout = await store._run(lambda conn: conn.execute("PRAGMA busy_timeout").fetchone()[0])
    await store.close()

    assert mode == "wal"
    assert timeout == 2500


async def test_two_stores_on_one_file_add_up(path: Path) -> None:
    """Two server processes (two stores) recording the same row add to one count."""
    first, second = EvaluationStore(path), EvaluationStore(path)
    await first.start()
    await second.start()
    for _ in range(4):
        first.add(evaluation(DAY0))
        second.add(evaluation(DAY0))
    await asyncio.gather(first.flush(), second.flush())
    await first.close()
    await second.close()

    assert table_rows(path) == [(int(DAY0), int(DAY0 + DAY), "example.com", 8, None)]


async def test_a_locked_database_fails_the_flush_and_keeps_the_batch(path: Path) -> None:
    """A write lock held past busy_timeout raises EvaluationStoreError; nothing is lost."""
    store = EvaluationStore(path, busy_timeout=0.05)
    await store.start()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    store.add(evaluation(DAY0))

    with pytest.raises(EvaluationStoreError, match="locked"):
        await store.flush()
    assert store.statistics()["buffered"] == 1
    blocker.execute("ROLLBACK")
    blocker.close()
    assert await store.flush() == 1
    await store.close()


async def test_a_full_buffer_drops_and_counts(path: Path) -> None:
    """Past max_buffer, evaluations are dropped and counted, never queued without bound."""
    store = EvaluationStore(path, max_buffer=2)
    for offset in range(5):
        store.add(evaluation(DAY0 + offset))

    assert store.statistics()["buffered"] == 2
    assert store.statistics()["dropped"] == 3
    await store.close()


@pytest.fixture
def blocked(tmp_path: Path) -> Path:
    """A file where the store would need a folder."""
    path = tmp_path / "file"
    path.write_text("not a folder")
    return path


async def test_an_unusable_path_raises_a_store_error(blocked: Path) -> None:
    """A database that cannot be created raises EvaluationStoreError naming the path."""
    store = EvaluationStore(blocked / "dmarc.db")

    with pytest.raises(EvaluationStoreError, match=r"file/dmarc\.db"):
        await store.start()
    await store.close()


def test_periods_are_utc_multiples_of_the_interval() -> None:
    """period_of gives aligned [begin, end) periods."""
    store = EvaluationStore(Path("unused.db"), interval=3600)

    assert store.period_of(DAY0 + 3599.5) == (int(DAY0), int(DAY0 + 3600))
    assert store.period_of(DAY0 + 3600) == (int(DAY0 + 3600), int(DAY0 + 7200))


def test_row_and_policy_encodings_round_trip() -> None:
    """encode_row and encode_policy are inverted by their decoders; equal rows encode equally."""
    the_row = row(reasons=(OverrideReason("other", "c"),)).with_count(9)

    assert decode_row(encode_row(the_row), 9) == the_row
    assert encode_row(the_row) == encode_row(the_row.with_count(1))
    assert decode_policy(encode_policy(policy(sp="none", pct=5))) == policy(sp="none", pct=5)
    with pytest.raises(ValueError, match="malformed"):
        decode_row("[1, 2]", 1)
