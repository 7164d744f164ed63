"""Loading the fuzz targets of ``fuzz/`` in tests, where Hypothesis drives them.

``fuzz/`` is not a package: its targets are scripts run by atheris. Tests
import one with :func:`load_target` and call its ``check`` on Hypothesis
inputs, so every target runs in CI.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

FUZZ_DIR = Path(__file__).resolve().parents[1] / "fuzz"


def load_target(name: str) -> ModuleType:
    """Import ``fuzz/NAME.py`` (with ``fuzz/`` on the path, for its ``_harness``)."""
    if str(FUZZ_DIR) not in sys.path:
        sys.path.insert(0, str(FUZZ_DIR))
    module = importlib.import_module(name)
    assert callable(module.check), f"fuzz/{name}.py defines no check()"
    return module
