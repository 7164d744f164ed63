"""The failure report sender as the server builds it: its redaction key and its limits."""

from __future__ import annotations

import stat
from pathlib import Path

from mailwright.config import load_config
from mailwright.dns.queries import CachingResolver
from mailwright.dns.resolver import make_resolver
from mailwright.reports.failure_sender import FailureReportSender
from mailwright.reports.redaction import Redaction
from mailwright.server.policies import ServerPolicies


def test_the_key_is_made_once_private_and_then_reused(tmp_path: Path) -> None:
    """The first call makes 32 random octets with mode 0600; later calls read them back."""
    path = tmp_path / "spool" / "dmarc-redaction.key"
    first = FailureReportSender.secret_at(path)
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert FailureReportSender.secret_at(path) == first


def test_one_key_gives_the_same_tokens_in_every_process(tmp_path: Path) -> None:
    """Two redactions from the same key file (two processes) hide a local part alike."""
    path = tmp_path / "dmarc-redaction.key"
    one = Redaction(secret=FailureReportSender.secret_at(path))
    other = Redaction(secret=FailureReportSender.secret_at(path))
    assert one.token("ceo") == other.token("ceo")
    assert one.token("ceo") != Redaction().token("ceo")


def test_each_receiver_gets_its_share_of_the_limits(tmp_path: Path) -> None:
    """With two receivers each process allows 5 reports per domain and 250 in all."""
    config = load_config(_config_file(tmp_path, receivers=2))
    policies = ServerPolicies(config, CachingResolver(make_resolver(["127.0.0.1"])))
    sender = policies.failures
    assert isinstance(sender, FailureReportSender)
    assert (sender.limiter.per_domain, sender.limiter.total) == (5, 250)
    assert (tmp_path / "var/spool/dmarc-redaction.key").is_file()


def _config_file(folder: Path, *, receivers: int) -> Path:
    path = folder / "mailwright.toml"
    path.write_text(
        f"""
[server]
hostname = "mx.example.test"
receivers = {receivers}

[dmarc]
enforce = true
failure_reports = true
report_from = "dmarc@example.test"
"""
    )
    return path
