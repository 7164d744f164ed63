"""End to end under faults: MX lookups over real DNS, outages, hang-ups and a full disk.

mailwright runs as a process; MX records come from a real DNS server on
loopback (tests/dnsserver.py); the next hop is Postfix's smtp-sink. Each test
checks that an accepted message is delivered, bounced or kept, never lost.
"""

from __future__ import annotations

import email
import json
import os
import smtplib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.dnsserver import DnsServer
from tests.peers import MailwrightProcess, SmtpSink, free_port, running

pytestmark = [pytest.mark.integration, pytest.mark.postfix]


def _config(
    inbound: int, nameserver: str, mx_port: int, spool: str = "var/spool", reserve: str = "1M"
) -> str:
    return f"""
[server]
hostname = "mx.mailwright.test"
spool = "{spool}"
min_free_space = "{reserve}"

[dns]
nameservers = ["{nameserver}"]
timeout = 1

[[listener]]
role = "inbound"
address = "127.0.0.1:{inbound}"

[domains]
relay = ["example.test", "nullmx.test", "outage.test"]

[routes]
"sender.test" = "maildir:mail"

[delivery]
port = {mx_port}

[queue]
retry_intervals = ["1s"]
"""


ZONES = {
    "example.test": [("MX", "20 mx2.example.test."), ("MX", "10 mx1.example.test.")],
    "mx1.example.test": [("A", "127.0.0.1")],
    "mx2.example.test": [("A", "127.0.0.2")],
    "nullmx.test": [("MX", "0 .")],
    "outage.test": [("MX", "10 mx1.example.test.")],
}


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer(ZONES) as server:
        yield server


def _send(port: int, recipient: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        message = f"Subject: {subject}\r\nMessage-ID: <{subject}@sender.test>\r\n\r\nhi\r\n"
        client.sendmail("a@sender.test", [recipient], message.encode())


def _events(process: MailwrightProcess) -> list[dict[str, object]]:
    path = process.directory / "var" / "log" / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _wait(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


def test_mx_lookup_picks_the_most_preferred_exchanger(tmp_path: Path, dns: DnsServer) -> None:
    """A relay domain without a route is delivered to its lowest-preference MX host."""
    inbound = free_port()
    with SmtpSink(tmp_path) as sink:
        process = MailwrightProcess(tmp_path, _config(inbound, dns.nameserver, sink.port))
        with running(process, ("127.0.0.1", inbound)):
            _send(inbound, "b@example.test", "mx1")
            [got] = sink.wait_for(1)
            _wait(lambda: any(e["event"] == "delivered" for e in _events(process)))

    assert got.recipients == ("b@example.test",)
    assert dns.queries_for("example.test", "MX")
    [received] = [e for e in _events(process) if e["event"] == "received"]
    [delivered] = [e for e in _events(process) if e["event"] == "delivered"]
    assert delivered["remote_host"] == f"mx1.example.test[127.0.0.1]:{sink.port}"
    assert delivered["queue"] == "mx:example.test"
    assert delivered["queue_id"] == received["queue_id"]
    assert delivered["message_id"] == received["message_id"] == "<mx1@sender.test>"


def test_an_unreachable_exchanger_is_named_in_the_deferral(tmp_path: Path, dns: DnsServer) -> None:
    """When no exchanger answers, the deferred event names the last host tried."""
    inbound = free_port()
    nobody = free_port()
    process = MailwrightProcess(tmp_path, _config(inbound, dns.nameserver, nobody))
    with running(process, ("127.0.0.1", inbound)):
        _send(inbound, "b@example.test", "unreachable")
        _wait(lambda: any(e["event"] == "deferred" for e in _events(process)))

    deferred = next(e for e in _events(process) if e["event"] == "deferred")
    assert deferred["remote_host"] == f"mx2.example.test[127.0.0.2]:{nobody}"
    assert deferred["reply"]["status"] == "4.4.1"  # type: ignore[index]
    assert deferred["queue"] == "mx:example.test"


def test_null_mx_bounces_at_once(tmp_path: Path, dns: DnsServer) -> None:
    """Mail to a domain publishing a null MX (RFC 7505) bounces with 5.1.10, untried."""
    inbound = free_port()
    process = MailwrightProcess(tmp_path, _config(inbound, dns.nameserver, free_port()))
    with running(process, ("127.0.0.1", inbound)):
        _send(inbound, "b@nullmx.test", "nullmx")
        _wait(lambda: list((tmp_path / "mail").glob("**/new/*")))

    [path] = list((tmp_path / "mail").glob("**/new/*"))
    dsn = email.message_from_bytes(path.read_bytes())
    assert dsn.get_content_type() == "multipart/report"
    assert "Status: 5.1.10" in dsn.get_payload()[1].as_string()
    [bounced] = [e for e in _events(process) if e["event"] == "bounced"]
    assert bounced["recipient"] == "b@nullmx.test"


def test_dns_outage_defers_and_delivers_once_dns_is_back(tmp_path: Path, dns: DnsServer) -> None:
    """SERVFAIL for the MX defers the message; after DNS heals it is delivered, not lost."""
    inbound = free_port()
    dns.fail("outage.test", "servfail")
    with SmtpSink(tmp_path) as sink:
        process = MailwrightProcess(tmp_path, _config(inbound, dns.nameserver, sink.port))
        with running(process, ("127.0.0.1", inbound)):
            _send(inbound, "b@outage.test", "outage")
            _wait(lambda: any(e["event"] == "deferred" for e in _events(process)))
            assert sink.messages() == []

            dns.heal("outage.test")
            [got] = sink.wait_for(1, timeout=30)

    assert got.recipients == ("b@outage.test",)
    deferred = [e for e in _events(process) if e["event"] == "deferred"]
    assert deferred[0]["reply"]["status"].startswith("4.")  # type: ignore[index]


def test_peer_that_hangs_up_defers_until_it_behaves(tmp_path: Path, dns: DnsServer) -> None:
    """A next hop that drops the connection at DATA gets the message later, once well."""
    inbound = free_port()
    with SmtpSink(tmp_path, extra=["-q", "DATA"]) as rude:
        process = MailwrightProcess(tmp_path, _config(inbound, dns.nameserver, rude.port))
        with running(process, ("127.0.0.1", inbound)):
            _send(inbound, "b@example.test", "hangup")
            _wait(lambda: any(e["event"] == "deferred" for e in _events(process)))
            rude.stop()
            # A well-behaved sink takes the rude one's port for the retry.
            with SmtpSink(tmp_path, port=rude.port) as polite:
                [got] = polite.wait_for(1, timeout=30)

    assert got.recipients == ("b@example.test",)


def _mount_tmpfs(size: str) -> Path:
    where = Path(tempfile.mkdtemp(prefix="mailwright-full-"))
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        os.rmdir(where)
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.decode().strip()}")
    return where


def test_full_disk_answers_452_and_loses_nothing_accepted(tmp_path: Path, dns: DnsServer) -> None:
    """On a full spool disk DATA gets 452 4.3.1; once space is back, all that got 250 goes out.

    Another file takes part of the disk, as a runaway log would; the spool fills
    the rest for real (no reserve), so SQLite itself reports the full disk. When
    the other file is removed, the restarted server delivers every accepted
    message. A WAL database cannot make progress on a disk with no byte free at
    all (a checkpoint copies the WAL into the database file, which needs room),
    which is what the default reserve of ``min_free_space`` is for; see
    docs/spool.md.
    """
    inbound = free_port()
    disk = _mount_tmpfs("6m")
    try:
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (3584 * 1024))
        with SmtpSink(tmp_path) as sink:
            process = MailwrightProcess(
                tmp_path,
                _config(inbound, dns.nameserver, free_port(), spool=f"{disk}/spool", reserve="0"),
            )
            accepted, refused = [], []
            with running(process, ("127.0.0.1", inbound)):
                body = ("x" * 998 + "\r\n") * 50
                with smtplib.SMTP("127.0.0.1", inbound) as client:
                    for number in range(200):
                        message = f"Subject: full {number}\r\n\r\n{body}".encode()
                        try:
                            client.sendmail("a@sender.test", [f"r{number}@example.test"], message)
                            accepted.append(number)
                        except smtplib.SMTPResponseException as exc:
                            refused.append((exc.smtp_code, exc.smtp_error))
                            break

            assert accepted, "nothing was accepted before the disk filled"
            assert refused
            assert refused[0][0] == 452
            assert refused[0][1].startswith(b"4.3.1")

            # Space comes back; restarted with the next hop reachable, everything goes out.
            filler.unlink()
            config = _config(
                inbound, dns.nameserver, sink.port, spool=f"{disk}/spool", reserve="0"
            )
            process.config.write_text(config)
            with running(process, ("127.0.0.1", inbound)):
                got = sink.wait_for(len(accepted), timeout=30)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
        os.rmdir(disk)

    numbers = sorted(int(m.recipients[0][1:].split("@")[0]) for m in got)
    assert numbers == accepted
