"""End to end: policy modules in a real ``mailwright serve``, spoken to with smtplib.

The policies are files written to the test's folder and listed in
``[policy] modules``; mail is relayed to Postfix's smtp-sink or written to
Maildirs. Most behaviours share one server whose policy branches on the
recipient or the Subject (starting a server costs about a second); reloads
and the delivery hooks get servers of their own.
"""

from __future__ import annotations

import json
import signal
import smtplib
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path

import pytest
from tests.peers import MailwrightProcess, SinkMessage, SmtpSink, free_port, running

pytestmark = [pytest.mark.integration, pytest.mark.postfix]

#: One policy with a behaviour per recipient or Subject; {quarantine} and {held} filled in.
POLICY = """
import asyncio
from pathlib import Path

from mailwright.policy import reject, tempfail

API_VERSION = 1
DELIVERIES = Path({deliveries!r})


def on_connect(connection):
    connection.metadata["tenant"] = "acme"


def on_rcpt(rcpt):
    local = rcpt.address.partition("@")[0]
    if local == "noreply":
        return reject("This address takes no mail", code=550, status="5.1.1")
    if local == "later":
        return tempfail("Greylisted, try again later", code=450, status="4.2.0")
    return None


async def on_message(message):
    subject = message.header("Subject") or ""
    if subject == "raise":
        raise RuntimeError("the tenant database is down")
    if subject == "slow":
        await asyncio.sleep(30)
    message.metadata["campaign"] = subject
    message.add_header("X-Tenant", message.metadata["tenant"])
    message.remove_header("X-Spam")


def on_queue(message):
    if message.header("X-Quarantine") is not None:
        message.route = {quarantine!r}
    if "held@example.test" in message.recipients:
        message.route = {held!r}


def on_delivery(outcome):
    with DELIVERIES.open("a") as out:
        out.write(f"{{outcome.status}} {{outcome.recipient}} {{outcome.metadata['tenant']}}\\n")
"""


def _config(inbound: int, sink_port: int, extra: str = "", timeout: float = 0.3) -> str:
    return f"""
[server]
hostname = "mx.mailwright.test"
spool = "var/spool"
receivers = 1
fsync = false

[[listener]]
role = "inbound"
address = "127.0.0.1:{inbound}"

[domains]
relay = ["example.test"]

[routes]
"example.test" = "smtp://127.0.0.1:{sink_port}"
"sender.test" = "maildir:mail"

[queue]
retry_intervals = ["1s"]

[policy]
modules = ["policy.py"]
timeout = {timeout}

{extra}
"""


def _message(subject: str, *fields: str, to: str = "b@example.test") -> bytes:
    head = "".join(f"{field}\r\n" for field in fields)
    return (
        f"From: a@sender.test\r\nTo: {to}\r\nSubject: {subject}\r\n{head}"
        f"Message-ID: <{subject}@sender.test>\r\n\r\nHello.\r\n"
    ).encode()


def _wait(predicate: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


def _events(process: MailwrightProcess) -> list[dict[str, object]]:
    path = process.directory / "var" / "log" / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _maildir(base: Path, address: str) -> list[bytes]:
    local, _, domain = address.partition("@")
    new = base / domain / local / "new"
    return [path.read_bytes() for path in sorted(new.iterdir())] if new.is_dir() else []


def _subject(message: SinkMessage) -> str | None:
    return message_from_bytes(message.content)["Subject"]


@dataclass
class Server:
    """The shared server: its process, port, sink and the folders its policy writes to."""

    process: MailwrightProcess
    port: int
    sink: SmtpSink
    quarantine: Path
    deliveries: Path

    def client(self) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", self.port, timeout=10)
        client.ehlo("client.example.org")
        return client

    def received(self, subject: str) -> SinkMessage:
        """Wait for the message with ``subject`` at the sink."""
        found: list[SinkMessage] = []

        def arrived() -> bool:
            found[:] = [m for m in self.sink.messages() if _subject(m) == subject]
            return bool(found)

        _wait(arrived)
        return found[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("policy-e2e")
    quarantine, deliveries, inbound = folder / "quarantine", folder / "deliveries.txt", free_port()
    held = f"smtp://127.0.0.1:{free_port()}"  # nothing listens: the message stays queued
    (folder / "policy.py").write_text(
        POLICY.format(quarantine=f"maildir:{quarantine}", held=held, deliveries=str(deliveries))
    )
    with SmtpSink(folder) as sink:
        process = MailwrightProcess(folder, _config(inbound, sink.port))
        with running(process, ("127.0.0.1", inbound)):
            yield Server(process, inbound, sink, quarantine, deliveries)


class TestReplies:
    """Hook decisions reach the client as exact SMTP replies."""

    def test_reject_at_rcpt_sends_the_exact_reply(self, server: Server) -> None:
        """550 5.1.1 with the hook's text; the other recipient is still accepted."""
        with server.client() as client:
            assert client.mail("a@sender.test")[0] == 250
            refused = client.rcpt("noreply@example.test")
            accepted = client.rcpt("b@example.test")

        assert refused == (550, b"5.1.1 This address takes no mail")
        assert accepted == (250, b"2.1.5 Recipient OK")

    def test_tempfail_at_rcpt_sends_the_exact_reply(self, server: Server) -> None:
        """A greylisting 450 4.2.0 goes out as the hook asked."""
        with server.client() as client:
            client.mail("a@sender.test")

            assert client.rcpt("later@example.test") == (450, b"4.2.0 Greylisted, try again later")

    def test_the_mta_still_refuses_relaying_for_an_unknown_domain(self, server: Server) -> None:
        """No policy opinion opens a relay: the MTA's 550 5.7.1 stands."""
        with server.client() as client:
            client.mail("a@sender.test")

            assert client.rcpt("victim@elsewhere.example") == (550, b"5.7.1 Relaying denied")

    def test_a_raising_hook_gives_451_4_3_0_and_the_next_message_is_served(
        self, server: Server
    ) -> None:
        """on_message raises: exactly 451 4.3.0; the same connection then delivers a message."""
        with server.client() as client:
            with pytest.raises(smtplib.SMTPDataError) as failed:
                client.sendmail("a@sender.test", ["b@example.test"], _message("raise"))
            assert client.sendmail("a@sender.test", ["b@example.test"], _message("after")) == {}

        assert (failed.value.smtp_code, failed.value.smtp_error) == (
            451,
            b"4.3.0 Local policy error, try again later",
        )
        server.received("after")
        log = server.process.log.read_text()
        assert "policy.error policy=" in log
        assert "hook=on_message error=RuntimeError: the tenant database is down" in log

    def test_an_async_hook_past_the_timeout_gives_451_4_3_0(self, server: Server) -> None:
        """A hook sleeping 30 s under ``timeout = 0.3`` is cut off with 451 4.3.0."""
        started = time.monotonic()
        with server.client() as client, pytest.raises(smtplib.SMTPDataError) as failed:
            client.sendmail("a@sender.test", ["b@example.test"], _message("slow"))

        assert (failed.value.smtp_code, failed.value.smtp_error) == (
            451,
            b"4.3.0 Local policy error, try again later",
        )
        assert time.monotonic() - started < 5
        assert "hook=on_message error=timed out" in server.process.log.read_text()


class TestEdits:
    """Header edits, metadata and routes reach the delivered message and the queue."""

    def test_added_and_removed_fields_reach_the_delivered_message(self, server: Server) -> None:
        """X-Tenant is added, X-Spam removed, and the body arrives unchanged."""
        with server.client() as client:
            client.sendmail("a@sender.test", ["b@example.test"], _message("edited", "X-Spam: yes"))

        got = server.received("edited")
        parsed = message_from_bytes(got.content)
        assert parsed["X-Tenant"] == "acme"
        assert parsed["X-Spam"] is None
        assert got.content.replace(b"\r\n", b"\n").endswith(b"\n\nHello.\n")

    def test_metadata_and_edits_are_in_the_queue(self, server: Server) -> None:
        """A message held in the queue shows the metadata and the edited header."""
        with server.client() as client:
            client.sendmail("a@sender.test", ["held@example.test"], _message("held", "X-Spam: 1"))

        def queued() -> list[dict[str, object]]:
            return [
                e for e in _events(server.process)
                if e["event"] == "received" and e.get("message_id") == "<held@sender.test>"
            ]  # fmt: skip

        _wait(queued)
        queue_id = str(queued()[0]["queue_id"])
        shown = server.process.run("queue", "show", queue_id, "--json")
        assert shown.returncode == 0, shown.stderr
        detail = json.loads(shown.stdout)
        metadata = detail["envelope"]["metadata"]
        assert metadata["tenant"] == "acme"
        assert metadata["campaign"] == "held"
        assert metadata["route"].startswith("smtp://127.0.0.1:")
        names = [str(name).lower() for name, _ in detail["headers"]]
        assert "x-tenant" in names
        assert "x-spam" not in names

    def test_a_route_chosen_by_a_hook_is_where_the_message_lands(self, server: Server) -> None:
        """``message.route = "maildir:..."`` delivers into that Maildir, not to the sink."""
        with server.client() as client:
            client.sendmail(
                "a@sender.test", ["b@example.test"], _message("quarantined", "X-Quarantine: 1")
            )

        _wait(lambda: _maildir(server.quarantine, "b@example.test"))
        [copy] = _maildir(server.quarantine, "b@example.test")
        assert b"Subject: quarantined" in copy
        assert b"X-Tenant: acme" in copy
        assert not [m for m in server.sink.messages() if _subject(m) == "quarantined"]

    def test_on_delivery_is_called_with_the_outcome_and_metadata(self, server: Server) -> None:
        """The delivery hook appends one line per delivered recipient, tenant included."""
        with server.client() as client:
            client.sendmail("a@sender.test", ["notify@example.test"], _message("notify"))

        server.received("notify")
        _wait(lambda: server.deliveries.exists() and "notify@" in server.deliveries.read_text())
        assert "delivered notify@example.test acme\n" in server.deliveries.read_text()


RELOAD_POLICY = """
from mailwright.policy import reject

def on_rcpt(rcpt):
    return reject("Closed by policy {version}", code=550, status="5.7.1")
"""


def test_sighup_reloads_an_edited_policy_and_keeps_it_when_an_edit_is_broken(
    tmp_path: Path,
) -> None:
    """SIGHUP picks up a changed file without a restart; a broken one is logged and ignored."""
    inbound = free_port()
    policy = tmp_path / "policy.py"
    policy.write_text(RELOAD_POLICY.format(version="v1"))
    process = MailwrightProcess(tmp_path, _config(inbound, free_port()))

    def rcpt_reply() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", inbound, timeout=10) as client:
            client.ehlo("client.example.org")
            client.mail("a@sender.test")
            return client.rcpt("b@example.test")

    with running(process, ("127.0.0.1", inbound)):
        assert rcpt_reply() == (550, b"5.7.1 Closed by policy v1")
        pid = process.process.pid if process.process else 0

        policy.write_text(RELOAD_POLICY.format(version="v2"))
        process.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        _wait(lambda: rcpt_reply() == (550, b"5.7.1 Closed by policy v2"))

        policy.write_text("def on_rcpt(rcpt)\n    return None\n")
        process.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        _wait(lambda: "policy.reload_failed" in process.log.read_text())

        assert rcpt_reply() == (550, b"5.7.1 Closed by policy v2")
        assert process.process is not None
        assert process.process.pid == pid  # the same server all along

    log = process.log.read_text()
    assert "policy.reloaded" in log
    assert f"{policy}:1: syntax error" in log


BOUNCE_POLICY = """
from mailwright.policy import discard

def on_message(message):
    if message.header("X-Suppress-Bounces") == "yes":
        message.metadata["bounces"] = "suppress"

def on_bounce(bounce):
    if bounce.original.metadata.get("bounces") == "suppress":
        return discard("known forged sender")
    return None
"""


def test_on_bounce_discard_suppresses_the_dsn(tmp_path: Path) -> None:
    """Two messages bounce; the one whose hook discards its DSN gets none, the other one does."""
    inbound = free_port()
    (tmp_path / "policy.py").write_text(BOUNCE_POLICY)
    with SmtpSink(tmp_path, extra=["-f", "RCPT"]) as sink:
        process = MailwrightProcess(tmp_path, _config(inbound, sink.port))
        with running(process, ("127.0.0.1", inbound)):
            with smtplib.SMTP("127.0.0.1", inbound, timeout=10) as client:
                client.sendmail("kept@sender.test", ["b@example.test"], _message("kept"))
                client.sendmail(
                    "gone@sender.test",
                    ["b@example.test"],
                    _message("gone", "X-Suppress-Bounces: yes"),
                )

            def bounced() -> int:
                return sum(e["event"] == "bounced" for e in _events(process))

            _wait(lambda: bounced() == 2)
            _wait(lambda: _maildir(tmp_path / "mail", "kept@sender.test"))
            time.sleep(0.5)  # time for a DSN to the other sender, were one queued

    [dsn] = _maildir(tmp_path / "mail", "kept@sender.test")
    assert b"multipart/report" in dsn
    assert b"kept@sender.test" in dsn
    assert _maildir(tmp_path / "mail", "gone@sender.test") == []
    dsn_received = [
        e for e in _events(process) if e["event"] == "received" and e.get("sender") == ""
    ]
    assert len(dsn_received) == 1


def test_a_policy_that_does_not_load_stops_the_start_with_its_line(tmp_path: Path) -> None:
    """``serve`` refuses to start with a broken policy (exit 1) and names the file and line."""
    inbound = free_port()
    (tmp_path / "policy.py").write_text(
        textwrap.dedent(
            """
            API_VERSION = 1

            def on_rcpt_to(rcpt):
                return None
            """
        )
    )
    process = MailwrightProcess(tmp_path, _config(inbound, free_port()))

    result = process.run("serve")

    assert result.returncode == 1  # found at start-up, like a port taken
    stderr = result.stderr.decode()
    assert f"{tmp_path / 'policy.py'}:4: unknown hook 'on_rcpt_to'" in stderr
    assert "Traceback" not in stderr
