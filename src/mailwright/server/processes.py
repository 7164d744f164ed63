"""Child processes: the receivers after the first, or a delivery process, supervised.

Python runs one core per process. Measured on the 2-core benchmark machine
(docs/benchmarks.md), a relayed message costs about 1.3 ms of CPU in all, so
one process cannot keep both cores busy. The server therefore runs
``[server] receivers`` processes (default: one per CPU) that accept SMTP on
the same listening ports (``SO_REUSEPORT``: the kernel spreads connections
over them) and each deliver what they receive, from memory; the server
itself is the first, and it alone serves the control socket. With
``[server] delivery_process = true`` one more child runs only the delivery
agent, and the receivers only store.

SQLite in WAL mode serialises the writers of all processes; each spool holds
an owner lock, so the recipients claimed by a child that dies go back to the
queue when the next child opens the spool. Children are started with the
``spawn`` method (no forked event loop or threads), restarted after
:data:`RESTART_DELAY` when they exit unexpectedly, and stop by themselves when
they notice that the server that started them is gone (after a SIGKILL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
from multiprocessing.process import BaseProcess
from typing import Literal

from mailwright.config import Config

logger = logging.getLogger("mailwright.server")

RESTART_DELAY = 2.0

ChildRole = Literal["delivery", "receiver"]


def _child_main(config: Config, role: ChildRole, log_level: int, parent: int) -> None:
    """Entry point of a child process."""
    import asyncio as child_asyncio

    from mailwright.server.app import serve_child
    from mailwright.server.loop import new_event_loop

    logging.basicConfig(
        level=log_level, format=f"%(asctime)s %(levelname)s %(name)s [{role}] %(message)s"
    )
    with child_asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(serve_child(config, role, parent))


class ChildSupervisor:
    """Starts one child process, restarts it when it dies, stops it on request."""

    def __init__(self, config: Config, role: ChildRole) -> None:
        self.config = config
        self.role = role
        self._context = multiprocessing.get_context("spawn")
        self._process: BaseProcess | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        """The child's process id, None before it starts."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the child and the task that watches it."""
        self._spawn()
        self._task = asyncio.create_task(self._watch(), name=f"{self.role}-supervisor")

    def _spawn(self) -> None:
        level = logging.getLogger().getEffectiveLevel()
        self._process = self._context.Process(
            target=_child_main,
            args=(self.config, self.role, level, os.getpid()),
            name=f"mailwright-{self.role}",
            daemon=True,
        )
        self._process.start()
        logger.info("server.child_started role=%s pid=%s", self.role, self._process.pid)

    async def _watch(self) -> None:
        while not self._stopping:
            await asyncio.sleep(0.5)
            process = self._process
            if process is None or process.is_alive() or self._stopping:
                continue
            logger.error(
                "server.child_died role=%s pid=%s exitcode=%s",
                self.role, process.pid, process.exitcode,
            )  # fmt: skip
            await asyncio.sleep(RESTART_DELAY)
            if not self._stopping:
                self.restarts += 1
                self._spawn()

    def signal(self, signum: int) -> None:
        """Pass a signal on to the child (SIGHUP: reload), if it runs."""
        process = self._process
        if process is not None and process.pid is not None and process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signum)

    async def stop(self, grace: float = 15.0) -> None:
        """Ask the child to finish (SIGTERM), kill it after ``grace`` seconds."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        process = self._process
        if process is None or not process.is_alive():
            return
        process.terminate()
        await asyncio.to_thread(process.join, grace)
        if process.is_alive():
            logger.warning("server.child_killed role=%s pid=%s", self.role, process.pid)
            process.kill()
            await asyncio.to_thread(process.join, 5)
