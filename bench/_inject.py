"""The SMTP injector of the DMARC enforcement benchmark, run as its own process.

    python bench/_inject.py JOBS PORT [--sessions 32]

Reads the prepared messages (`_dmarc_traffic.write_jobs`), prints `ready` and waits for
one line on standard input; then sends every message to 127.0.0.1:PORT over `--sessions`
concurrent connections, one message per connection, each from the loopback address its
job names (so that SPF can name the sending servers). With PIPELINING offered it needs
four round trips a message: greeting, EHLO, MAIL + RCPT + DATA, then the content with
QUIT. At the end it prints one JSON object: messages accepted, refused (with a sample of
the replies) and failed connections, and its own wall and CPU seconds.

A separate process so that its CPU time can be measured apart from the harness's, and
so that it does not share a GIL with the DNS server the harness runs. uvloop is used
when installed, as `mailwright serve` does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _procs import stop_group

from mailwright.server.loop import new_event_loop

Row = tuple[str, str, str, str, bytes]


class Refused(Exception):
    """The server answered a command with something other than the expected code."""

    def __init__(self, stage: str, code: int, text: str) -> None:
        super().__init__(f"{stage}: {code} {text}")
        self.code = code


async def read_reply(reader: asyncio.StreamReader) -> tuple[int, str, list[bytes]]:
    """One SMTP reply: its code, the text of its last line, and every line."""
    lines = []
    while True:
        line = await reader.readuntil(b"\r\n")
        lines.append(line)
        if line[3:4] != b"-":
            break
    return int(line[:3]), line[4:-2].decode(errors="replace"), lines


async def expect(reader: asyncio.StreamReader, stage: str, code: int) -> list[bytes]:
    got, text, lines = await read_reply(reader)
    if got != code:
        raise Refused(stage, got, text)
    return lines


async def send_one(port: int, row: Row) -> None:
    """Deliver one message over a connection of its own; Refused or OSError when it fails."""
    source, helo, mail_from, recipient, payload = row
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        await expect(reader, "greeting", 220)
        writer.write(f"EHLO {helo}\r\n".encode())
        extensions = await expect(reader, "EHLO", 250)
        envelope = [f"MAIL FROM:<{mail_from}>\r\n".encode(), f"RCPT TO:<{recipient}>\r\n".encode()]
        if any(line[4:14].upper() == b"PIPELINING" for line in extensions[1:]):
            writer.write(b"".join(envelope) + b"DATA\r\n")
            await expect(reader, "MAIL", 250)
            await expect(reader, "RCPT", 250)
            await expect(reader, "DATA", 354)
            writer.write(payload + b"QUIT\r\n")
            await expect(reader, "end of data", 250)
        else:
            for command, stage in ((envelope[0], "MAIL"), (envelope[1], "RCPT")):
                writer.write(command)
                await expect(reader, stage, 250)
            writer.write(b"DATA\r\n")
            await expect(reader, "DATA", 354)
            writer.write(payload)
            await expect(reader, "end of data", 250)
            writer.write(b"QUIT\r\n")
        await read_reply(reader)
    finally:
        writer.close()


async def inject(port: int, rows: list[Row], sessions: int) -> dict[str, object]:
    """Send every row over `sessions` concurrent workers; the summary for the harness."""
    accepted = 0
    refused: dict[str, int] = {}
    failed: dict[str, int] = {}
    samples: list[str] = []
    pending = iter(rows)

    async def worker() -> None:
        nonlocal accepted
        for row in pending:
            try:
                await send_one(port, row)
            except Refused as error:
                key = str(error.code)
                refused[key] = refused.get(key, 0) + 1
                if len(samples) < 5:
                    samples.append(f"<{row[3]}> {error}")
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                key = type(error).__name__
                failed[key] = failed.get(key, 0) + 1
                if len(samples) < 5:
                    samples.append(f"<{row[3]}> {key}: {error}")
            else:
                accepted += 1

    cpu = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(sessions, len(rows)))))
    return {
        "sent": len(rows),
        "accepted": accepted,
        "refused": refused,
        "failed": failed,
        "samples": samples,
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send prepared messages over SMTP.")
    parser.add_argument("jobs", type=Path, help="the file written by write_jobs")
    parser.add_argument("port", type=int, help="the SMTP server's port on 127.0.0.1")
    parser.add_argument("--sessions", type=int, default=32, help="concurrent connections")
    args = parser.parse_args(argv)

    rows: list[Row] = pickle.loads(args.jobs.read_bytes())
    print("ready", flush=True)
    if not sys.stdin.readline():
        return 1  # the harness went away before the start

    loop = new_event_loop()
    try:
        summary = loop.run_until_complete(inject(args.port, rows, args.sessions))
    finally:
        loop.close()
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())


# -- the harness's side ------------------------------------------------------------------


class Injector:
    """The injector process as the harness drives it: started, ready, released, summed up.

    Entering starts `_inject.py` in its own session and waits (at most `ready_timeout`
    seconds) until it has read its jobs; `go()` releases it; `result()` reads its summary
    once it has exited. Leaving stops it, whatever happened. Its standard error goes to
    `log`.
    """

    def __init__(
        self, jobs: Path, port: int, sessions: int, log: Path, ready_timeout: float = 120.0
    ) -> None:
        self._command = [
            sys.executable,
            str(Path(__file__).resolve()),
            str(jobs),
            str(port),
            "--sessions",
            str(sessions),
        ]
        self._log = log
        self._ready_timeout = ready_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def __enter__(self) -> Injector:
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                self._command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        try:
            assert self._proc.stdout is not None
            ready, _, _ = select.select([self._proc.stdout], [], [], self._ready_timeout)
            line = self._proc.stdout.readline() if ready else b""
            if line.strip() != b"ready":
                raise RuntimeError(f"the injector did not get ready: {self.tail()}")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def go(self) -> None:
        """Let the injector start sending."""
        assert self._proc is not None
        assert self._proc.stdin is not None
        self._proc.stdin.write(b"go\n")
        self._proc.stdin.flush()

    def poll(self) -> int | None:
        """The injector's exit status, or None while it runs."""
        assert self._proc is not None
        return self._proc.poll()

    def result(self, timeout: float = 30.0) -> dict[str, Any] | None:
        """The summary the injector printed at its end (None if it printed none)."""
        assert self._proc is not None
        assert self._proc.stdout is not None
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        lines = self._proc.stdout.read().splitlines()
        try:
            summary = json.loads(lines[-1]) if lines else None
        except ValueError:
            return None
        return summary if isinstance(summary, dict) else None

    def tail(self, limit: int = 400) -> str:
        """The end of the injector's standard error, on one line."""
        try:
            text = self._log.read_text(errors="replace").strip()
        except OSError:
            return "(no output)"
        joined = " | ".join(text.splitlines()[-3:]) or "(no output)"
        return joined if len(joined) <= limit else "..." + joined[-limit:]

    def close(self) -> None:
        if self._proc is not None:
            for stream in (self._proc.stdin, self._proc.stdout):
                if stream is not None:
                    stream.close()
            stop_group(self._proc, grace=2.0)
            self._proc = None
