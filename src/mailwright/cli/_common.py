"""What every command shares: finding and loading the configuration, output helpers."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mailwright.config import DEFAULT_CONFIG_NAME, Config, load_config


def config_options() -> argparse.ArgumentParser:
    """A parent parser adding ``--config`` to a subcommand.

    The default is SUPPRESS so a ``--config`` given before the subcommand
    (``mailwright --config F queue``) is not overwritten by the subcommand's.
    """
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help=f"configuration file (default: ./{DEFAULT_CONFIG_NAME} if present, "
        "else the embedded defaults)",
    )
    return parent


def json_option() -> argparse.ArgumentParser:
    """A parent parser adding ``--json`` (machine-readable output)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts"
    )
    return parent


def config_path(args: argparse.Namespace) -> Path | None:
    """The file named by ``--config``, else ./mailwright.toml if it exists, else None."""
    given: str | None = getattr(args, "config", None)
    if given is not None:
        return Path(given)
    default = Path(DEFAULT_CONFIG_NAME)
    return default if default.is_file() else None


def load(args: argparse.Namespace) -> Config:
    """Load the configuration the command line asks for (raises ConfigError)."""
    return load_config(config_path(args))


def wants_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def error(message: str) -> None:
    """Print ``mailwright: message`` on stderr."""
    print(f"mailwright: {message}", file=sys.stderr)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns aligned for people: text to the left, numbers to the right."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    numeric = [
        bool(rows) and all(isinstance(row[index], int | float) for row in rows)
        for index in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(row) for row in cells)])


def format_age(since: float | None, now: float | None = None) -> str:
    """``3d4h``, ``2h5m``, ``40s``: how long ago ``since`` (a Unix time) was."""
    if since is None:
        return "-"
    seconds = max(0, int((now if now is not None else time.time()) - since))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


def format_due(when: float | None, now: float | None = None) -> str:
    """``now``, ``in 4m0s`` or ``-``: when a recipient is next tried."""
    if when is None:
        return "-"
    current = now if now is not None else time.time()
    if when <= current:
        return "now"
    return "in " + format_age(current, when)


def format_size(size: int | None) -> str:
    """``10K``, ``2.5M``: a byte count for people."""
    if size is None:
        return "-"
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size >= scale:
            value = size / scale
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return f"{size}B"
