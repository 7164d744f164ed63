"""``mailwright serve``: run the server in the foreground until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from mailwright.cli import EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE
from mailwright.cli._common import config_options, error, load

if TYPE_CHECKING:
    from mailwright.config import Config


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        parents=[config_options()],
        help="run the server",
        description="Run the mail server in the foreground.",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="lowest level of log records written to stderr (default: INFO)",
    )
    parser.set_defaults(handler=serve)


def serve(args: argparse.Namespace) -> int:
    config = load(args)  # a bad configuration stops here, before anything is opened

    try:
        from mailwright.server.app import serve as serve_app
    except ModuleNotFoundError as missing:
        if missing.name not in ("mailwright.server", "mailwright.server.app"):
            raise
        error("the server is not available in this build (mailwright.server.app is missing)")
        return EXIT_UNAVAILABLE

    from mailwright.errors import ConfigError

    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the usual way to stop it
            _run(serve_app, config)
    except ConfigError as failure:  # a port taken, an unwritable log: named by its key
        error(str(failure))
        return EXIT_FAILED
    return EXIT_OK


def _run(app: Callable[[Config], Coroutine[Any, Any, Any]], config: Config) -> None:
    """Run the app on uvloop when it is installed, else on the default asyncio loop."""
    import asyncio

    try:
        import uvloop
    except ImportError:
        asyncio.run(app(config))
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(app(config))
