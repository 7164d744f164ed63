"""End to end: ``mailwright serve`` as a process between real SMTP clients and smtp-sink.

Mail goes in over SMTP (smtplib, aiosmtplib), through the spool and the delivery
agent, and out to Postfix's smtp-sink, which dumps every transaction to a file the
tests read back. Nothing in between is faked.
"""

from __future__ import annotations

import email
import json
import smtplib
from collections.abc import Iterator
from pathlib import Path

import aiosmtplib
import pytest
from tests.peers import MailwrightProcess, SmtpSink, free_port, running

pytestmark = [pytest.mark.integration, pytest.mark.postfix]


def _config(sink_port: int, inbound: int, submission: int, extra: str = "") -> str:
    return f"""
[server]
hostname = "mx.mailwright.test"
spool = "var/spool"

[[listener]]
role = "inbound"
address = "127.0.0.1:{inbound}"

[[listener]]
role = "submission"
address = "127.0.0.1:{submission}"

[domains]
relay = ["example.test"]

[routes]
"example.test" = "smtp://127.0.0.1:{sink_port}"
"sender.test" = "maildir:mail"

[queue]
retry_intervals = ["1s"]
{extra}
"""


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SmtpSink]:
    with SmtpSink(tmp_path) as running_sink:
        yield running_sink


@pytest.fixture
def server(tmp_path: Path, sink: SmtpSink) -> Iterator[tuple[MailwrightProcess, int, int]]:
    inbound, submission = free_port(), free_port()
    process = MailwrightProcess(tmp_path, _config(sink.port, inbound, submission))
    with running(process, ("127.0.0.1", inbound)):
        yield process, inbound, submission


def _message(subject: str, body: str = "Hello.\r\n") -> bytes:
    return (
        f"From: a@sender.test\r\nTo: b@example.test\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@sender.test>\r\n\r\n{body}"
    ).encode()


def _maildir_messages(root: Path) -> list[email.message.Message]:
    return [email.message_from_bytes(path.read_bytes()) for path in sorted(root.glob("**/new/*"))]


def test_relayed_message_reaches_the_next_hop_intact(
    server: tuple[MailwrightProcess, int, int], sink: SmtpSink
) -> None:
    """A message for a relay domain is delivered to its route with a Received header added."""
    _, inbound, _ = server
    body = "Line one.\r\n.leading dot\r\n..two dots\r\n" + "x" * 900 + "\r\n"

    with smtplib.SMTP("127.0.0.1", inbound) as client:
        refused = client.sendmail("a@sender.test", ["b@example.test"], _message("relay1", body))

    assert refused == {}
    [got] = sink.wait_for(1)
    assert got.sender == "a@sender.test"
    assert got.recipients == ("b@example.test",)
    parsed = email.message_from_bytes(got.content)
    assert parsed["Subject"] == "relay1"
    assert "by mx.mailwright.test" in parsed["Received"]
    assert parsed.get_payload().replace("\r\n", "\n") == body.replace("\r\n", "\n")


def test_inbound_listener_is_not_an_open_relay(
    server: tuple[MailwrightProcess, int, int],
) -> None:
    """A recipient outside the local and relay domains gets 550 5.7.1 without AUTH."""
    _, inbound, _ = server

    with smtplib.SMTP("127.0.0.1", inbound) as client:
        client.ehlo()
        client.mail("a@sender.test")
        code, text = client.rcpt("victim@elsewhere.test")

    assert code == 550
    assert text.startswith(b"5.7.1")


def test_submission_requires_auth_then_relays_anywhere(
    server: tuple[MailwrightProcess, int, int], sink: SmtpSink
) -> None:
    """The submission listener refuses MAIL before AUTH and accepts any domain after."""
    process, _, submission = server
    added = process.run("user", "add", "alice", "--password-stdin", stdin=b"s3cret\n")
    assert added.returncode == 0, added.stderr

    with smtplib.SMTP("127.0.0.1", submission) as client:
        client.ehlo()
        code, _ = client.mail("alice@sender.test")
        assert code == 530
        client.rset()
        client.login("alice", "s3cret")
        refused = client.sendmail("alice@sender.test", ["b@example.test"], _message("sub1"))

    assert refused == {}
    [got] = sink.wait_for(1)
    assert got.recipients == ("b@example.test",)


def test_wrong_password_is_refused(server: tuple[MailwrightProcess, int, int]) -> None:
    """AUTH with a wrong password gets 535 5.7.8."""
    process, _, submission = server
    process.run("user", "add", "bob", "--password-stdin", stdin=b"right\n")

    with smtplib.SMTP("127.0.0.1", submission) as client:
        client.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            client.login("bob", "wrong")

    assert caught.value.smtp_code == 535


async def test_pipelined_client_sends_many_messages_on_one_session(
    server: tuple[MailwrightProcess, int, int], sink: SmtpSink
) -> None:
    """aiosmtplib pipelines 50 messages on one connection; each is delivered once."""
    _, inbound, _ = server

    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=inbound) as client:
        for number in range(50):
            await client.sendmail(
                "a@sender.test", [f"r{number}@example.test"], _message(f"pipe{number}")
            )

    got = sink.wait_for(50)
    assert sorted(m.recipients[0] for m in got) == sorted(f"r{n}@example.test" for n in range(50))


def test_permanent_failure_bounces_to_the_sender(tmp_path: Path) -> None:
    """A 5xx from the next hop produces an RFC 3464 bounce in the sender's mailbox."""
    inbound, submission = free_port(), free_port()
    with SmtpSink(tmp_path / "refusing", extra=["-f", "RCPT"]) as refusing:
        process = MailwrightProcess(tmp_path, _config(refusing.port, inbound, submission))
        with (
            running(process, ("127.0.0.1", inbound)),
            smtplib.SMTP("127.0.0.1", inbound) as client,
        ):
            client.sendmail("a@sender.test", ["b@example.test"], _message("bounce1"))
            bounces = _wait_for_maildir(tmp_path / "mail")

    [dsn] = bounces
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    status = dsn.get_payload()[1]
    assert status.get_content_type() == "message/delivery-status"
    text = status.as_string()
    assert "Final-Recipient: rfc822; b@example.test" in text
    assert "Action: failed" in text
    assert "Status: 5." in text
    assert "Remote-MTA: dns; 127.0.0.1" in text
    events = _events(process)
    [original] = [e for e in events if e["event"] == "received" and "source" not in e]
    [notice] = [e for e in events if e.get("source") == "dsn"]
    assert notice["original_queue_id"] == original["queue_id"]
    assert notice["recipients"] == ["a@sender.test"]
    assert notice["message_id"] == dsn["Message-ID"]


def _events(process: MailwrightProcess) -> list[dict[str, object]]:
    path = process.directory / "var" / "log" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _wait_for_maildir(
    root: Path, count: int = 1, timeout: float = 20.0
) -> list[email.message.Message]:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _maildir_messages(root)
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise TimeoutError(f"no bounce arrived in {root}")


@pytest.mark.parametrize(
    "layout",
    [
        "receivers = 1\ndelivery_process = false",
        "receivers = 2\ndelivery_process = false",
        "receivers = 1\ndelivery_process = true",
        "receivers = 2\ndelivery_process = true",
    ],
    ids=["one-process", "two-receivers", "delivery-process", "two-receivers-and-delivery"],
)
def test_every_process_layout_delivers_each_message_once(
    tmp_path: Path, sink: SmtpSink, layout: str
) -> None:
    """Receivers that deliver from memory, or a delivery process of its own: same result."""
    inbound, submission = free_port(), free_port()
    config = _config(sink.port, inbound, submission).replace(
        'spool = "var/spool"', f'spool = "var/spool"\n{layout}'
    )
    process = MailwrightProcess(tmp_path, config)

    with running(process, ("127.0.0.1", inbound)):
        for number in range(40):  # one connection each: SO_REUSEPORT spreads them
            with smtplib.SMTP("127.0.0.1", inbound) as client:
                client.sendmail(
                    "a@sender.test", [f"r{number}@example.test"], _message(f"l{number}")
                )
        got = sink.wait_for(40)

    recipients = sorted(m.recipients[0] for m in got)
    assert recipients == sorted(f"r{n}@example.test" for n in range(40))


def test_mail_to_the_bare_postmaster_lands_in_the_local_store(
    server: tuple[MailwrightProcess, int, int], tmp_path: Path
) -> None:
    """RCPT TO:<postmaster> (RFC 5321 §4.5.1) is accepted and delivered to a local Maildir."""
    _, inbound, _ = server

    with smtplib.SMTP("127.0.0.1", inbound) as client:
        refused = client.sendmail("a@sender.test", ["postmaster"], _message("pm1"))
    [got] = _wait_for_maildir(tmp_path / "var" / "mail" / "mx.mailwright.test" / "postmaster")

    assert refused == {}
    assert got["Subject"] == "pm1"
    assert got["Delivered-To"] == "postmaster@mx.mailwright.test"
