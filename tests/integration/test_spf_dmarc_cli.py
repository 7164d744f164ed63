"""``mailwright spf check``, ``spf build`` and ``dmarc build``, run as the real console script.

Every DNS question goes to a real DNS server on loopback
(:class:`tests.dnsserver.DnsServer`) named with ``--nameserver``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
from tests.conftest import RunCli
from tests.dnsserver import DnsServer

pytestmark = pytest.mark.integration

ZONES = {
    "example.test": [("TXT", "v=spf1 ip4:192.0.2.0/24 ~all")],
    "strict.example.test": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all exp=why.example.test")],
    "why.example.test": [("TXT", "%{c} may not send for %{d}")],
    "mail.example.test": [("TXT", "v=spf1 a -all"), ("A", "192.0.2.25")],
    "broken.example.test": [("TXT", "v=spf1 -all")],
}


@pytest.fixture
def server() -> Iterator[DnsServer]:
    """A DNS server holding ZONES, and a chain of twelve includes under chain.test."""
    with DnsServer(ZONES) as dns_server:
        for n in range(12):
            dns_server.add(f"d{n}.chain.test", "TXT", f"v=spf1 include:d{n + 1}.chain.test -all")
        dns_server.add("d12.chain.test", "TXT", "v=spf1 ip4:192.0.2.1 -all")
        dns_server.fail("broken.example.test", "servfail")
        yield dns_server


def assert_clean_failure(result: subprocess.CompletedProcess[str], status: int) -> None:
    """The command failed with ``status`` and a one-line message, never a traceback."""
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("mailwright: ") or result.stderr.startswith("usage: ")


def spf_check(run_cli: RunCli, server: DnsServer, *args: str) -> dict[str, object]:
    """``spf check ... --json`` against ``server``; the parsed output."""
    result = run_cli(
        "spf", "check", *args, "--nameserver", server.nameserver, "--dns-timeout", "2", "--json"
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


class TestSpfCheck:
    def test_an_authorized_client_passes(self, run_cli: RunCli, server: DnsServer) -> None:
        """A client inside the published network gets pass for the MAIL FROM identity."""
        data = spf_check(
            run_cli,
            server,
            "--ip",
            "192.0.2.7",
            "--mail-from",
            "a@example.test",
            "--helo",
            "x.test",
        )

        assert data["result"] == "pass"
        assert data["identity"] == "mailfrom"
        assert data["domain"] == "example.test"
        assert data["explanation"] == ""
        assert {"result", "explanation", "domain", "identity", "reason"} <= data.keys()

    def test_an_outside_client_gets_softfail(self, run_cli: RunCli, server: DnsServer) -> None:
        """~all gives softfail, spelled as RFC 8601 spells it."""
        data = spf_check(run_cli, server, "--ip", "198.51.100.1", "--mail-from", "a@example.test")

        assert data["result"] == "softfail"
        assert data["mechanism"] == "~all"

    def test_a_fail_is_explained_by_the_exp_record(
        self, run_cli: RunCli, server: DnsServer
    ) -> None:
        """-all with exp= prints the domain's explanation, macros expanded (§6.2)."""
        result = run_cli(
            "spf",
            "check",
            "--ip",
            "198.51.100.1",
            "--mail-from",
            "<bob@strict.example.test>",
            "--nameserver",
            server.nameserver,
        )

        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0] == "spf=fail"
        assert "explanation: 198.51.100.1 may not send for strict.example.test" in result.stdout

    def test_a_servfail_is_temperror(self, run_cli: RunCli, server: DnsServer) -> None:
        """A failing nameserver for the domain gives temperror (§4.4)."""
        data = spf_check(
            run_cli, server, "--ip", "192.0.2.7", "--mail-from", "a@broken.example.test"
        )

        assert data["result"] == "temperror"
        assert "servfail" in str(data["reason"]).lower() or "failed" in str(data["reason"])

    def test_an_empty_mail_from_checks_the_helo_name(
        self, run_cli: RunCli, server: DnsServer
    ) -> None:
        """A bounce is checked against the HELO name (§2.4)."""
        data = spf_check(
            run_cli, server, "--ip", "192.0.2.25", "--mail-from", "", "--helo", "mail.example.test"
        )

        assert data["result"] == "pass"
        assert data["identity"] == "helo"
        assert data["domain"] == "mail.example.test"

    def test_a_domain_without_a_record_is_none(self, run_cli: RunCli, server: DnsServer) -> None:
        """No SPF record gives none."""
        data = spf_check(run_cli, server, "--ip", "192.0.2.7", "--mail-from", "a@nowhere.test")

        assert data["result"] == "none"

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--ip", "300.1.1.1", "--mail-from", "a@example.test"], "not an IP address"),
            (["--ip", "192.0.2.1"], "give --mail-from"),
        ],
    )
    def test_bad_input_is_a_usage_error(
        self, run_cli: RunCli, server: DnsServer, args: list[str], message: str
    ) -> None:
        """An unusable address or no identity at all exits 2 with a message."""
        result = run_cli("spf", "check", *args, "--nameserver", server.nameserver)

        assert_clean_failure(result, 2)
        assert message in result.stderr


class TestSpfBuild:
    def test_a_record_is_printed_with_its_static_count(self, run_cli: RunCli) -> None:
        """Without --domain, the record and its own count are printed; exit 0."""
        result = run_cli(
            "spf", "build", "--ip4", "192.0.2.0/24", "--mx", "--include", "_spf.example.net"
        )

        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == "v=spf1 ip4:192.0.2.0/24 mx include:_spf.example.net -all"
        assert "DNS lookups: 2 of 10" in result.stdout

    def test_an_include_chain_over_ten_is_counted_through_dns(
        self, run_cli: RunCli, server: DnsServer
    ) -> None:
        """With --domain the count follows includes; over ten warns and exits 1."""
        result = run_cli(
            "spf",
            "build",
            "--include",
            "d0.chain.test",
            "--domain",
            "example.test",
            "--nameserver",
            server.nameserver,
            "--json",
        )

        assert result.returncode == 1, result.stderr
        data = json.loads(result.stdout)
        assert data["record"] == "v=spf1 include:d0.chain.test -all"
        assert data["lookups"]["total"] == 13
        assert data["lookups"]["over_limit"] is True
        assert any("13 DNS-querying terms" in warning for warning in data["warnings"])

    def test_a_record_within_the_limits_exits_0(self, run_cli: RunCli, server: DnsServer) -> None:
        """A short include chain is within the limits."""
        result = run_cli(
            "spf",
            "build",
            "--include",
            "d10.chain.test",
            "--domain",
            "example.test",
            "--nameserver",
            server.nameserver,
        )

        assert result.returncode == 0, result.stderr
        assert "DNS lookups: 3 of 10, void: 0 of 2 (through DNS)" in result.stdout

    def test_a_long_record_is_split_into_strings(self, run_cli: RunCli) -> None:
        """A record over 255 octets is shown as TXT strings, with a warning."""
        args = [arg for n in range(30) for arg in ("--ip6", f"2001:db8:{n:x}::/48")]

        result = run_cli("spf", "build", *args, "--json")

        data = json.loads(result.stdout)
        assert len(data["strings"]) == 3
        assert any("3 strings" in warning for warning in data["warnings"])

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--ip4", "192.0.2.1/24"], "host bits set"),
            (["--include", "localhost"], "not a domain name"),
            (["--all", "sometimes"], "is not fail"),
            (["--redirect", "r.example.com", "--all", "fail"], "never uses redirect="),
        ],
    )
    def test_bad_options_are_usage_errors(
        self, run_cli: RunCli, args: list[str], message: str
    ) -> None:
        """An invalid part exits 2 naming the option."""
        result = run_cli("spf", "build", *args)

        assert_clean_failure(result, 2)
        assert message in result.stderr


class TestDmarcBuild:
    def test_a_record_is_printed_with_its_name(self, run_cli: RunCli) -> None:
        """The record, where to publish it, and the warnings."""
        result = run_cli(
            "dmarc",
            "build",
            "--p",
            "reject",
            "--rua",
            "dmarc@example.com,r@reports.example.net",
            "--domain",
            "example.com",
        )

        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == (
            "v=DMARC1; p=reject; rua=mailto:dmarc@example.com,mailto:r@reports.example.net"
        )
        assert lines[1] == "publish as: _dmarc.example.com TXT"
        assert "_report._dmarc.reports.example.net" in result.stdout

    def test_json_output(self, run_cli: RunCli) -> None:
        """--json gives the record, the name and the warnings."""
        result = run_cli("dmarc", "build", "--p", "quarantine", "--t", "y", "--json")

        data = json.loads(result.stdout)
        assert data["record"] == "v=DMARC1; p=quarantine; t=y"
        assert data["name"] is None
        assert any("test mode" in warning for warning in data["warnings"])

    def test_a_bad_value_is_a_usage_error(self, run_cli: RunCli) -> None:
        """An invalid policy exits 2 naming the tag."""
        result = run_cli("dmarc", "build", "--p", "rejectt")

        assert_clean_failure(result, 2)
        assert "p: 'rejectt'" in result.stderr
