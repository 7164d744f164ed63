"""Crash test: kill -9 the server while thousands of messages stream in.

Every message that got a 250 must reach the next hop after a restart (at least
once). A message whose 250 was lost in the crash may be delivered too (it was
on disk before the reply could be sent), but there can be at most one such
message per client session that was in flight at the moment of the kill.
"""

from __future__ import annotations

import contextlib
import os
import signal
import smtplib
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from tests.peers import MailwrightProcess, SmtpSink, free_port

pytestmark = [pytest.mark.integration, pytest.mark.postfix, pytest.mark.slow]

SESSIONS = 8
TOTAL = 3000
KILL_AFTER = 1000


def _config(sink_port: int, inbound: int) -> str:
    return f"""
[server]
hostname = "mx.mailwright.test"
spool = "var/spool"
receivers = 2                       # the kill hits the first; the second must notice

[[listener]]
role = "inbound"
address = "127.0.0.1:{inbound}"

[domains]
relay = ["example.test"]

[routes]
"example.test" = "smtp://127.0.0.1:{sink_port}"
"""


class _Injector:
    """Sends numbered messages from several threads and records each 250."""

    def __init__(self, port: int, total: int = TOTAL, *, per_connection: int = TOTAL) -> None:
        self.port = port
        self.total = total
        self.per_connection = per_connection  # messages sent before reconnecting
        self.acked: set[int] = set()
        self.attempted: set[int] = set()
        self.lock = threading.Lock()
        self.next_number = 0
        self.stop = threading.Event()

    def _take(self) -> int | None:
        with self.lock:
            if self.next_number >= self.total or self.stop.is_set():
                return None
            self.next_number += 1
            return self.next_number - 1

    def worker(self) -> None:
        while not self.stop.is_set():
            try:
                client = smtplib.SMTP("127.0.0.1", self.port, timeout=10)
            except OSError:
                return
            try:
                sent = 0
                while sent < self.per_connection and (number := self._take()) is not None:
                    sent += 1
                    with self.lock:
                        self.attempted.add(number)
                    message = (
                        f"Subject: crash {number}\r\nMessage-ID: <{number}@crash.test>\r\n"
                        f"\r\n{'x' * 2000}\r\n"
                    ).encode()
                    client.sendmail("a@sender.test", [f"r{number}@example.test"], message)
                    with self.lock:
                        self.acked.add(number)
            except (smtplib.SMTPException, OSError):
                return
            finally:
                with contextlib.suppress(OSError):
                    client.close()
            if self._take_done():
                return

    def _take_done(self) -> bool:
        with self.lock:
            return self.next_number >= self.total


def test_kill_9_mid_stream_loses_no_acknowledged_message(tmp_path: Path) -> None:
    """Every message acknowledged with 250 before a kill -9 is delivered after restart."""
    inbound = free_port()
    with SmtpSink(tmp_path) as sink:
        # The sink is slowed by nothing; deliveries race with injection, as in production.
        process = MailwrightProcess(tmp_path, _config(sink.port, inbound))
        process.start(("127.0.0.1", inbound))
        injector = _Injector(inbound)
        threads = [threading.Thread(target=injector.worker) for _ in range(SESSIONS)]
        for thread in threads:
            thread.start()

        deadline = time.monotonic() + 60
        while len(injector.acked) < KILL_AFTER and time.monotonic() < deadline:
            time.sleep(0.01)
        children = _children(process)
        process.kill9()
        injector.stop.set()
        for thread in threads:
            thread.join(timeout=30)
        acked = set(injector.acked)
        assert len(acked) >= KILL_AFTER
        assert children, "the server started no child process (a second receiver)"
        _wait_until_gone(children)

        process.start(("127.0.0.1", inbound))
        try:
            delivered = _wait_for_numbers(sink, acked, timeout=60)
        finally:
            process.stop()

    assert acked <= delivered, f"lost {len(acked - delivered)} acknowledged messages"
    unacknowledged = delivered - acked
    assert unacknowledged <= injector.attempted
    assert len(unacknowledged) <= SESSIONS


def _children(process: MailwrightProcess) -> list[int]:
    assert process.process is not None
    pid = process.process.pid
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def _receivers(process: MailwrightProcess) -> list[int]:
    """The server's receiver children (not multiprocessing's resource tracker)."""
    return [
        pid
        for pid in _children(process)
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def _wait_until_gone(pids: list[int], timeout: float = 10.0) -> None:
    """The child processes notice their parent died and exit by themselves."""
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        assert time.monotonic() < deadline, f"orphaned child process(es) {pids} still run"
        time.sleep(0.05)


def _wait_for_numbers(sink: SmtpSink, wanted: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    while True:
        numbers = {int(message.recipients[0][1:].split("@")[0]) for message in sink.messages()}
        if wanted <= numbers or time.monotonic() > deadline:
            return numbers
        time.sleep(0.2)


def test_kill_9_of_a_second_receiver_loses_nothing_it_acknowledged(tmp_path: Path) -> None:
    """A receiver killed while it holds handed-over messages in memory: all are delivered.

    The sink waits a second before each DATA reply, so deliveries lag behind
    reception; the receiver is killed once the spool shows recipients claimed
    by it (acknowledged, handed over, not delivered), and its restarted
    successor must find and deliver them.
    """
    inbound = free_port()
    with SmtpSink(tmp_path, extra=["-w", "1"]) as sink:
        process = MailwrightProcess(tmp_path, _config(sink.port, inbound))
        process.start(("127.0.0.1", inbound))
        try:
            _wait_for_log(process, "[receiver] smtpd.listen")
            [child] = _receivers(process)
            # One message per connection: SO_REUSEPORT spreads them over both receivers.
            injector = _Injector(inbound, total=120, per_connection=1)
            threads = [threading.Thread(target=injector.worker) for _ in range(SESSIONS)]
            for thread in threads:
                thread.start()
            held = _wait_for_claims_of(process, child)
            os.kill(child, signal.SIGKILL)  # the parent restarts it; injection goes on
            for thread in threads:
                thread.join(timeout=60)
            acked = set(injector.acked)
            delivered = _wait_for_numbers(sink, acked | held, timeout=90)
        finally:
            process.stop()

    assert held, "the receiver held no undelivered message when it was killed"
    assert held <= delivered, f"lost {len(held - delivered)} messages the killed one held"
    assert acked <= delivered, f"lost {len(acked - delivered)} acknowledged messages"
    assert "spool.recovered" in process.log.read_text()


def _wait_for_log(process: MailwrightProcess, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in process.log.read_text():
        assert time.monotonic() < deadline, f"{text!r} never appeared in the server's log"
        time.sleep(0.05)


def _wait_for_claims_of(process: MailwrightProcess, pid: int, timeout: float = 30.0) -> set[int]:
    """Message numbers whose recipients process ``pid`` has claimed, once there are some."""
    database = process.directory / "var" / "spool" / "queue.db"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.closing(sqlite3.connect(database, timeout=5)) as conn:
            rows = conn.execute(
                "SELECT address FROM recipients WHERE state = 1 AND claimed_by LIKE ?",
                (f"{pid}-%",),
            ).fetchall()
        if rows:
            return {int(address[1:].split("@")[0]) for (address,) in rows}
        time.sleep(0.02)
    return set()
