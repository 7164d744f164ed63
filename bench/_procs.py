"""Process plumbing for the benchmark: free ports, readiness probes, stopping, /proc sampling.

Everything here is bounded in time: a probe gives up at its deadline, a stop escalates from
SIGTERM to SIGKILL after a grace period. Only processes this harness started are signalled,
always by their own id (or the id of the process group they lead).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def machine_ticks() -> tuple[int, int]:
    """(steal, total) clock ticks of all CPUs since boot, from /proc/stat ((0, 0) if unreadable).

    Steal is time the hypervisor gave this guest's virtual CPUs to someone else: on a
    shared host it is the clearest sign that a measurement was disturbed.
    """
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0, 0
    values = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return values[7], sum(values)


def steal_share(start: tuple[int, int], end: tuple[int, int]) -> float | None:
    """The share of CPU time stolen between two `machine_ticks()` readings (None if unknown)."""
    total = end[1] - start[1]
    return (end[0] - start[0]) / total if total > 0 else None


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_smtp(port: int, deadline: float, alive: subprocess.Popen[bytes] | None) -> None:
    """Wait until an SMTP server on 127.0.0.1:port sends a 220 greeting, then QUIT politely.

    Raises TimeoutError at the monotonic `deadline`, and RuntimeError when `alive` (the
    process expected to serve the port) exits first.
    """
    while True:
        if alive is not None and alive.poll() is not None:
            raise RuntimeError(f"server process exited with status {alive.returncode}")

        if _greets(port):
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing greeted on {LOOPBACK}:{port}")
        time.sleep(0.05)


def _greets(port: int) -> bool:
    """Connect, expect a 220 greeting and say QUIT; False if any of it fails."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=2.0) as conn:
            if not conn.recv(512).startswith(b"220"):
                return False
            conn.sendall(b"QUIT\r\n")
            with contextlib.suppress(OSError):
                conn.recv(512)
            return True
    except OSError:
        return False


def stop_group(proc: subprocess.Popen[bytes], grace: float) -> int | None:
    """Stop a process started with start_new_session=True, and its process group.

    Sends SIGTERM to the group, waits up to `grace` seconds, then SIGKILLs the group.
    Returns the exit status, or None if even SIGKILL could not be confirmed.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)

    # The leader may be gone while members of its group linger: kill the group either way.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        return proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        return None


def pid_alive(pid: int) -> bool:
    """Tell whether a process id exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@dataclass(frozen=True)
class Usage:
    """Resources used by a process tree: CPU seconds (user + system) and peak memory in MiB.

    `peak_rss_mib` sums the resident sets of all processes of the tree at the sampled
    moment of highest total, so for multi-process servers (Postfix) shared pages (program
    text, libraries) count once per process: an upper bound. `peak_anon_mib` sums only the
    private anonymous pages (heap, stacks), which do not overlap between processes.
    """

    cpu_seconds: float
    peak_rss_mib: float
    peak_anon_mib: float
    processes: int


def _read_stat(pid: int) -> tuple[int, int, int] | None:
    """Return (ppid, own CPU ticks, reaped children's CPU ticks) of a process, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None

    # After the command name: state ppid ... utime(12) stime(13) cutime(14) cstime(15).
    ppid = int(fields[1])
    own = int(fields[11]) + int(fields[12])
    reaped = int(fields[13]) + int(fields[14])
    return ppid, own, reaped


def _read_memory_kib(pid: int) -> tuple[int, int]:
    """Return (resident, resident anonymous) memory of a process in KiB ((0, 0) if gone)."""
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
        resident, shared = int(fields[1]), int(fields[2])
    except (OSError, IndexError, ValueError):
        return 0, 0
    # statm's "shared" is the file-backed and shmem part of the resident set.
    return resident * _PAGE_KIB, (resident - shared) * _PAGE_KIB


class TreeSampler:
    """Samples the CPU time and resident memory of a process and all its descendants.

    A background thread walks /proc every `interval` seconds and keeps the highest total
    RSS seen; `finish()` takes one last sample and returns the totals. CPU time counts
    from `start()`, so start-up work is left out. A sample's CPU time is the
    root's own time, plus what it reaped from exited children (cutime, cstime), plus the
    own and reaped time of every living descendant at the final sample: exact for a tree
    whose processes are reaped by their parents, with no double counting.
    """

    def __init__(self, root_pid: int, interval: float = 0.25) -> None:
        self._root = root_pid
        self._interval = interval
        self._peak_kib = 0
        self._peak_anon_kib = 0
        self._most_processes = 0
        self._baseline_ticks = 0
        self._last: tuple[int, int] = (0, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)

    def start(self) -> None:
        """Take the baseline sample (CPU is counted from here) and sample in the background."""
        self._sample()
        self._baseline_ticks = self._last[0]
        self._thread.start()

    def finish(self) -> Usage:
        """Stop sampling and return the usage since `start()` (the tree must still run)."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._sample()
        ticks, processes = self._last
        return Usage(
            cpu_seconds=(ticks - self._baseline_ticks) / _CLOCK_TICKS,
            peak_rss_mib=self._peak_kib / 1024,
            peak_anon_mib=self._peak_anon_kib / 1024,
            processes=max(processes, self._most_processes),
        )

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def _sample(self) -> None:
        stats: dict[int, tuple[int, int, int]] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                stat = _read_stat(int(entry.name))
                if stat is not None:
                    stats[int(entry.name)] = stat

        if self._root not in stats:
            return
        tree = _descendants(self._root, stats)

        ticks = sum(stats[pid][1] + stats[pid][2] for pid in tree)
        memory = [_read_memory_kib(pid) for pid in tree]
        self._peak_kib = max(self._peak_kib, sum(rss for rss, _anon in memory))
        self._peak_anon_kib = max(self._peak_anon_kib, sum(anon for _rss, anon in memory))
        self._most_processes = max(self._most_processes, len(tree))
        self._last = (ticks, len(tree))


def _descendants(root: int, stats: dict[int, tuple[int, int, int]]) -> list[int]:
    """Return root and every process below it, from a pid -> (ppid, ...) table."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _own, _reaped) in stats.items():
        children.setdefault(ppid, []).append(pid)

    found = [root]
    index = 0
    while index < len(found):
        found.extend(children.get(found[index], []))
        index += 1
    return found
