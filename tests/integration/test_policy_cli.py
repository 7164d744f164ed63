"""``mailwright policy test``: a policy run offline through every stage, by the real script.

Policies and messages are files in the test's folder; the built-in DMARC
policy reads its records from a real DNS server on loopback. Each test
checks the exit status and the exact lines or JSON keys the command prints.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunCli
from tests.dnsserver import DnsServer

pytestmark = pytest.mark.integration

MESSAGE = (
    "Received: from mail.example.com (mail.example.com [192.0.2.1])\r\n"
    "\tby mx.example.test; Thu, 03 Dec 2026 10:00:00 +0000\r\n"
    "Return-Path: <bounces@example.com>\r\n"
    "From: Alice <alice@example.com>\r\n"
    "To: bob@example.test, noreply@example.test\r\n"
    "Cc: Carol <carol@example.test>\r\n"
    "X-Spam: yes\r\n"
    "Subject: hello\r\n"
    "\r\n"
    "Hi.\r\n"
)

TENANT = """
from mailwright.policy import reject

API_VERSION = 1

def on_connect(connection):
    connection.metadata["tenant"] = "acme"

def on_rcpt(rcpt):
    if rcpt.address.startswith("noreply@"):
        return reject("This address takes no mail", code=550, status="5.1.1")
    return None

def on_message(message):
    message.add_header("X-Tenant", message.metadata["tenant"])
    message.remove_header("X-Spam")

def on_queue(message):
    message.route = "maildir:/srv/quarantine"
"""


def _files(tmp_path: Path, policy: str, message: str = MESSAGE) -> tuple[str, str]:
    (tmp_path / "policy.py").write_text(policy.lstrip())
    (tmp_path / "message.eml").write_bytes(message.encode())
    return "policy.py", "message.eml"


def _json(run_cli: RunCli, *args: str) -> tuple[int, dict[str, Any]]:
    result = run_cli("policy", "test", *args, "--json")
    assert result.stderr == ""
    return result.returncode, json.loads(result.stdout)


class TestTextOutput:
    """The report for people: one row per hook call, then the outcome."""

    def test_a_tenant_policy_prints_each_stage_and_the_outcome(
        self, tmp_path: Path, run_cli: RunCli
    ) -> None:
        """Exit 0, every stage in order, the edits, metadata, route and final reply."""
        policy, message = _files(tmp_path, TENANT)

        result = run_cli("policy", "test", policy, message)

        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            "stage    argument                policy     decision",
            "connect  127.0.0.1               policy.py  -",
            "ehlo     mail.example.com        -          (no hook)",
            "mail     <bounces@example.com>   -          (no hook)",
            "rcpt     <bob@example.test>      policy.py  -",
            "rcpt     <noreply@example.test>  policy.py  "
            "reject 550 5.1.1 This address takes no mail",
            "rcpt     <carol@example.test>    policy.py  -",
            "message                          policy.py  -",
            "queue                            policy.py  -",
            "",
            "added:     X-Tenant: acme",
            "removed:   X-Spam: yes",
            "metadata:  tenant=acme",
            "route:     maildir:/srv/quarantine",
            "refused:   <noreply@example.test>: 550 5.1.1 This address takes no mail",
            "reply:     250 2.0.0 Ok: would be queued",
            "result:    accepted",
        ]

    def test_a_raising_hook_shows_the_error_and_exits_1(
        self, tmp_path: Path, run_cli: RunCli
    ) -> None:
        """The exception is shown with the 451 4.3.0 it turns into."""
        policy, message = _files(
            tmp_path, "def on_mail(transaction):\n    raise LookupError('no tenant')\n"
        )

        result = run_cli("policy", "test", policy, message)

        assert result.returncode == 1
        lines = result.stdout.splitlines()
        assert lines[3] == (
            "mail     <bounces@example.com>  policy.py  error: LookupError: no tenant "
            "-> tempfail 451 4.3.0 Local policy error, try again later"
        )
        assert lines[-2:] == [
            "reply:     451 4.3.0 Local policy error, try again later",
            "result:    tempfailed",
        ]


class TestJson:
    """``--json``: one stable document."""

    def test_the_document_has_every_documented_key(self, tmp_path: Path, run_cli: RunCli) -> None:
        """Top-level keys, client defaults from the message, stages, edits and reply."""
        policy, message = _files(tmp_path, TENANT)

        status, data = _json(run_cli, policy, message)

        assert status == 0
        assert sorted(data) == [
            "accepted", "client", "headers_added", "headers_removed", "metadata", "policy",
            "recipients", "reply", "result", "route", "stages",
        ]  # fmt: skip
        assert data["client"] == {
            "ip": "127.0.0.1",
            "helo": "mail.example.com",
            "mail_from": "bounces@example.com",
            "recipients": ["bob@example.test", "noreply@example.test", "carol@example.test"],
            "listener": "inbound",
            "auth_user": None,
        }
        assert [stage["stage"] for stage in data["stages"]] == [
            "connect", "ehlo", "mail", "rcpt", "rcpt", "rcpt", "message", "queue",
        ]  # fmt: skip
        refused = data["stages"][4]
        assert refused["argument"] == "<noreply@example.test>"
        assert refused["reply"] == {
            "code": 550,
            "status": "5.1.1",
            "text": "This address takes no mail",
        }
        assert refused["steps"] == [
            {
                "policy": "policy.py",
                "hook": "on_rcpt",
                "decision": {
                    "verdict": "reject",
                    "code": 550,
                    "status": "5.1.1",
                    "text": "This address takes no mail",
                    "reason": "This address takes no mail",
                },
                "error": None,
            }
        ]
        assert data["stages"][0]["reply"]["code"] == 220
        assert data["stages"][6]["reply"] is None  # the end of data is answered once, at queue
        assert data["headers_added"] == [{"name": "X-Tenant", "value": "acme"}]
        assert data["headers_removed"] == [{"name": "X-Spam", "value": "yes"}]
        assert data["metadata"] == {"tenant": "acme"}
        assert data["route"] == "maildir:/srv/quarantine"
        assert data["recipients"]["accepted"] == ["bob@example.test", "carol@example.test"]
        assert data["reply"] == {"code": 250, "status": "2.0.0", "text": "Ok: would be queued"}
        assert (data["result"], data["accepted"]) == ("accepted", True)

    def test_the_options_override_the_message(self, tmp_path: Path, run_cli: RunCli) -> None:
        """--ip, --helo, --mail-from and --rcpt replace the defaults; '' is the null sender."""
        policy, message = _files(tmp_path, "def on_mail(t):\n    return None\n")

        status, data = _json(
            run_cli, policy, message, "--ip", "2001:db8::1", "--helo", "relay.example",
            "--mail-from", "", "--rcpt", "x@example.test", "--rcpt", "y@example.test",
        )  # fmt: skip

        assert status == 0
        assert data["client"]["ip"] == "2001:db8::1"
        assert data["client"]["helo"] == "relay.example"
        assert data["client"]["mail_from"] == ""
        assert data["client"]["recipients"] == ["x@example.test", "y@example.test"]
        assert data["stages"][2]["argument"] == "<>"

    def test_without_received_or_return_path_the_defaults_are_localhost_and_from(
        self, tmp_path: Path, run_cli: RunCli
    ) -> None:
        """No Received: HELO localhost; no Return-Path: the From address."""
        bare = "From: Alice <alice@example.com>\r\nTo: bob@example.test\r\n\r\nHi.\r\n"
        policy, message = _files(tmp_path, "def on_mail(t):\n    return None\n", bare)

        _, data = _json(run_cli, policy, message)

        assert data["client"]["helo"] == "localhost"
        assert data["client"]["mail_from"] == "alice@example.com"


class TestLineEnds:
    """Messages saved with LF line ends are read as the CRLF lines SMTP would carry."""

    def test_a_message_with_lf_line_ends_is_read_like_crlf(
        self, tmp_path: Path, run_cli: RunCli
    ) -> None:
        """Fields of an LF file are found, removed and added as for a CRLF one."""
        policy, message = _files(tmp_path, TENANT, MESSAGE.replace("\r\n", "\n"))

        status, data = _json(run_cli, policy, message)

        assert status == 0
        assert data["client"]["helo"] == "mail.example.com"
        assert data["headers_removed"] == [{"name": "X-Spam", "value": "yes"}]


class TestOutcomes:
    """The exit status says whether the message would be accepted."""

    def test_every_recipient_refused_exits_1_with_the_last_refusal(
        self, tmp_path: Path, run_cli: RunCli
    ) -> None:
        """With no recipient left the message stage never runs."""
        policy, message = _files(
            tmp_path,
            "from mailwright.policy import reject\n"
            "def on_rcpt(r):\n    return reject('Nobody here', status='5.1.1')\n",
        )

        status, data = _json(run_cli, policy, message)

        assert status == 1
        assert data["result"] == "rejected"
        assert data["reply"] == {"code": 550, "status": "5.1.1", "text": "Nobody here"}
        assert [stage["stage"] for stage in data["stages"]][-1] == "rcpt"
        assert len(data["recipients"]["refused"]) == 3

    def test_a_tempfail_at_end_of_data_exits_1(self, tmp_path: Path, run_cli: RunCli) -> None:
        """A message refused for now is a refusal: exit 1, result tempfailed."""
        policy, message = _files(
            tmp_path,
            "from mailwright.policy import tempfail\n"
            "def on_message(m):\n    return tempfail('Busy', code=452, status='4.3.1')\n"
            "def on_queue(m):\n    raise AssertionError('never reached')\n",
        )

        status, data = _json(run_cli, policy, message)

        assert status == 1
        assert data["result"] == "tempfailed"
        assert data["reply"] == {"code": 452, "status": "4.3.1", "text": "Busy"}
        assert data["stages"][-1]["stage"] == "message"
        assert data["stages"][-1]["reply"] == data["reply"]

    def test_a_discard_exits_0(self, tmp_path: Path, run_cli: RunCli) -> None:
        """The client hears 250 for a discarded message, so the status is 0."""
        policy, message = _files(
            tmp_path,
            "from mailwright.policy import discard\ndef on_message(m):\n    return discard()\n",
        )

        status, data = _json(run_cli, policy, message)

        assert status == 0
        assert data["result"] == "discarded"
        assert data["reply"] == {"code": 250, "status": "2.0.0", "text": "Ok: accepted"}
        assert data["headers_added"] == []

    def test_a_refused_connection_stops_at_connect_with_554(
        self, tmp_path: Path, run_cli: RunCli
    ) -> None:
        """A reject at on_connect greets with 554 and nothing else runs."""
        policy, message = _files(
            tmp_path,
            "from mailwright.policy import reject\n"
            "def on_connect(c):\n"
            "    return reject('Go away') if c.peer_ip == '192.0.2.9' else None\n",
        )

        status, data = _json(run_cli, policy, message, "--ip", "192.0.2.9")

        assert status == 1
        assert [stage["stage"] for stage in data["stages"]] == ["connect"]
        assert data["reply"] == {"code": 554, "status": "5.7.1", "text": "Go away"}

    def test_auth_user_runs_on_auth_and_uses_the_login(
        self, tmp_path: Path, run_cli: RunCli
    ) -> None:
        """--auth-user with submission: on_auth sees the user, later stages see the login."""
        policy, message = _files(
            tmp_path,
            "from mailwright.policy import reject\n"
            "def on_auth(a):\n    return reject('Locked') if a.username == 'bob' else None\n"
            "def on_mail(t):\n"
            "    t.metadata['user'] = t.connection.auth_user\n",
        )

        ok, alice = _json(
            run_cli, policy, message, "--listener", "submission", "--auth-user", "alice"
        )
        refused, bob = _json(
            run_cli, policy, message, "--listener", "submission", "--auth-user", "bob"
        )

        assert ok == 0
        assert alice["metadata"] == {"user": "alice"}
        assert [stage["stage"] for stage in alice["stages"]][:3] == ["connect", "ehlo", "auth"]
        assert refused == 1
        assert bob["reply"] == {
            "code": 535,
            "status": "5.7.8",
            "text": "Authentication credentials invalid",
        }


class TestUsageErrors:
    """Usage errors and policies that do not load exit 2 with one line, never a traceback."""

    @pytest.mark.parametrize(
        ("policy", "expected"),
        [
            ("def on_rcpt(rcpt)\n    return None\n", "policy.py:1: syntax error: expected ':'"),
            (
                "import os\n\ndef on_rcpt_to(r):\n    pass\n",
                "policy.py:3: unknown hook 'on_rcpt_to'",
            ),
            ("API_VERSION = 7\n", "policy.py:1: API_VERSION 7 is not supported"),
            ("def on_rcpt():\n    pass\n", "policy.py:1: on_rcpt() must take exactly one"),
            ("x = 1\nraise ValueError('bad')\n", "policy.py:2: fails on import: ValueError: bad"),
        ],
    )
    def test_a_policy_that_does_not_load_names_its_file_and_line(
        self, tmp_path: Path, run_cli: RunCli, policy: str, expected: str
    ) -> None:
        """The error is ``mailwright: FILE:LINE: what is wrong`` and the status 2."""
        policy_file, message = _files(tmp_path, policy)

        result = run_cli("policy", "test", policy_file, message)

        assert result.returncode == 2
        assert result.stdout == ""
        assert result.stderr.startswith(f"mailwright: {expected}")
        assert len(result.stderr.splitlines()) == 1

    @pytest.mark.parametrize(
        ("args", "expected"),
        [
            (["--ip", "999.1.1.1"], "--ip '999.1.1.1' is not an IPv4 or IPv6 address"),
            (["--listener", "submission"], "--listener submission needs --auth-user"),
        ],
    )
    def test_bad_options_are_usage_errors(
        self, tmp_path: Path, run_cli: RunCli, args: list[str], expected: str
    ) -> None:
        """A bad address or a submission without login exits 2."""
        policy, message = _files(tmp_path, "def on_mail(t):\n    pass\n")

        result = run_cli("policy", "test", policy, message, *args)

        assert result.returncode == 2
        assert expected in result.stderr

    def test_a_message_without_recipients_needs_rcpt(
        self, tmp_path: Path, run_cli: RunCli
    ) -> None:
        """No To or Cc and no --rcpt: exit 2, saying what to give."""
        policy, message = _files(
            tmp_path, "def on_mail(t):\n    pass\n", "Subject: x\r\n\r\nb\r\n"
        )

        result = run_cli("policy", "test", policy, message)

        assert result.returncode == 2
        assert "has no To or Cc address: give --rcpt" in result.stderr

    def test_an_unknown_builtin_is_a_usage_error(self, tmp_path: Path, run_cli: RunCli) -> None:
        """Only the built-ins that exist may be named."""
        _, message = _files(tmp_path, "")

        result = run_cli("policy", "test", "builtin:spam", message)

        assert result.returncode == 2
        assert "'builtin:spam' is not a built-in policy (known: builtin:dmarc)" in result.stderr


ZONES: dict[str, list[tuple[str, object]]] = {
    "example.com": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
    "_dmarc.example.com": [("TXT", "v=DMARC1; p=reject")],
    "example.net": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
    "_dmarc.example.net": [("TXT", "v=DMARC1; p=quarantine")],
}


class TestBuiltinDmarc:
    """``builtin:dmarc`` runs the built-in policy with the [dmarc] settings, asking DNS."""

    @pytest.fixture
    def nameserver(self, dns_server: Callable[..., DnsServer]) -> str:
        return str(dns_server(ZONES).nameserver)

    def test_a_failing_message_under_p_reject_is_rejected(
        self, tmp_path: Path, run_cli: RunCli, nameserver: str
    ) -> None:
        """SPF fails from an outside address, no DKIM: 550 5.7.1 and exit 1."""
        _, message = _files(tmp_path, "")

        status, data = _json(
            run_cli, "builtin:dmarc", message, "--ip", "198.51.100.7", "--nameserver", nameserver
        )

        assert status == 1
        assert data["policy"] == "builtin:dmarc"
        assert data["reply"]["code"] == 550
        assert data["reply"]["status"] == "5.7.1"
        assert "DMARC policy of example.com (p=reject)" in data["reply"]["text"]
        assert data["stages"][-1]["steps"][0]["hook"] == "on_message"

    def test_a_passing_message_gets_our_authentication_results(
        self, tmp_path: Path, run_cli: RunCli, nameserver: str
    ) -> None:
        """From an address SPF allows: accepted, with our Authentication-Results added."""
        _, message = _files(tmp_path, "")

        status, data = _json(
            run_cli, "builtin:dmarc", message, "--ip", "192.0.2.1", "--nameserver", nameserver
        )

        assert status == 0
        [added] = data["headers_added"]
        assert added["name"] == "Authentication-Results"
        assert "spf=pass" in added["value"]
        assert "dmarc=pass" in added["value"]

    def test_quarantine_routes_to_the_configured_quarantine(
        self, tmp_path: Path, run_cli: RunCli, nameserver: str
    ) -> None:
        """p=quarantine: accepted, the quarantine route of [dmarc] and a field saying why."""
        (tmp_path / "mailwright.toml").write_text('[dmarc]\nquarantine = "maildir:/srv/held"\n')
        _, message = _files(tmp_path, "", MESSAGE.replace("alice@example.com", "al@example.net"))

        status, data = _json(
            run_cli, "builtin:dmarc", message, "--ip", "198.51.100.7", "--nameserver", nameserver,
            "--mail-from", "al@example.net",
        )  # fmt: skip

        assert status == 0
        assert data["route"] == "maildir:/srv/held"
        names = [field["name"] for field in data["headers_added"]]
        assert names == ["Authentication-Results", "X-Mailwright-Quarantine"]


def test_config_check_loads_the_policy_modules(tmp_path: Path, run_cli: RunCli) -> None:
    """`config check` fails on a policy that would stop `serve`, naming file and line."""
    (tmp_path / "typo.py").write_text(
        "API_VERSION = 1\n\n\ndef on_rcpt_to(rcpt):\n    return None\n"
    )
    (tmp_path / "mailwright.toml").write_text('[policy]\nmodules = ["typo.py"]\n')
    result = run_cli("config", "check", "--config", str(tmp_path / "mailwright.toml"))
    assert result.returncode == 2
    assert f"{tmp_path / 'typo.py'}:4: unknown hook 'on_rcpt_to'" in result.stderr
    assert "mailwright.toml:2: policy.modules:" in result.stderr
