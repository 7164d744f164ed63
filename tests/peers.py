"""Real peers for integration tests: Postfix's smtp-sink and a mailwright server process.

Both run as separate processes on loopback, so the tests speak the real protocol
to real programs. Every helper bounds its waits in time and cleans up its process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    """Block until ``host:port`` accepts a TCP connection, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port}") from None
            time.sleep(0.05)


def listening_sockets(port: int) -> int:
    """How many TCP sockets listen on ``port`` (IPv4), from /proc/net/tcp.

    With ``receivers > 1`` each receiving process has a socket of its own on
    the port (SO_REUSEPORT), so this counts the processes ready to serve.
    """
    suffix = f":{port:04X}"
    count = 0
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[1].endswith(suffix) and fields[3] == "0A":  # 0A: LISTEN
                count += 1
    return count


def wait_for_listeners(port: int, count: int, timeout: float = 15.0) -> None:
    """Wait until ``count`` sockets listen on ``port``; TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while (found := listening_sockets(port)) < count:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{found} of {count} sockets listen on port {port}")
        time.sleep(0.05)


@dataclass(frozen=True)
class SinkMessage:
    """One transaction that smtp-sink dumped: envelope and content."""

    sender: str
    recipients: tuple[str, ...]
    content: bytes


class SmtpSink:
    """Postfix's ``smtp-sink`` on a free loopback port, dumping each message to a file.

    ``extra`` adds smtp-sink flags, for instance ``["-L"]`` for LMTP or
    ``["-f", "RCPT"]`` to refuse recipients with 5xx.
    """

    def __init__(
        self,
        directory: Path,
        *,
        extra: list[str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        # smtp-sink drops root privileges to "nobody", who cannot enter pytest's
        # private tmp_path: the dump folder lives in a world-writable temp folder.
        del directory
        self.dump = Path(tempfile.mkdtemp(prefix="mailwright-sink-"))
        os.chmod(self.dump, 0o777)
        self.extra = extra or []
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> SmtpSink:
        """Start smtp-sink and wait until it listens."""
        args = [SMTP_SINK]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        args += ["-d", f"{self.dump}/%H%M%S.", *self.extra, f"{self.host}:{self.port}", "256"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop smtp-sink and remove its dump folder."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
            self.process = None
        shutil.rmtree(self.dump, ignore_errors=True)

    def messages(self) -> list[SinkMessage]:
        """Every transaction dumped so far, parsed from smtp-sink's dump files."""
        found = []
        for path in sorted(self.dump.iterdir()):
            with contextlib.suppress(OSError):
                message = _parse_dump(path.read_bytes())
                if message.recipients:  # a file smtp-sink is still writing has none yet
                    found.append(message)
        return found

    def wait_for(self, count: int, timeout: float = 30.0) -> list[SinkMessage]:
        """Wait until at least ``count`` messages arrived; return them all."""
        deadline = time.monotonic() + timeout
        while True:
            if len(list(self.dump.iterdir())) >= count:
                time.sleep(0.1)  # let smtp-sink finish writing the last file
                return self.messages()
            if time.monotonic() > deadline:
                have = len(list(self.dump.iterdir()))
                raise TimeoutError(f"smtp-sink got {have} of {count} messages")
            time.sleep(0.05)

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _parse_dump(data: bytes) -> SinkMessage:
    """Split smtp-sink's X-Mail-Args / X-Rcpt-Args prologue from the content."""
    sender = ""
    recipients: list[str] = []
    lines = data.split(b"\n")
    index = 0
    for index, line in enumerate(lines):  # noqa: B007 - index is used after the loop
        if line.startswith(b"X-Mail-Args: "):
            sender = line[13:].split(b" ")[0].decode().strip("<>")
        elif line.startswith(b"X-Rcpt-Args: "):
            recipients.append(line[13:].split(b" ")[0].decode().strip("<>"))
        elif line.startswith((b"X-Client-", b"X-Helo-Args")):
            continue
        else:
            break
    # smtp-sink then adds its own Received header (three lines) before the content
    body = b"\n".join(lines[index:])
    if body.startswith(b"Received: from ") and b"(smtp-sink)" in body[:300]:
        body = body.split(b"\n", 3)[3]
    # ... and ends the dump with one empty line of its own.
    if body.endswith(b"\n\n"):
        body = body[:-1]
    return SinkMessage(sender, tuple(recipients), body)


class MailwrightProcess:
    """``mailwright serve`` as a child process, with its config written to ``directory``."""

    def __init__(self, directory: Path, config_text: str) -> None:
        self.directory = directory
        self.config = directory / "mailwright.toml"
        if "[http]" not in config_text:  # its own port: servers of one test run side by side
            config_text += f'\n[http]\naddress = "127.0.0.1:{free_port()}"\n'
        self.config.write_text(config_text)
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / "serve.log"

    def command(self, *args: str) -> list[str]:
        """A ``mailwright`` command line using this server's config."""
        return [sys.executable, "-m", "mailwright", *args, "--config", str(self.config)]

    def start(self, wait: tuple[str, int] | None = None) -> MailwrightProcess:
        """Start the server; with ``wait``, block until that address accepts."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command("serve"),
                cwd=self.directory,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        if wait is not None:
            try:
                wait_for_port(*wait)
            except TimeoutError:
                self.stop()
                raise TimeoutError(self.log.read_text()) from None
        return self

    def kill9(self) -> None:
        """Kill the server at once, as a crash would (SIGKILL)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> int | None:
        """Stop the server gracefully (SIGTERM), killing it if it does not exit."""
        if self.process is None:
            return None
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(timeout=5)
        self.process = None
        return code

    def run(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run another ``mailwright`` command against this server's config."""
        return subprocess.run(
            self.command(*args),
            cwd=self.directory,
            input=stdin,
            capture_output=True,
            timeout=60,
            check=False,
        )

    def __enter__(self) -> MailwrightProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(process: MailwrightProcess, wait: tuple[str, int]) -> Iterator[MailwrightProcess]:
    """Run ``process`` for the duration of a ``with`` block."""
    process.start(wait)
    try:
        yield process
    finally:
        process.stop()
