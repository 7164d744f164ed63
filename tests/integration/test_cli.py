"""Tests for the ``mailwright`` command, run as the real console script in a subprocess.

The queue commands work on a real spool, both directly (no server) and through
a real control socket; ``send`` talks to Postfix's smtp-sink.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import MAILWRIGHT_SCRIPT, RunCli
from tests.peers import MailwrightProcess, SmtpSink, free_port, running

from mailwright.config import load_config
from mailwright.control import ControlServer
from mailwright.envelope import Envelope, Recipient
from mailwright.queue_admin import SpoolQueueAdmin
from mailwright.spool import Spool

pytestmark = pytest.mark.integration

CONFIG = """\
[server]
hostname = "mx.example.test"
spool = "spool"
users_file = "users"
fsync = false

[[listener]]
role = "inbound"
address = "127.0.0.1:{port}"

[domains]
relay = ["example.test"]
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "mailwright.toml"
    path.write_text(CONFIG.format(port=free_port()))
    return path


def assert_clean_failure(result: subprocess.CompletedProcess[str], status: int) -> None:
    """The command failed with ``status`` and a message, never a traceback."""
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("mailwright: ")


class TestConfigCheck:
    def test_good_file_prints_a_summary(self, run_cli: RunCli, config_file: Path) -> None:
        """config check on a valid file exits 0 and names the host and listeners."""
        result = run_cli("config", "check", "--config", str(config_file))

        assert result.returncode == 0, result.stderr
        assert "configuration OK" in result.stdout
        assert "mx.example.test" in result.stdout
        assert "inbound on 127.0.0.1:" in result.stdout

    def test_json_summary(self, run_cli: RunCli, config_file: Path) -> None:
        """--json prints the summary for scripts."""
        result = run_cli("config", "check", "--json", "--config", str(config_file))

        summary = json.loads(result.stdout)
        assert summary["hostname"] == "mx.example.test"
        assert summary["relay_domains"] == ["example.test"]

    def test_bad_value_exits_2_with_file_line_key(self, run_cli: RunCli, tmp_path: Path) -> None:
        """A bad value stops with exit 2 and FILE:LINE: KEY on stderr, no traceback."""
        path = tmp_path / "bad.toml"
        path.write_text('[server]\nhostname = "mx.example.test"\n\n[queue]\nlifetime = "soon"\n')

        result = run_cli("config", "check", "--config", str(path))

        assert_clean_failure(result, 2)
        assert f"{path}:5: queue.lifetime: " in result.stderr

    def test_syntax_error_exits_2_with_line(self, run_cli: RunCli, tmp_path: Path) -> None:
        """A TOML syntax error also exits 2 with the line tomllib found."""
        path = tmp_path / "bad.toml"
        path.write_text("[server]\nhostname = mx\n")

        result = run_cli("config", "check", "--config", str(path))

        assert_clean_failure(result, 2)
        assert f"{path}:2: server.hostname: invalid TOML" in result.stderr

    def test_missing_config_file_exits_2(self, run_cli: RunCli, tmp_path: Path) -> None:
        """An explicit --config that does not exist is a configuration error."""
        result = run_cli("config", "check", "--config", str(tmp_path / "nope.toml"))

        assert_clean_failure(result, 2)
        assert "nope.toml: cannot read the file" in result.stderr

    def test_bad_config_stops_every_command(self, run_cli: RunCli, tmp_path: Path) -> None:
        """Any command refuses to run on a bad configuration, with exit 2."""
        (tmp_path / "mailwright.toml").write_text("[bogus]\n")

        for command in (["queue"], ["user", "list"], ["serve"], ["send", "--to", "a@b.test"]):
            result = run_cli(*command)
            assert_clean_failure(result, 2)
            assert "mailwright.toml:1: bogus: unknown section" in result.stderr

    def test_default_file_in_the_current_folder(self, run_cli: RunCli, config_file: Path) -> None:
        """Without --config, ./mailwright.toml is used when it exists."""
        result = run_cli("config", "check")

        assert "mx.example.test" in result.stdout
        assert str(config_file) in result.stdout

    def test_embedded_defaults_without_a_file(self, run_cli: RunCli, tmp_path: Path) -> None:
        """Without any file the embedded defaults apply."""
        result = run_cli("config", "check")

        assert result.returncode == 0
        assert "embedded defaults" in result.stdout
        assert "inbound on 127.0.0.1:2525" in result.stdout
        assert "submission on 127.0.0.1:2587" in result.stdout

    def test_config_before_the_command_and_python_m(self, config_file: Path) -> None:
        """``python -m mailwright --config F config check`` works like the script."""
        result = subprocess.run(
            [sys.executable, "-m", "mailwright", "--config", str(config_file), "config", "check"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

        assert result.returncode == 0, result.stderr
        assert "mx.example.test" in result.stdout


class TestServeStartFailures:
    def test_a_taken_port_names_the_listener_line_and_exits_1(
        self, run_cli: RunCli, tmp_path: Path
    ) -> None:
        """serve on a port another program holds stops at once, naming listener[0].address."""
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        path = tmp_path / "mailwright.toml"
        path.write_text(CONFIG.format(port=port))

        try:
            result = run_cli("serve", "--config", str(path))
        finally:
            holder.close()

        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith(f"mailwright: {path}:9: listener[0].address: cannot listen on")
        assert "in use" in last

    def test_an_unusable_event_log_names_its_key(self, run_cli: RunCli, tmp_path: Path) -> None:
        """An events_log that cannot be created is reported as server.events_log, no traceback."""
        (tmp_path / "blocker").write_text("a file where a folder should be")
        path = tmp_path / "mailwright.toml"
        text = CONFIG.format(port=free_port()).replace(
            "fsync = false\n", 'fsync = false\nevents_log = "blocker/events.jsonl"\n'
        )
        path.write_text(text)

        result = run_cli("serve", "--config", str(path))

        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith(f"mailwright: {path}:6: server.events_log: cannot open")


class TestUsers:
    def test_add_list_delete(self, run_cli: RunCli, config_file: Path, tmp_path: Path) -> None:
        """user add with --password-stdin, then list and delete, through the users file."""
        added = run_cli("user", "add", "alice@example.test", "--password-stdin", stdin="pw\n")
        run_cli("user", "add", "bob", "--password-stdin", stdin="pw2\n")
        listed = run_cli("user", "list")
        deleted = run_cli("user", "delete", "bob")
        after = run_cli("user", "list", "--json")

        assert added.returncode == 0, added.stderr
        assert listed.stdout.split() == ["alice@example.test", "bob"]
        assert deleted.returncode == 0
        assert json.loads(after.stdout) == ["alice@example.test"]
        users = tmp_path / "users"
        assert stat.S_IMODE(users.stat().st_mode) == 0o600
        assert users.read_text().startswith("alice@example.test:$scrypt$n=16384,r=8,p=1$")

    def test_password_is_usable_and_changeable(
        self, run_cli: RunCli, config_file: Path, tmp_path: Path
    ) -> None:
        """The stored hash verifies the password given; user passwd replaces it."""
        from mailwright.users import UserStore

        run_cli("user", "add", "alice", "--password-stdin", stdin="first\n")
        store = UserStore(tmp_path / "users")
        assert store.verify("alice", "first")

        changed = run_cli("user", "passwd", "alice", "--password-stdin", stdin="second\n")

        assert changed.returncode == 0, changed.stderr
        assert store.verify("alice", "second")
        assert not store.verify("alice", "first")

    def test_errors_exit_1(self, run_cli: RunCli, config_file: Path) -> None:
        """A taken name, an unknown user or an invalid name exits 1 with a message."""
        run_cli("user", "add", "alice", "--password-stdin", stdin="pw\n")

        assert_clean_failure(run_cli("user", "add", "alice", "--password-stdin", stdin="x\n"), 1)
        assert_clean_failure(run_cli("user", "delete", "nobody"), 1)
        assert_clean_failure(run_cli("user", "passwd", "nobody", "--password-stdin"), 1)
        invalid = run_cli("user", "add", "a:b", "--password-stdin", stdin="x\n")
        assert_clean_failure(invalid, 1)
        assert "invalid user name" in invalid.stderr

    def test_usage_error_exits_2(self, run_cli: RunCli) -> None:
        """A missing argument is a usage error (argparse's exit 2)."""
        result = run_cli("user", "add")

        assert result.returncode == 2
        assert "Traceback" not in result.stderr


async def _fill_spool(config_file: Path) -> list[str]:
    """Store two messages in the configured spool; return their queue ids."""
    config = load_config(config_file)
    ids = []
    async with Spool(config.server.spool, fsync=False, min_free_bytes=0) as spool:
        for number, recipients in enumerate(
            (["a@example.test", "b@other.test"], ["c@example.test"])
        ):
            envelope = Envelope(
                sender="sender@origin.test",
                recipients=[Recipient(address) for address in recipients],
                received_at=1.0,
            )
            content = f"From: sender@origin.test\r\nSubject: test {number}\r\n\r\nHello.\r\n"
            ids.append(await spool.store(envelope, content.encode()))
    return ids


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class TestQueueOffline:
    def test_empty_queue_without_a_spool(self, run_cli: RunCli, config_file: Path) -> None:
        """With no spool yet the queue is empty, and looking does not create it."""
        result = run_cli("queue")

        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "the queue is empty"
        assert not (config_file.parent / "spool").exists()

    def test_summary_list_and_show(self, run_cli: RunCli, config_file: Path) -> None:
        """Summary by domain, the listing and one message's detail come from the spool."""
        first, second = asyncio.run(_fill_spool(config_file))

        summary = _json(run_cli("queue", "--json"))
        listing = _json(run_cli("queue", "list", "--json"))
        only = _json(run_cli("queue", "list", "--domain", "other.test", "--json"))
        shown = _json(run_cli("queue", "show", first, "--json"))

        assert (summary["messages"], summary["recipients"]) == (2, 3)
        assert {d["domain"]: d["recipients"] for d in summary["domains"]} == {
            "example.test": 2,
            "other.test": 1,
        }
        assert [m["queue_id"] for m in listing] == [first, second]
        assert [m["queue_id"] for m in only] == [first]
        assert [r["address"] for r in shown["recipients"]] == ["a@example.test", "b@other.test"]
        assert ["Subject", "test 0"] in shown["headers"]

    def test_text_output_is_aligned_for_people(self, run_cli: RunCli, config_file: Path) -> None:
        """Without --json the summary and listing are aligned tables."""
        first, _ = asyncio.run(_fill_spool(config_file))

        summary = run_cli("queue").stdout.splitlines()
        listing = run_cli("queue", "list").stdout.splitlines()

        assert summary[0].split() == ["DOMAIN", "RECIPIENTS", "MESSAGES", "DEFERRED", "OLDEST"]
        assert summary[1].split()[:2] == ["example.test", "2"]
        assert summary[0].index("RECIPIENTS") + len("RECIPIENTS") == summary[1].index("2") + 1
        assert listing[1].startswith(first)
        assert listing[0].index("SENDER") == listing[1].index("sender@origin.test")

    def test_flush_delete_and_bounce(self, run_cli: RunCli, config_file: Path) -> None:
        """flush makes recipients due, delete removes, bounce returns a DSN to the sender."""
        first, second = asyncio.run(_fill_spool(config_file))

        flushed = _json(run_cli("queue", "flush", "--json"))
        deleted = _json(run_cli("queue", "delete", first, "--json"))
        bounced = _json(run_cli("queue", "bounce", second, "--json"))
        left = _json(run_cli("queue", "list", "--json"))

        assert flushed == {"flushed": 3}
        assert deleted == {"deleted": first}
        assert bounced["bounced"] == 1
        assert [(m["queue_id"], m["sender"]) for m in left] == [(bounced["dsn"], "")]
        dsn = _json(run_cli("queue", "show", bounced["dsn"], "--json"))
        assert [r["address"] for r in dsn["recipients"]] == ["sender@origin.test"]

    async def test_bouncing_a_message_being_delivered_says_so_and_exits_1(
        self, config_file: Path
    ) -> None:
        """While another process delivers every recipient, bounce returns none and says why."""
        [_, second] = await _fill_spool(config_file)
        config = load_config(config_file)
        async with Spool(config.server.spool, fsync=False, min_free_bytes=0) as delivering:
            await delivering.claim_due(2e9, 10)  # a live owner holds every recipient now

            result = await asyncio.to_thread(
                subprocess.run,
                [str(MAILWRIGHT_SCRIPT), "queue", "bounce", second, "--json"],
                capture_output=True,
                text=True,
                cwd=config_file.parent,
                check=False,
            )

        assert result.returncode == 1, result.stderr
        assert json.loads(result.stdout) == {"bounced": 0, "dsn": None, "in_delivery": 1}
        assert "being delivered right now" in result.stderr

    def test_unknown_queue_id_exits_1(self, run_cli: RunCli, config_file: Path) -> None:
        """Acting on an id that is not queued fails with exit 1 and names the id."""
        asyncio.run(_fill_spool(config_file))

        for action in ("show", "bounce"):
            result = run_cli("queue", action, "0000000000NOPE00")
            assert_clean_failure(result, 1)
            assert "0000000000NOPE00" in result.stderr


class RecordingAdmin:
    """A SpoolQueueAdmin that notes each command, to prove the socket was used."""

    def __init__(self, inner: SpoolQueueAdmin) -> None:
        self.inner = inner
        self.calls: list[str] = []

    async def summary(self) -> dict[str, Any]:
        self.calls.append("summary")
        return await self.inner.summary()

    async def list(self, domain: str | None, limit: int) -> list[dict[str, Any]]:
        self.calls.append("list")
        return await self.inner.list(domain, limit)

    async def show(self, queue_id: str) -> dict[str, Any]:
        self.calls.append("show")
        return await self.inner.show(queue_id)

    async def flush(self, queue_id: str | None) -> dict[str, Any]:
        self.calls.append("flush")
        return await self.inner.flush(queue_id)

    async def delete(self, queue_id: str) -> dict[str, Any]:
        self.calls.append("delete")
        return await self.inner.delete(queue_id)

    async def bounce(self, queue_id: str) -> dict[str, Any]:
        self.calls.append("bounce")
        return await self.inner.bounce(queue_id)


async def _cli(config_file: Path, *args: str) -> tuple[int, str, str]:
    """The console script as an asyncio subprocess, so the control server keeps serving."""
    process = await asyncio.create_subprocess_exec(
        str(MAILWRIGHT_SCRIPT),
        *args,
        "--config",
        str(config_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


class TestQueueThroughControlSocket:
    async def test_queue_commands_use_the_running_server(self, config_file: Path) -> None:
        """With a server listening on control.sock, queue commands go through it."""
        await _fill_spool(config_file)
        config = load_config(config_file)

        async with Spool(config.server.spool, fsync=False, min_free_bytes=0) as spool:
            admin = RecordingAdmin(SpoolQueueAdmin(spool, hostname="mx.example.test"))
            control = ControlServer(config.server.control_socket, admin)
            await control.start()
            try:
                status, out, err = await _cli(config_file, "queue", "--json")
                missing = await _cli(config_file, "queue", "show", "0000000000NOPE00")
            finally:
                await control.stop()

        assert status == 0, err
        assert json.loads(out)["recipients"] == 3
        assert missing[0] == 1
        assert "0000000000NOPE00" in missing[2]
        assert admin.calls == ["summary", "show"]


@pytest.fixture
def sink_dir() -> Iterator[Path]:
    """A folder smtp-sink can write to after dropping to ``nobody``.

    pytest's tmp_path sits below a 0700 folder that ``nobody`` cannot enter.
    """
    folder = Path(tempfile.mkdtemp(prefix="mailwright-sink-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


class TestSend:
    def test_send_to_smtp_sink(self, run_cli: RunCli, config_file: Path, sink_dir: Path) -> None:
        """send delivers a test message with smtplib and prints the server's replies."""
        with SmtpSink(sink_dir) as sink:
            result = run_cli(
                "send", "--server", f"127.0.0.1:{sink.port}", "--from", "me@origin.test",
                "--to", "a@example.test", "--to", "b@example.test", "--subject", "Hi there",
            )  # fmt: skip
            messages = sink.wait_for(1)

        assert result.returncode == 0, result.stderr
        assert "DATA: 250" in result.stdout
        assert messages[0].sender == "me@origin.test"
        assert messages[0].recipients == ("a@example.test", "b@example.test")
        assert b"Subject: Hi there" in messages[0].content

    def test_send_a_file_with_bare_newlines(
        self, run_cli: RunCli, config_file: Path, tmp_path: Path, sink_dir: Path
    ) -> None:
        """A message file with LF line ends is sent with CRLF, content unchanged."""
        eml = tmp_path / "message.eml"
        eml.write_bytes(b"Subject: from a file\n\nline one\n.line two\n")

        with SmtpSink(sink_dir) as sink:
            result = run_cli(
                "send", "--server", f"127.0.0.1:{sink.port}", "--to", "a@example.test",
                "--file", str(eml),
            )  # fmt: skip
            messages = sink.wait_for(1)

        assert result.returncode == 0, result.stderr
        assert b"Subject: from a file" in messages[0].content
        assert b"line one" in messages[0].content
        assert b"\n.line two" in messages[0].content.replace(b"\r\n", b"\n")

    def test_send_defaults_to_the_first_inbound_listener(
        self, run_cli: RunCli, tmp_path: Path, sink_dir: Path
    ) -> None:
        """Without --server, send connects to the configured inbound listener."""
        with SmtpSink(sink_dir) as sink:
            (tmp_path / "mailwright.toml").write_text(CONFIG.format(port=sink.port))
            result = run_cli("send", "--to", "a@example.test")
            messages = sink.wait_for(1)

        assert result.returncode == 0, result.stderr
        assert messages[0].sender == "postmaster@mx.example.test"

    def test_auth_on_the_submission_listener_of_a_running_server(self, tmp_path: Path) -> None:
        """A user from `user add` can AUTH with `send --submission`; a wrong password fails."""
        inbound, submission, nowhere = free_port(), free_port(), free_port()
        config = (
            f'[server]\nhostname = "mx.example.test"\nfsync = false\n'
            f'[[listener]]\nrole = "inbound"\naddress = "127.0.0.1:{inbound}"\n'
            f'[[listener]]\nrole = "submission"\naddress = "127.0.0.1:{submission}"\n'
            f'[routes]\n"example.test" = "smtp://127.0.0.1:{nowhere}"\n'
        )
        server = MailwrightProcess(tmp_path, config)
        send = [
            "send",
            "--submission",
            "--user",
            "alice",
            "--password-stdin",
            "--to",
            "b@example.test",
        ]

        with running(server, ("127.0.0.1", submission)):
            added = server.run("user", "add", "alice", "--password-stdin", stdin=b"s3cret\n")
            accepted = server.run(*send, stdin=b"s3cret\n")
            refused = server.run(*send, stdin=b"wrong\n")

        assert added.returncode == 0, added.stderr
        assert accepted.returncode == 0, accepted.stderr
        assert b"AUTH: 235" in accepted.stdout
        assert b"DATA: 250" in accepted.stdout
        assert refused.returncode == 1
        assert b"AUTH: 535" in refused.stdout

    def test_nothing_listening_exits_3(self, run_cli: RunCli, config_file: Path) -> None:
        """A server that cannot be reached is exit 3 with the address in the message."""
        port = free_port()

        result = run_cli("send", "--server", f"127.0.0.1:{port}", "--to", "a@example.test")

        assert_clean_failure(result, 3)
        assert f"127.0.0.1:{port}" in result.stderr

    def test_refused_recipient_exits_1(self, run_cli: RunCli, sink_dir: Path) -> None:
        """When the server refuses every recipient, the reply is shown and the exit is 1."""
        with SmtpSink(sink_dir, extra=["-f", "RCPT"]) as sink:
            result = run_cli("send", "--server", f"127.0.0.1:{sink.port}", "--to", "a@b.test")

        assert result.returncode == 1
        assert "RCPT a@b.test: 5" in result.stdout
