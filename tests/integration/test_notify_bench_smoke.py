"""The notification routing benchmark runs in its quick mode on SQLite.

Speed is never asserted: the test checks that ``bench/notify_route.py`` still
works against the notification layer's current API and that its JSON report
has the shape the docs are written from. The loaded population is cached in
the test's own folder, not in ``bench/.cache``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_notify_route_quick_mode_reports_routing_and_digests(tmp_path: Path) -> None:
    """10k recipients and 20k items: rates, ratios and a digest split for SQLite only."""
    done = subprocess.run(
        [sys.executable, str(BENCH / "notify_route.py"), "--quick", "--only", "sqlite",
         "--json", "--cache", str(tmp_path)],
        capture_output=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    report = json.loads(done.stdout)

    assert report["benchmark"] == "notify_route"
    assert report["recipients"] == 10_000
    assert list(report["backends"]) == ["sqlite"]
    sqlite = report["backends"]["sqlite"]
    assert sqlite["population"]["recipients"] == 10_000
    assert sqlite["population"]["consent_entries"] > 0

    routing = sqlite["routing"]
    for name in ("decision", "notify", "bare_lookup"):
        assert routing[name]["count"] > 0
        assert routing[name]["rate"] > 0
    assert set(routing["ratios"]) == {
        "decision/bare_lookup", "notify/bare_lookup", "decision/target", "notify/target",
    }  # fmt: skip
    assert routing["notify"]["emails_handed_over"] + routing["notify"]["texts_handed_over"] > 0
    assert any(action.endswith(" send") for action in routing["decision"]["actions"])

    digest = sqlite["digest"]
    assert digest["items"] == 20_000
    assert digest["windows"] == 1_000
    assert digest["store_share"] + digest["render_share"] == pytest.approx(1.0, abs=0.002)
    assert digest["bound_by"] in ("rendering", "store")
