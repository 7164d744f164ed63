"""Postfix's smtp-sink on a free loopback port, with its message counter read from a file.

`smtp-sink -c` writes a running counter record (`\\rsess=S quit=Q mesg=M`) after every
session end, QUIT and end of data, flushed at once. Its standard output goes to a file in
the run folder, and `count()` reads only the file's tail: polling a few hundred bytes every
few milliseconds costs the measured systems far less CPU than waking on every record.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from types import TracebackType

from _procs import LOOPBACK, free_port, stop_group, wait_for_smtp

SMTP_SINK = "/usr/sbin/smtp-sink"
_MESSAGES = re.compile(rb"mesg=(\d+)")
_TAIL = 256


class Sink:
    """An smtp-sink that accepts and discards mail on 127.0.0.1, counting messages.

    With `dump`, smtp-sink appends every message it receives to that file instead of
    discarding it (its `-D` format: a few X- fields from the sink, then the message, with
    LF line ends), so that a run can check what arrived, at some CPU cost to the sink.

    Use as a context manager: entering starts it and waits for its greeting (RuntimeError
    or TimeoutError if it does not come), leaving stops it whatever happened.
    """

    def __init__(
        self, folder: Path, startup_timeout: float = 10.0, dump: Path | None = None
    ) -> None:
        self.port = free_port()
        self.dump = dump
        self._folder = folder
        self._startup_timeout = startup_timeout
        self._counter_path = folder / "smtp-sink.out"
        self._proc: subprocess.Popen[bytes] | None = None
        self._counter_fd: int | None = None

    def __enter__(self) -> Sink:
        command = [SMTP_SINK, "-c"]
        if os.geteuid() == 0:
            # smtp-sink refuses to run as root without a user to switch to.
            command += ["-u", "nobody"]
        if self.dump is not None:
            # Every message is appended to one file (smtp-sink -D); it runs as nobody.
            self.dump.parent.mkdir(parents=True, exist_ok=True)
            self.dump.parent.chmod(0o777)
            command += ["-D", str(self.dump)]
        command += [f"{LOOPBACK}:{self.port}", "1024"]

        with open(self._counter_path, "wb") as out:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for_smtp(self.port, time.monotonic() + self._startup_timeout, self._proc)
            self._counter_fd = os.open(self._counter_path, os.O_RDONLY)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The sink's process id while it runs."""
        return None if self._proc is None else self._proc.pid

    def count(self) -> int:
        """Return how many messages the sink has received so far (never more than it has).

        The last record of the tail may be cut mid-write; a cut number only reads smaller,
        and the record before it is complete, so the maximum is a safe lower bound.
        """
        if self._counter_fd is None:
            return 0
        size = os.fstat(self._counter_fd).st_size
        tail = os.pread(self._counter_fd, _TAIL, max(0, size - _TAIL))
        return max((int(m) for m in _MESSAGES.findall(tail)), default=0)

    def close(self) -> None:
        """Stop smtp-sink (SIGTERM, then SIGKILL) and close the counter file."""
        if self._counter_fd is not None:
            os.close(self._counter_fd)
            self._counter_fd = None
        if self._proc is not None:
            stop_group(self._proc, grace=2.0)
            self._proc = None
