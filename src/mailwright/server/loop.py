"""Event loops for the server: uvloop when it is installed, asyncio's otherwise."""

from __future__ import annotations

import asyncio


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop, from uvloop when importable (about twice as fast for sockets)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def install_event_loop_policy() -> bool:
    """Make uvloop the default for ``asyncio.run``; False when uvloop is missing."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True
