"""Tests for ``mailwright check``, run as the real command against real DNS and HTTPS peers.

One authoritative DNS server (tests/dnsserver.py) holds a zone per scenario:
``good.test`` passes every check, each other domain breaks one thing. MTA-STS
policies come from a loopback HTTPS server whose self-signed certificate
names every ``mta-sts.*.test`` host; the command trusts it with
``--ca-file`` and reaches it with ``--https-port``.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from tests.dnsserver import DnsServer

from mailwright.auth.dkim import Signer, format_key_record
from mailwright.cli.main import main

pytestmark = pytest.mark.integration

POLICY_HOSTS = ("mta-sts.good.test", "mta-sts.stsbad.test", "mta-sts.stsdown.test")
POLICIES = {
    "mta-sts.good.test": "version: STSv1\nmode: enforce\nmx: mail.good.test\nmax_age: 1209600\n",
    "mta-sts.stsbad.test": "version: STSv1\nmode: enforce\nmx: *.other.test\nmax_age: 1209600\n",
}


# -- peers ------------------------------------------------------------------------------


def _rsa_key(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _weak_key_record() -> str:
    """A key record for a 512-bit RSA key (made from numbers: libraries refuse to generate it)."""
    modulus = (1 << 511) | 0x10001 | 1
    public = rsa.RSAPublicNumbers(65537, modulus).public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


@pytest.fixture(scope="module")
def good_key() -> rsa.RSAPrivateKey:
    return _rsa_key(2048)


@pytest.fixture(scope="module")
def zones(good_key: rsa.RSAPrivateKey) -> dict[str, list[Any]]:
    spf_good = "v=spf1 ip4:127.0.0.1 include:_spf.good.test -all"
    many = " ".join(f"a:h{n}.lookups.test" for n in range(1, 12))
    return {
        # good.test: everything right.
        "good.test": [("TXT", spf_good), ("MX", "10 mail.good.test.")],
        "_spf.good.test": [("TXT", "v=spf1 a:mail.good.test ~all")],
        "mail.good.test": [("A", "127.0.0.1")],
        "_dmarc.good.test": [
            ("TXT", "v=DMARC1; p=reject; rua=mailto:d@good.test,mailto:r@reporter.test")
        ],
        "good.test._report._dmarc.reporter.test": [("TXT", "v=DMARC1")],
        "s1._domainkey.good.test": [("TXT", format_key_record(good_key))],
        "_mta-sts.good.test": [("TXT", "v=STSv1; id=20240101")],
        "mta-sts.good.test": [("A", "127.0.0.1")],
        "_smtp._tls.good.test": [("TXT", "v=TLSRPTv1; rua=mailto:tls@good.test")],
        "1.0.0.127.in-addr.arpa": [("PTR", "mail.good.test.")],
        "3.0.0.127.in-addr.arpa": [("PTR", "nowhere.good.test.")],
        # SPF faults.
        "lookups.test": [("TXT", f"v=spf1 {many} -all")],
        "*.lookups.test": [("A", "192.0.2.1")],
        "void.test": [("TXT", "v=spf1 a:g1.void.test a:g2.void.test mx:g3.void.test -all")],
        "loop.test": [("TXT", "v=spf1 include:a.loop.test -all")],
        "a.loop.test": [("TXT", "v=spf1 include:loop.test -all")],
        "multi.test": [("TXT", "v=spf1 -all"), ("TXT", "v=spf1 mx -all")],
        "plusall.test": [("TXT", "v=spf1 +all")],
        # DKIM faults: keys under weak.test.
        "weak.test": [("TXT", "v=spf1 -all"), ("MX", "0 .")],
        "s512._domainkey.weak.test": [("TXT", _weak_key_record())],
        "s1024._domainkey.weak.test": [("TXT", format_key_record(_rsa_key(1024)))],
        "rev._domainkey.weak.test": [("TXT", "v=DKIM1; k=rsa; p=")],
        # DMARC faults.
        "dsyntax.test": [("TXT", "v=spf1 -all")],
        "_dmarc.dsyntax.test": [("TXT", "v=DMARC1; p=bogus; rua=mailto:d@dsyntax.test")],
        "ext.test": [("TXT", "v=spf1 -all")],
        "_dmarc.ext.test": [("TXT", "v=DMARC1; p=reject; rua=mailto:r@thirdparty.test")],
        "broken.test": [("TXT", "v=spf1 -all")],
        # MX faults.
        "nullmx.test": [("TXT", "v=spf1 -all"), ("MX", "0 .")],
        "cname.test": [("TXT", "v=spf1 -all"), ("MX", "10 alias.cname.test.")],
        "alias.cname.test": [("CNAME", "real.cname.test.")],
        "real.cname.test": [("A", "192.0.2.7")],
        # MTA-STS faults.
        "stsbad.test": [("TXT", "v=spf1 -all"), ("MX", "10 mail.stsbad.test.")],
        "mail.stsbad.test": [("A", "192.0.2.8")],
        "_mta-sts.stsbad.test": [("TXT", "v=STSv1; id=1")],
        "mta-sts.stsbad.test": [("A", "127.0.0.1")],
        "stsdown.test": [("TXT", "v=spf1 -all"), ("MX", "10 mail.stsdown.test.")],
        "mail.stsdown.test": [("A", "192.0.2.9")],
        "_mta-sts.stsdown.test": [("TXT", "v=STSv1; id=1")],
        "mta-sts.stsdown.test": [("A", "127.0.0.2")],
    }


@pytest.fixture(scope="module")
def dns(zones: dict[str, list[Any]]) -> Iterator[DnsServer]:
    with DnsServer(zones) as server:
        server.fail("_dmarc.broken.test", "servfail")
        yield server


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate naming every policy host."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mta-sts test")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName(host) for host in POLICY_HOSTS]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _PolicyHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").split(":")[0]
        body = POLICIES.get(host)
        if self.path != "/.well-known/mta-sts.txt" or body is None:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # the base's name
        pass


@pytest.fixture(scope="module")
def https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """The policy server: its port and the certificate to trust."""
    cert, key = _certificate(tmp_path_factory.mktemp("mta-sts"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PolicyHandler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], cert
    server.shutdown()
    server.server_close()


def check(
    capsys: pytest.CaptureFixture[str],
    dns: DnsServer,
    https: tuple[int, Path],
    domain: str,
    *options: str,
) -> tuple[int, dict[str, Any]]:
    """Run ``mailwright check DOMAIN --json``; the exit status and the parsed output."""
    port, cert = https
    status = main(
        [
            "check",
            domain,
            "--json",
            "--nameserver",
            dns.nameserver,
            "--https-port",
            str(port),
            "--ca-file",
            str(cert),
            *options,
        ]
    )
    output = capsys.readouterr()
    assert "Traceback" not in output.err
    return status, json.loads(output.out)


def by_check(report: dict[str, Any], check_id: str) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["check"] == check_id]


def severities(report: dict[str, Any], check_id: str) -> set[str]:
    return {f["severity"] for f in by_check(report, check_id)}


def message_for(key: rsa.RSAPrivateKey | None, *, one_click: bool = True) -> bytes:
    """A bulk message from good.test, signed with ``key`` unless it is None."""
    headers = [
        b"Return-Path: <bounce@good.test>",
        b"From: News <news@good.test>",
        b"To: reader@example.test",
        b"Subject: This week",
        b"Date: Mon, 01 Jan 2024 10:00:00 +0000",
        b"Message-ID: <1@good.test>",
        b"List-Unsubscribe: <https://good.test/u?id=1>, <mailto:u@good.test>",
    ]
    if one_click:
        headers.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click")
    message = b"\r\n".join(headers) + b"\r\n\r\nHello.\r\n"
    if key is None:
        return message
    signer = Signer(domain="good.test", selector="s1", key=key)
    return signer.sign(message) + message


# -- the good domain ----------------------------------------------------------------------


def test_a_good_domain_has_no_errors_or_warnings_and_exits_0(
    capsys: pytest.CaptureFixture[str],
    dns: DnsServer,
    https: tuple[int, Path],
    good_key: rsa.RSAPrivateKey,
    tmp_path: Path,
) -> None:
    """Every check of a well-configured domain, message and sending address is ok."""
    eml = tmp_path / "m.eml"
    eml.write_bytes(message_for(good_key))

    status, report = check(
        capsys,
        dns,
        https,
        "good.test",
        "--selector",
        "s1",
        "--message",
        str(eml),
        "--ip",
        "127.0.0.1",
    )

    assert status == 0
    assert report["domain"] == "good.test"
    assert report["summary"] == {
        "error": 0,
        "warning": 0,
        "info": 0,
        "ok": len(report["findings"]),
    }
    checks = {f["check"] for f in report["findings"]}
    assert {
        "spf.record",
        "spf.lookups",
        "spf.void",
        "spf.all",
        "dkim.key",
        "dkim.key-size",
        "dmarc.record",
        "dmarc.policy",
        "dmarc.external",
        "mx.records",
        "mta-sts.record",
        "mta-sts.policy",
        "mta-sts.mx",
        "tls-rpt.record",
        "bulk.dkim",
        "bulk.dkim-aligned",
        "bulk.spf-aligned",
        "bulk.list-unsubscribe",
        "bulk.one-click",
        "bulk.unsubscribe-signed",
        "bulk.fcrdns",
        "bulk.spf-ip",
    } <= checks
    [lookups] = by_check(report, "spf.lookups")
    assert lookups["details"]["lookups"] == 2


def test_json_findings_have_the_documented_shape(
    capsys: pytest.CaptureFixture[str], dns: DnsServer, https: tuple[int, Path]
) -> None:
    """Each finding has check, severity, message, fix and details; the summary counts them."""
    _, report = check(capsys, dns, https, "good.test")

    assert set(report) == {"domain", "findings", "summary"}
    for finding in report["findings"]:
        assert set(finding) == {"check", "severity", "message", "fix", "details"}
        assert finding["severity"] in ("error", "warning", "info", "ok")
        assert isinstance(finding["details"], dict)
        assert (finding["fix"] is None) == (finding["severity"] == "ok")
    counted = {s: sum(f["severity"] == s for f in report["findings"]) for s in report["summary"]}
    assert counted == report["summary"]
    assert severities(report, "bulk.message") == {"info"}
    assert severities(report, "bulk.ip") == {"info"}
    assert severities(report, "dkim.selectors") == {"info"}


def test_text_output_groups_findings_and_shows_fixes(
    capsys: pytest.CaptureFixture[str], dns: DnsServer
) -> None:
    """Without --json the report has area headings, severities and fix lines."""
    status = main(["check", "plusall.test", "--nameserver", dns.nameserver])
    out = capsys.readouterr().out

    assert status == 1
    assert out.startswith("mailwright check plusall.test\n")
    assert "\nSPF\n" in out
    assert "\nDMARC\n" in out
    assert "  error    the record of plusall.test ends with '+all'" in out
    assert "           fix: end the record with '-all'" in out
    summary = out.rstrip().splitlines()[-1]
    assert re.fullmatch(r"\d+ errors?, \d+ warnings?, \d+ info, \d+ ok", summary)


# -- SPF ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "check_id"),
    [
        ("lookups.test", "spf.lookups"),
        ("void.test", "spf.void"),
        ("loop.test", "spf.loop"),
        ("multi.test", "spf.multiple"),
        ("plusall.test", "spf.all"),
    ],
)
def test_each_spf_fault_is_an_error_with_a_fix(
    capsys: pytest.CaptureFixture[str],
    dns: DnsServer,
    https: tuple[int, Path],
    domain: str,
    check_id: str,
) -> None:
    """Too many lookups, void lookups, loops, two records and +all each fail the check."""
    status, report = check(capsys, dns, https, domain)

    assert status == 1
    [finding] = [f for f in by_check(report, check_id) if f["severity"] == "error"]
    assert finding["fix"]
    assert domain in finding["message"]


def test_lookup_and_void_counts_are_reported(
    capsys: pytest.CaptureFixture[str], dns: DnsServer, https: tuple[int, Path]
) -> None:
    """The counts are in the details: 11 lookups, 3 void lookups."""
    _, many = check(capsys, dns, https, "lookups.test")
    _, void = check(capsys, dns, https, "void.test")

    assert by_check(many, "spf.lookups")[0]["details"]["lookups"] == 11
    assert by_check(void, "spf.void")[0]["details"]["void_lookups"] == 3


# -- DKIM -----------------------------------------------------------------------------------


def test_weak_revoked_and_missing_keys_are_reported(
    capsys: pytest.CaptureFixture[str], dns: DnsServer, https: tuple[int, Path]
) -> None:
    """512-bit is an error, 1024-bit a warning, a missing key an error, a revoked one info."""
    status, report = check(
        capsys,
        dns,
        https,
        "weak.test",
        "--selector",
        "s512",
        "--selector",
        "s1024",
        "--selector",
        "gone",
        "--selector",
        "rev",
    )

    assert status == 1
    sizes = {f["details"]["selector"]: f["severity"] for f in by_check(report, "dkim.key-size")}
    assert sizes == {"s512": "error", "s1024": "warning"}
    keys = {f["details"]["selector"]: f["severity"] for f in by_check(report, "dkim.key")}
    assert keys["gone"] == "error"
    assert severities(report, "dkim.revoked") == {"info"}


def test_a_revoked_key_alone_is_an_error(
    capsys: pytest.CaptureFixture[str], dns: DnsServer, https: tuple[int, Path]
) -> None:
    """When the only selector given is revoked, the domain has no usable key."""
    _, report = check(capsys, dns, https, "weak.test", "--selector", "rev")

    assert severities(report, "dkim.revoked") == {"error"}


# -- DMARC ----------------------------------------------------------------------------------


def test_an_invalid_dmarc_policy_is_an_error(
    capsys: pytest.CaptureFixture[str], dns: DnsServer, https: tuple[int, Path]
) -> None:
    """p=bogus is discarded by receivers, which then apply p=none."""
    _, report = check(capsys, dns, https, "dsyntax.test")

    [syntax] = by_check(report, "dmarc.syntax")
    assert syntax["severity"] == "error"
    assert "bogus" in syntax["message"]
    assert severities(report, "dmarc.policy") == {"warning"}


def test_an_unauthorised_external_rua_names_the_record_to_publish(
    capsys: pytest.CaptureFixture[str], dns: DnsServer, https: tuple[int, Path]
) -> None:
    """A third-party rua without its _report._dmarc record is an error; with it, ok."""
    _, bad = check(capsys, dns, https, "ext.test")
    _, good = check(capsys, dns, https, "good.test")

    [finding] = by_check(bad, "dmarc.external")
    assert finding["severity"] == "error"
    assert "ext.test._report._dmarc.thirdparty.test" in finding["fix"]
    assert severities(good, "dmarc.external") == {"ok"}


def test_a_dns_failure_is_a_finding_not_a_traceback(
    capsys: pytest.CaptureFixture[str], dns: DnsServer, https: tuple[int, Path]
) -> None:
    """SERVFAIL for _dmarc becomes an error saying the record could not be checked."""
    status, report = check(capsys, dns, https, "broken.test")

    assert status == 1
    [finding] = by_check(report, "dmarc.dns")
    assert finding["severity"] == "error"
    assert "could not be checked" in finding["message"]


# -- MX and MTA-STS -------------------------------------------------------------------------


def test_a_null_mx_is_info_and_skips_mta_sts(
    capsys: pytest.CaptureFixture[str], dns: DnsServer, https: tuple[int, Path]
) -> None:
    """A null MX says the domain takes no mail; MTA-STS then does not apply."""
    _, report = check(capsys, dns, https, "nullmx.test")

    [null] = by_check(report, "mx.null")
    assert null["severity"] == "info"
    assert "RFC 7505" in null["message"]
    assert "does not apply" in by_check(report, "mta-sts.record")[0]["message"]


def test_an_mx_pointing_at_a_cname_is_an_error(
    capsys: pytest.CaptureFixture[str], dns: DnsServer, https: tuple[int, Path]
) -> None:
    """The MX target alias.cname.test is a CNAME; the fix names its target."""
    status, report = check(capsys, dns, https, "cname.test")

    assert status == 1
    [finding] = by_check(report, "mx.cname")
    assert finding["severity"] == "error"
    assert "real.cname.test" in finding["fix"]


def test_an_mta_sts_policy_missing_an_mx_host_is_an_error(
    capsys: pytest.CaptureFixture[str], dns: DnsServer, https: tuple[int, Path]
) -> None:
    """In enforce mode an MX host no pattern matches would receive no mail."""
    _, report = check(capsys, dns, https, "stsbad.test")

    assert severities(report, "mta-sts.policy") == {"ok"}
    [finding] = by_check(report, "mta-sts.mx")
    assert finding["severity"] == "error"
    assert finding["details"]["unmatched"] == ["mail.stsbad.test"]


def test_an_unreachable_mta_sts_policy_is_an_error(
    capsys: pytest.CaptureFixture[str], dns: DnsServer, https: tuple[int, Path]
) -> None:
    """The policy host answers on no address: the finding says it could not be fetched."""
    _, report = check(capsys, dns, https, "stsdown.test")

    [finding] = by_check(report, "mta-sts.policy")
    assert finding["severity"] == "error"
    assert "could not be fetched" in finding["message"]


def test_an_untrusted_certificate_fails_the_policy_fetch(
    capsys: pytest.CaptureFixture[str], dns: DnsServer, https: tuple[int, Path]
) -> None:
    """Without --ca-file the test certificate is not trusted, as senders would not trust it."""
    port, _ = https
    status = main(
        ["check", "good.test", "--json", "--nameserver", dns.nameserver, "--https-port", str(port)]
    )
    report = json.loads(capsys.readouterr().out)

    assert status == 1
    [finding] = by_check(report, "mta-sts.policy")
    assert "TLS failed" in finding["message"]


# -- bulk senders ---------------------------------------------------------------------------


def test_a_message_without_one_click_post_fails(
    capsys: pytest.CaptureFixture[str],
    dns: DnsServer,
    https: tuple[int, Path],
    good_key: rsa.RSAPrivateKey,
    tmp_path: Path,
) -> None:
    """List-Unsubscribe without List-Unsubscribe-Post is an error."""
    eml = tmp_path / "m.eml"
    eml.write_bytes(message_for(good_key, one_click=False))

    status, report = check(capsys, dns, https, "good.test", "--message", str(eml))

    assert status == 1
    assert severities(report, "bulk.one-click") == {"error"}
    assert severities(report, "bulk.list-unsubscribe") == {"ok"}
    assert severities(report, "bulk.dkim-aligned") == {"ok"}


def test_an_unsigned_message_fails(
    capsys: pytest.CaptureFixture[str], dns: DnsServer, https: tuple[int, Path], tmp_path: Path
) -> None:
    """No DKIM signature: bulk.dkim is an error and the unsubscribe fields are unsigned."""
    eml = tmp_path / "m.eml"
    eml.write_bytes(message_for(None))

    status, report = check(capsys, dns, https, "good.test", "--message", str(eml))

    assert status == 1
    assert severities(report, "bulk.dkim") == {"error"}
    assert severities(report, "bulk.unsubscribe-signed") == {"error"}


def test_an_address_without_forward_confirmed_reverse_dns_fails(
    capsys: pytest.CaptureFixture[str], dns: DnsServer, https: tuple[int, Path]
) -> None:
    """127.0.0.3's PTR name has no A record, and SPF does not list the address."""
    status, report = check(capsys, dns, https, "good.test", "--ip", "127.0.0.3")

    assert status == 1
    [reverse] = by_check(report, "bulk.fcrdns")
    assert reverse["severity"] == "error"
    assert reverse["details"]["names"] == ["nowhere.good.test"]
    assert severities(report, "bulk.spf-ip") == {"error"}


# -- the command ----------------------------------------------------------------------------


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str], dns: DnsServer) -> None:
    """A name that is no domain, or a bad --ip, is a usage error."""
    assert main(["check", "localhost", "--nameserver", dns.nameserver]) == 2
    assert main(["check", "good.test", "--ip", "nope", "--nameserver", dns.nameserver]) == 2
    assert "mailwright: " in capsys.readouterr().err


def test_the_console_command_runs_check(dns: DnsServer) -> None:
    """``python -m mailwright check`` is wired up and exits 1 on errors."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailwright",
            "check",
            "multi.test",
            "--json",
            "--nameserver",
            dns.nameserver,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert severities(report, "spf.multiple") == {"error"}
