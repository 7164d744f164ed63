"""Fixtures shared by mailwright's unit and integration tests.

Each block below belongs to one area and says which; add yours as a new block.
Fixtures used by one test file only belong in that file.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# -- DNS: a real authoritative server on loopback (tests/dnsserver.py) ------------------
from tests.dnsserver import dns_server  # noqa: F401  (re-exported as a fixture)

# -- the mailwright command ------------------------------------------------------

#: The installed console script, next to the interpreter running the tests.
MAILWRIGHT_SCRIPT = Path(sys.executable).with_name("mailwright")

RunCli = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def run_cli(tmp_path: Path) -> RunCli:
    """Run the real ``mailwright`` console script in ``tmp_path``; returns the finished process."""

    def run(
        *args: str, stdin: str = "", cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(MAILWRIGHT_SCRIPT), *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=cwd or tmp_path,
            timeout=60,
            check=False,
        )

    return run
