"""The DKIM, authentication and DMARC enforcement benchmarks run in their quick mode.

Speed is never asserted here: these tests only check that the scripts still
work against the current API and that their JSON report has the expected
shape, so that a benchmark is not found broken on the day it is needed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _run(script: str, *args: str, timeout: float = 60) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--json"],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    report: dict[str, object] = json.loads(done.stdout)
    return report


def test_dkim_speed_quick_mode_reports_every_case() -> None:
    """Five messages a measurement give a ratio for each sign and verify case."""
    report = _run("dkim_speed.py", "--messages", "5", "--rounds", "1")

    cases = report["cases"]
    assert isinstance(cases, dict)
    assert set(cases) == {"sign rsa-2048", "verify rsa-2048", "sign ed25519", "verify ed25519"}
    assert all("mailwright/dkimpy" in case["ratios"] for case in cases.values())


def test_auth_quick_mode_compares_with_authheaders() -> None:
    """Five messages a measurement, with both evaluators finding SPF, DKIM and DMARC pass."""
    report = _run("auth.py", "--messages", "5", "--rounds", "1", "--no-psl")

    ratios = report["ratios"]
    assert isinstance(ratios, dict)
    assert "mailwright/authheaders" in ratios
    fields = report["fields"]
    assert isinstance(fields, dict)
    assert "dkim=pass" in fields["mailwright"]


@pytest.mark.postfix
def test_dmarc_enforce_quick_mode_checks_both_modes() -> None:
    """One tiny round off then on: all delivered, the kept ones with the expected dmarc=."""
    report = _run("dmarc_enforce.py", "--quick", timeout=240)

    results = report["results"]
    assert isinstance(results, list)
    assert [result["mode"] for result in results] == ["off", "on"]
    assert all(result["status"] == "ok" and not result["problems"] for result in results)
    enforced = results[1]
    assert enforced["dmarc_pass"] > 0
    assert enforced["dmarc_fail"] > 0
    assert report["verdict"] in ("PASS", "MISS")
