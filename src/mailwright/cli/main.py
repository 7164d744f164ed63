"""The entry point of the ``mailwright`` command (console script and ``python -m``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mailwright import __version__
from mailwright.cli import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    apikey,
    auth,
    dkim,
    dmarc,
    queue,
    send,
    serve,
    spf,
    user,
)
from mailwright.cli import check as check_command
from mailwright.cli import config as config_command
from mailwright.cli import policy as policy_command
from mailwright.cli._common import error
from mailwright.errors import ConfigError, MailwrightError


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: one subcommand per module of this package."""
    parser = argparse.ArgumentParser(
        prog="mailwright", description="A mail transfer agent. See docs/cli.md."
    )
    parser.add_argument("--version", action="version", version=f"mailwright {__version__}")
    parser.add_argument(
        "--config", metavar="FILE", default=None, help="configuration file (also after a command)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (
        serve,
        queue,
        send,
        user,
        config_command,
        dkim,
        auth,
        check_command,
        spf,
        dmarc,
        policy_command,
        apikey,
    ):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (see :mod:`mailwright.cli`)."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except ConfigError as bad:
        error(str(bad))
        return EXIT_USAGE
    except MailwrightError as failure:
        error(str(failure))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (| head); nothing more to say
        return EXIT_FAILED
    return status


if __name__ == "__main__":
    sys.exit(main())
