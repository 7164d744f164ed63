"""Headless Chromium for page tests: Debian's chromium driven by Playwright, and a live server.

``browser`` is a pytest fixture (import it into a test module) giving a
Playwright :class:`~playwright.async_api.Browser` on ``/usr/bin/chromium``; it
skips the test when Chromium is not installed, unless
``MAILWRIGHT_REQUIRE_SERVICES=1`` (CI), where a missing browser fails instead.
Playwright's own browser downloads are never used: the machine has no route to
them, and Debian's build is the one the issue names.

:func:`serve_app` runs an ASGI app under uvicorn on a random loopback port for
as long as the ``async with`` lasts, so the browser talks to a real socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Browser, async_playwright

CHROMIUM = Path("/usr/bin/chromium")

#: Headless, no sandbox (tests run as root), and no traffic of Chromium's own.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

#: A phone's viewport, CSS pixels (an iPhone SE's width).
PHONE = {"width": 375, "height": 667}


def require_chromium() -> Path:
    """Chromium's path; skips the test without it, or fails under MAILWRIGHT_REQUIRE_SERVICES=1."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("MAILWRIGHT_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")


@contextlib.asynccontextmanager
async def launch_chromium() -> AsyncIterator[Browser]:
    """A headless Chromium for the length of the ``async with``; closed even on failure."""
    executable = require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(executable), args=list(CHROMIUM_ARGS), timeout=30_000
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium for one test."""
    async with launch_chromium() as launched:
        yield launched


class _QuietServer(uvicorn.Server):
    """uvicorn without signal handlers: the test process keeps its own."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@contextlib.asynccontextmanager
async def serve_app(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app on 127.0.0.1 at a random port; yields its base URL.

    The socket is bound and listening before uvicorn starts, so a client may
    connect at once: the kernel holds the connection until uvicorn accepts it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=2,
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
