"""``mailwright dkim keygen|sign|verify`` as the real console script, against a real DNS server.

The record ``keygen`` prints is published on a loopback DNS server exactly as
printed (its strings), a message is signed with ``sign`` and checked both by
``verify`` and by dkimpy, the oracle, which reads the same record.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import dkim
import pytest
from tests.conftest import MAILWRIGHT_SCRIPT, RunCli
from tests.dnsserver import DnsServer

pytestmark = pytest.mark.integration

MESSAGE = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: bob@example.org\r\n"
    b"Subject: quarterly figures\r\n"
    b"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
    b"Message-ID: <figures@example.test>\r\n"
    b"List-Unsubscribe: <https://example.test/u/1>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"\r\n"
    b"Revenue went up.\r\n"
)


def run_bytes(cwd: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """The console script with byte input and output (no newline translation)."""
    return subprocess.run(
        [str(MAILWRIGHT_SCRIPT), *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def keygen(run_cli: RunCli, *args: str) -> dict[str, object]:
    result = run_cli("dkim", "keygen", "--json", *args)
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


def publish(server: DnsServer, key: dict[str, object]) -> None:
    strings = key["strings"]
    assert isinstance(strings, list)
    server.add(str(key["name"]), "TXT", strings)


def dkimpy_verifies(message: bytes, server: DnsServer, key: dict[str, object]) -> bool:
    record = "".join(str(piece) for piece in key["strings"]).encode()  # type: ignore[attr-defined]

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        return record if name.rstrip(b".") == str(key["name"]).encode() else b""

    return bool(dkim.verify(message, dnsfunc=lookup))


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_keygen_sign_verify_round_trip(
    run_cli: RunCli,
    tmp_path: Path,
    dns_server: Callable[..., DnsServer],
    algorithm: str,
) -> None:
    key = keygen(run_cli, "--domain", "example.test", "--selector", "s1", "--algorithm", algorithm)
    key_file = tmp_path / "example.test.s1.key"
    assert key["key_file"] == "example.test.s1.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert all(len(piece) <= 255 for piece in key["strings"])  # type: ignore[attr-defined]
    assert key["algorithm"] == algorithm
    server = dns_server()
    publish(server, key)

    (tmp_path / "m.eml").write_bytes(MESSAGE)
    signed = run_bytes(
        tmp_path, "dkim", "sign", "--domain", "example.test", "--selector", "s1",
        "--key", str(key_file), "m.eml",
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    assert signed.stdout.startswith(b"DKIM-Signature:")
    assert signed.stdout.endswith(MESSAGE)
    assert dkimpy_verifies(signed.stdout, server, key)

    header = re.sub(r"\s+", "", signed.stdout[: -len(MESSAGE)].decode()).lower()
    assert "list-unsubscribe:list-unsubscribe-post" in header

    verified = run_bytes(
        tmp_path, "dkim", "verify", "--nameserver", server.nameserver, "--json", "-",
        stdin=signed.stdout,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    [signature] = json.loads(verified.stdout)["signatures"]
    assert signature["result"] == "pass"
    assert (signature["domain"], signature["selector"]) == ("example.test", "s1")
    assert signature["algorithm"] == f"{algorithm}-sha256"


def test_verify_reports_each_signature_and_fails_when_one_fails(
    run_cli: RunCli, tmp_path: Path, dns_server: Callable[..., DnsServer]
) -> None:
    good = keygen(run_cli, "--domain", "example.test", "--selector", "good", "--algorithm=ed25519")
    keygen(run_cli, "--domain", "example.test", "--selector", "gone", "--bits", "1024")
    server = dns_server()
    publish(server, good)  # "gone" is never published

    (tmp_path / "m.eml").write_bytes(MESSAGE)
    once = run_bytes(
        tmp_path, "dkim", "sign", "--domain", "example.test", "--selector", "good",
        "--key", "example.test.good.key", "m.eml",
    ).stdout  # fmt: skip
    (tmp_path / "once.eml").write_bytes(once)
    twice = run_bytes(
        tmp_path, "dkim", "sign", "--domain", "example.test", "--selector", "gone",
        "--key", "example.test.gone.key", "once.eml",
    ).stdout  # fmt: skip
    (tmp_path / "twice.eml").write_bytes(twice)

    text = run_cli("dkim", "verify", "--nameserver", server.nameserver, "twice.eml")
    assert text.returncode == 1
    lines = text.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("permerror: d=example.test s=gone a=rsa-sha256")
    assert "does not exist" in lines[0]
    assert lines[1].startswith("pass: d=example.test s=good a=ed25519-sha256")

    tampered = once.replace(b"Revenue went up.", b"Revenue went down.")
    (tmp_path / "tampered.eml").write_bytes(tampered)
    result = run_cli("dkim", "verify", "--nameserver", server.nameserver, "--json", "tampered.eml")
    assert result.returncode == 1
    [signature] = json.loads(result.stdout)["signatures"]
    assert signature["result"] == "fail"
    assert "body hash" in signature["reason"]


def test_verify_without_signature_exits_1(
    run_cli: RunCli, tmp_path: Path, dns_server: Callable[..., DnsServer]
) -> None:
    (tmp_path / "m.eml").write_bytes(MESSAGE)
    server = dns_server()
    result = run_cli("dkim", "verify", "--nameserver", server.nameserver, "m.eml")
    assert result.returncode == 1
    assert result.stdout.strip() == "no DKIM-Signature field"
    assert server.queries == []


def test_sign_keeps_lf_line_ends(run_cli: RunCli, tmp_path: Path) -> None:
    keygen(run_cli, "--domain", "example.test", "--selector", "s1", "--algorithm", "ed25519")
    lf_message = MESSAGE.replace(b"\r\n", b"\n")
    (tmp_path / "m.eml").write_bytes(lf_message)
    signed = run_bytes(
        tmp_path, "dkim", "sign", "--domain", "example.test", "--selector", "s1",
        "--key", "example.test.s1.key", "m.eml",
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    assert b"\r" not in signed.stdout
    assert signed.stdout.endswith(lf_message)

    as_json = run_cli(
        "dkim", "sign", "--domain", "example.test", "--selector", "s1",
        "--key", "example.test.s1.key", "--json", "m.eml",
    )  # fmt: skip
    data = json.loads(as_json.stdout)
    assert data["signature"].startswith("DKIM-Signature: v=1; a=ed25519-sha256;")
    assert data["headers"][:2] == ["from", "from"]  # From over-signed
    assert "list-unsubscribe-post" in data["headers"]


def test_keygen_never_overwrites_and_checks_its_input(run_cli: RunCli, tmp_path: Path) -> None:
    existing = tmp_path / "taken.key"
    existing.write_text("precious")
    result = run_cli(
        "dkim", "keygen", "--domain", "example.test", "--selector", "s", "--output", "taken.key"
    )
    assert result.returncode == 1
    assert "exists" in result.stderr
    assert existing.read_text() == "precious"

    args = ("dkim", "keygen", "--domain", "example.test", "--selector", "s")
    small = run_cli(*args, "--bits", "512")
    assert small.returncode == 1
    assert "RFC 8301" in small.stderr
    bad = run_cli("dkim", "keygen", "--domain", "exa mple.test", "--selector", "s")
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["taken.key"]


def test_sign_with_a_broken_key_or_missing_file_says_why(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "m.eml").write_bytes(MESSAGE)
    (tmp_path / "bad.key").write_text("-- not a key --")
    args = ("dkim", "sign", "--domain", "example.test", "--selector", "s")
    broken = run_cli(*args, "--key", "bad.key", "m.eml")
    assert broken.returncode == 1
    assert broken.stderr.startswith("mailwright: bad.key: private key is neither PEM nor base64")
    missing = run_cli(*args, "--key", "bad.key", "absent.eml")
    assert missing.returncode == 1
    assert "cannot read absent.eml" in missing.stderr
    assert "Traceback" not in broken.stderr + missing.stderr
