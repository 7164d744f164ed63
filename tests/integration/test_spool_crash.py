"""Crash test for the spool: kill -9 a process mid-stream and find every acknowledged message.

A SIGKILL tests what the spool promises against a crash of the process (the
data handed to the kernel survives). What fsync adds, surviving the loss of
power, cannot be tested without cutting the power; docs/spool.md says why the
design gives it.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from pathlib import Path

from mailwright.spool import DATABASE, Spool

STORE_FOREVER = """
import asyncio, sys
from pathlib import Path
from mailwright.envelope import Envelope, Recipient
from mailwright.spool import Spool

def content(n):
    return (f"{n:08d}" * 1250).encode()

async def main():
    spool = Spool(Path(sys.argv[1]), fsync=True, min_free_bytes=0)
    await spool.open()
    counter = 0

    async def worker():
        nonlocal counter
        while True:
            n = counter
            counter += 1
            envelope = Envelope("a@x.example", [Recipient(f"r{n}@y.example")])
            queue_id = await spool.store(envelope, content(n))
            sys.stdout.write(f"{queue_id} {n}\\n")
            sys.stdout.flush()

    await asyncio.gather(*(worker() for _ in range(32)))

asyncio.run(main())
"""


def expected_content(n: int) -> bytes:
    """The content the child stores as message number ``n``."""
    return (f"{n:08d}" * 1250).encode()


async def test_every_acknowledged_message_survives_kill_9(tmp_path: Path) -> None:
    """After SIGKILL mid-stream, each queue id the child printed is in the spool, intact."""
    folder = tmp_path / "spool"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", STORE_FOREVER, str(folder), stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    lines = [await child.stdout.readline() for _ in range(300)]

    child.send_signal(signal.SIGKILL)
    rest, _ = await child.communicate()
    lines += rest.splitlines(keepends=True)

    acknowledged = dict(line.decode().split() for line in lines if line.endswith(b"\n"))
    assert len(acknowledged) >= 300
    async with Spool(folder, fsync=False, min_free_bytes=0) as spool:
        for queue_id, n in acknowledged.items():
            detail = await spool.get_message(queue_id)
            assert detail.content == expected_content(int(n))
            assert [r.address for r in detail.recipients] == [f"r{n}@y.example"]

    conn = sqlite3.connect(folder / DATABASE)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
