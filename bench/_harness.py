"""What every end-to-end benchmark run needs around its processes: signals, waits, disks.

Shared by `relay.py` and `dmarc_enforce.py`: signals turned into one orderly unwind, a
bounded wait for a counter read from a log, the filesystem type under a folder (a
spool on tmpfs makes fsync free, so every report prints it), and the command-line
options both give for the mailwright server they start.
"""

from __future__ import annotations

import argparse
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType


@contextmanager
def cleanup_on_signals() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into KeyboardInterrupt, once.

    The first signal unwinds the `with` blocks that stop servers and delete folders; later
    signals are ignored so that they cannot interrupt that cleanup half-way.
    """
    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def interrupt(signum: int, frame: FrameType | None) -> None:
        for name in watched:
            signal.signal(name, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {name: signal.signal(name, interrupt) for name in watched}
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(name, handler)


def settle(count: Callable[[], int], target: int, timeout: float = 5.0) -> int:
    """Wait (bounded) for a log-based counter to reach `target`; return its last value."""
    deadline = time.monotonic() + timeout
    value = count()
    while value < target and time.monotonic() < deadline:
        time.sleep(0.1)
        value = count()
    return value


def filesystem_of(path: Path) -> str:
    """The type of the filesystem holding `path` (spools must be on a real disk to fsync)."""
    best, kind = "", "unknown"
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return kind
    resolved = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) >= 3:
            point = fields[1]
            inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, fields[2]
    return kind


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """`--workdir`, `--mailwright`, `--log-level`, `--grace`, `--server-setting`."""
    parser.add_argument(
        "--workdir", type=Path, default=None, help="parent of the temporary folder (a disk)"
    )
    parser.add_argument(
        "--mailwright",
        default=None,
        help="command that runs the mailwright CLI (default: the venv's mailwright script)",
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="passed to `mailwright serve --log-level` (default: the server's own)",
    )
    parser.add_argument(
        "--grace", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL"
    )
    parser.add_argument(
        "--server-setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a TOML line added to mailwright's [server] table, e.g. 'receivers = 2'",
    )
