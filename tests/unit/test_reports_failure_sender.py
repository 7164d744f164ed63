"""The failure report sender's redaction key: one per spool, private, made once."""

from __future__ import annotations

import stat
from pathlib import Path

from mailwright.reports.failure_sender import FailureReportSender
from mailwright.reports.redaction import Redaction


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
