"""Full-disk test for the spool on a real 2 MiB tmpfs (needs root to mount it)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailwright.envelope import Envelope, Recipient
from mailwright.errors import SpoolFullError
from mailwright.spool import DATABASE, Spool


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted in tmp_path, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a 2 MiB tmpfs to fill it up needs root")
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def content(n: int) -> bytes:
    """Message number ``n``: about 1 KB, different for every n."""
    return (f"message {n:06d} " * 64).encode()


async def test_filling_the_disk_raises_spool_full_and_keeps_acknowledged_mail(
    tiny_disk: Path,
) -> None:
    """Storing until ENOSPC ends in SpoolFullError; every acknowledged message stays readable."""
    folder = tiny_disk / "spool"
    acknowledged: dict[str, int] = {}
    failure: SpoolFullError | None = None

    async with Spool(folder, fsync=True, min_free_bytes=0) as spool:
        for round_number in range(10_000):
            numbers = range(round_number * 8, round_number * 8 + 8)
            results = await asyncio.gather(
                *(
                    spool.store(
                        Envelope("a@x.example", [Recipient(f"r{n}@y.example")]), content(n)
                    )
                    for n in numbers
                ),
                return_exceptions=True,
            )
            for n, result in zip(numbers, results, strict=True):
                if isinstance(result, str):
                    acknowledged[result] = n
                elif isinstance(result, SpoolFullError):
                    failure = result
                else:
                    raise AssertionError(f"unexpected outcome {result!r}")
            if failure is not None:
                break

        assert failure is not None
        assert len(acknowledged) > 10
        for queue_id, n in acknowledged.items():
            assert (await spool.get_message(queue_id)).content == content(n)

    async with Spool(folder, fsync=True, min_free_bytes=0) as reopened:
        listed = {info.queue_id for info in await reopened.list_messages(limit=100_000)}
        assert listed == set(acknowledged)
        for queue_id, n in acknowledged.items():
            assert (await reopened.get_message(queue_id)).content == content(n)

    conn = sqlite3.connect(folder / DATABASE)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


async def test_disk_full_error_keeps_the_sqlite_cause(tiny_disk: Path) -> None:
    """A store that hits ENOSPC raises SpoolFullError with SQLite's SQLITE_FULL as cause."""
    folder = tiny_disk / "spool"
    async with Spool(folder, fsync=False, min_free_bytes=0) as spool:
        with pytest.raises(SpoolFullError) as caught:  # noqa: PT012 - the loop fills the disk
            for n in range(100_000):
                await spool.store(
                    Envelope("a@x.example", [Recipient("r@y.example")]), content(n) * 4
                )

    cause = caught.value.__cause__
    assert isinstance(cause, sqlite3.Error | OSError), repr(cause)
