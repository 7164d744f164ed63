"""What every fuzz target shares: running its ``check`` under atheris.

Each ``fuzz/fuzz_*.py`` defines ``check(data: bytes)``, which raises only
AssertionError for a broken invariant, and ends with::

    if __name__ == "__main__":
        run(check)

Run one with ``python fuzz/fuzz_dkim.py -max_total_time=600`` after ``pip
install atheris`` (not a dependency). The test suite loads the same targets
through ``tests/fuzzing.py`` and feeds them from Hypothesis, so they run in
CI without atheris.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def run(check: Callable[[bytes], None], argv: list[str] | None = None) -> None:
    """Fuzz ``check`` with atheris, instrumenting every module imported so far."""
    atheris = importlib.import_module("atheris")  # optional: only fuzzing runs need it

    atheris.instrument_all()
    atheris.Setup(sys.argv if argv is None else argv, check)
    atheris.Fuzz()
