"""Memory and due-work cost of a spool holding one million queued messages.

Usage: python bench/queue_memory.py [--messages N] [--folder DIR] [--keep]

1. Fills a spool with N small messages (one recipient each, spread over 1000
   domains and over five days of next attempts, as a deferred backlog would
   be) through the spool's own insert code, in large transactions without
   fsync: the fast path, not the group-commit path.
2. Starts a FRESH process that opens the spool as the delivery side does and
   runs the scheduler's due-work path a few times: next_due(), claim_due() of
   1000 recipients, record() deferring them again. It prints the process's
   resident memory per queued message, the time of each claim_due, and the
   longest the event loop (which the spool's writer shares with reception)
   was held up meanwhile.

Target: under 1 KB of memory per queued message (the spool keeps the queue on
disk; the delivery side holds only what it has claimed).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from mailwright.delivery.agent import AgentSettings
from mailwright.envelope import Envelope, Recipient
from mailwright.spool import Deferred, Spool
from mailwright.spool.queue_id import QueueIdGenerator
from mailwright.spool.schema import configure_writer, create_schema
from mailwright.spool.store import DATABASE
from mailwright.spool.writes import NewMessage, insert_message

BASE = 1_800_000_000.0
SPREAD = 5 * 86400.0
DOMAINS = 1000
BATCH = 20_000


def rss_bytes() -> int:
    """Current resident set size of this process, from /proc."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def fill(folder: Path, count: int) -> None:
    """Insert ``count`` messages directly, in transactions of BATCH messages."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    conn = sqlite3.connect(folder / DATABASE, isolation_level=None)
    configure_writer(conn, fsync=False)
    # The server checkpoints from a thread of its own; this bulk load lets SQLite do it.
    conn.execute("PRAGMA wal_autocheckpoint=10000")
    create_schema(conn)

    content = b"Subject: bench\r\n\r\n" + b"x" * 200 + b"\r\n"
    templates = [
        NewMessage.prepare(
            Envelope("sender@bench.example", [Recipient(f"user@d{d}.example")]), content, BASE
        )
        for d in range(DOMAINS)
    ]
    ids = QueueIdGenerator()

    started = time.perf_counter()
    for first in range(0, count, BATCH):
        conn.execute("BEGIN IMMEDIATE")
        for n in range(first, min(first + BATCH, count)):
            due = BASE + (n * 7919 % count) / count * SPREAD  # scattered over five days
            insert_message(conn, ids, templates[n % DOMAINS], due)
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()

    elapsed = time.perf_counter() - started
    size = sum(path.stat().st_size for path in folder.iterdir() if path.is_file())
    print(f"filled {count} messages in {elapsed:.1f} s ({count / elapsed:,.0f}/s)")
    print(f"spool on disk: {size / 1e6:.0f} MB ({size / count:.0f} bytes per message)")


class LoopLag:
    """How long the event loop went without running a 1 ms timer: its longest stall."""

    def __init__(self) -> None:
        self.worst = 0.0

    async def watch(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, time.perf_counter() - started - 0.001)


async def deliver(folder: Path, count: int) -> None:
    """Open the spool as the delivery side and run the due-work path; print the figures."""
    baseline = rss_bytes()
    spool = Spool(folder, fsync=False, min_free_bytes=0)
    await spool.open()

    timings = []
    for round_number in range(5):
        now = BASE + SPREAD * (round_number + 1) / 10
        first_due = spool.next_due()
        started = time.perf_counter()
        claimed = await spool.claim_due(now, 1000)
        timings.append(time.perf_counter() - started)
        recipients = [r for message in claimed for r in message.recipients]
        assert first_due is not None
        assert len(recipients) == 1000
        await spool.record([Deferred(r.rcpt_id, now + 3600) for r in recipients])

    # What the delivery agent does: claims of its batch size, each settled per message.
    lag = LoopLag()
    watcher = asyncio.create_task(lag.watch())
    batch = AgentSettings().claim_batch
    for round_number in range(20):
        now = BASE + SPREAD * (round_number + 6) / 30
        claimed = await spool.claim_due(now, batch)
        assert sum(len(message.recipients) for message in claimed) == batch
        for message in claimed:
            outcomes = [Deferred(r.rcpt_id, now + 3600) for r in message.recipients]
            await spool.record(outcomes)

    watcher.cancel()
    started = time.perf_counter()
    stats = spool.statistics()
    statistics_time = time.perf_counter() - started
    await spool.close()

    rss = rss_bytes()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"queued messages: {stats.messages}, recipients: {stats.recipients}")
    print(
        f"claim_due(1000) with {count} queued: " + ", ".join(f"{t * 1000:.1f} ms" for t in timings)
    )
    print(
        f"longest event-loop stall over 20 claims of {batch} and their outcomes: "
        f"{lag.worst * 1000:.1f} ms"
    )
    print(f"statistics() (row counts): {statistics_time * 1000:.0f} ms")
    print(f"RSS before open: {baseline / 1e6:.1f} MB, after the runs: {rss / 1e6:.1f} MB")
    print(f"peak RSS: {peak / 1e6:.1f} MB")
    print(f"RSS per queued message: {rss / count:.1f} bytes (total), ", end="")
    print(f"{(rss - baseline) / count:.1f} bytes (added by the spool)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/mailwright-bench-spool"))
    parser.add_argument("--keep", action="store_true", help="keep the spool afterwards")
    parser.add_argument("--deliver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.deliver:
        asyncio.run(deliver(args.folder, args.messages))
        return

    fill(args.folder, args.messages)
    command = [sys.executable, __file__, "--deliver", "--messages", str(args.messages)]
    subprocess.run([*command, "--folder", str(args.folder)], check=True)
    if not args.keep:
        shutil.rmtree(args.folder)


if __name__ == "__main__":
    main()
