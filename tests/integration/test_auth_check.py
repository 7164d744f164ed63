"""``mailwright auth check`` and ``authenticate()`` over a real DNS server, with authheaders.

The zones publish SPF, DKIM and DMARC records for ``example.com``; messages
are signed with our signer and checked by the real console script. For the
DKIM and DMARC words, authheaders (dkimpy and its DMARC code) is the oracle:
it is handed our SPF result as the previous Authentication-Results (its own
SPF check would go to the system's DNS) and reads the same records. The
domains are under .com and .net, in the public suffix list, because
authheaders finds Organizational Domains only through that list.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import authheaders
import pytest
from tests.conftest import RunCli
from tests.dnsserver import DnsServer

from mailwright.auth.authres import parse_results
from mailwright.auth.dkim import Signer, format_key_record, generate_private_key
from mailwright.auth.evaluate import authenticate
from mailwright.dns.queries import CachingResolver
from mailwright.dns.resolver import make_resolver

pytestmark = pytest.mark.integration

KEY = generate_private_key("ed25519")
RSA_KEY = generate_private_key("rsa", 2048)

ZONES: dict[str, list[tuple[str, object]]] = {
    "example.com": [("TXT", "v=spf1 ip4:127.0.0.10 -all"), ("MX", "10 mx.example.com.")],
    "_dmarc.example.com": [("TXT", "v=DMARC1; p=reject; rua=mailto:d@example.com")],
    "s1._domainkey.example.com": [("TXT", format_key_record(KEY))],
    "r1._domainkey.example.com": [("TXT", format_key_record(RSA_KEY))],
    "example.net": [("TXT", "v=spf1 ip4:127.0.0.20 ~all")],
    "_dmarc.example.net": [("TXT", "v=DMARC1; p=quarantine")],
}

BODY = (
    b"From: News <news@example.com>\r\n"
    b"To: reader@example.org\r\n"
    b"Subject: this week\r\n"
    b"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
    b"Message-ID: <week@example.com>\r\n"
    b"\r\n" + b"Lots of news.\r\n" * 40
)


def signed(message: bytes, key: object = KEY, selector: str = "s1", domain: str = "example.com"):
    signer = Signer(domain=domain, selector=selector, key=key)  # type: ignore[arg-type]
    return signer.sign(message) + message


def oracle(message: bytes, spf_field: str) -> dict[str, str]:
    """authheaders' DKIM and DMARC words, given our SPF result."""

    def lookup(name: bytes | str, timeout: int = 5) -> bytes | str:
        # dkimpy asks with bytes and wants bytes; authheaders' DMARC code uses str.
        text = name.decode() if isinstance(name, bytes) else name
        records = ZONES.get(text.rstrip("."), [])
        found = "".join(str(v) for t, v in records if t == "TXT")
        return found.encode() if isinstance(name, bytes) else found

    text = authheaders.authenticate_message(
        message,
        "mx.test",
        prev=spf_field,
        spf=False,
        dkim=True,
        dmarc=True,
        dmarcbis=True,
        dnsfunc=lookup,
    )
    parsed = parse_results(text.split(":", 1)[1])
    return {found.method: found.result for found in parsed.results}


@pytest.fixture
def zones(dns_server: Callable[..., DnsServer]) -> DnsServer:
    return dns_server(ZONES)


CASES = [
    # (name, message, client ip, mail from, expected spf, dkim, dmarc, disposition)
    ("aligned", signed(BODY), "127.0.0.10", "bounce@example.com", "pass", "pass", "pass", "none"),
    ("dkim only", signed(BODY), "127.0.0.99", "bounce@example.com", "fail", "pass", "pass",
     "none"),
    ("spf only", BODY, "127.0.0.10", "bounce@example.com", "pass", None, "pass", "none"),
    ("forged", BODY, "127.0.0.99", "bounce@example.com", "fail", None, "fail", "reject"),
    ("unaligned signature", signed(BODY, domain="example.net", selector="x"), "127.0.0.20",
     "bounce@example.net", "pass", "permerror", "fail", "reject"),
    ("rsa", signed(BODY, RSA_KEY, "r1"), "127.0.0.99", "", "none", "pass", "pass", "none"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("message", "ip", "mail_from", "spf", "dkim", "dmarc", "disposition"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_auth_check_json_agrees_with_authheaders(
    run_cli: RunCli,
    tmp_path: Path,
    zones: DnsServer,
    message: bytes,
    ip: str,
    mail_from: str,
    spf: str,
    dkim: str | None,
    dmarc: str,
    disposition: str,
) -> None:
    (tmp_path / "m.eml").write_bytes(message)
    result = run_cli(
        "auth", "check", "m.eml", "--ip", ip, "--helo", "mail.example.com",
        "--mail-from", mail_from, "--nameserver", zones.nameserver,
        "--authserv-id", "mx.test", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)

    assert data["spf"]["result"] == spf
    assert [signature["result"] for signature in data["dkim"]] == ([dkim] if dkim else [])
    assert data["arc"]["result"] == "none"
    assert data["dmarc"]["result"] == dmarc
    assert data["dmarc"]["disposition"] == disposition
    assert data["dmarc"]["policy"] == "reject"  # the From domain's p=, whatever happened

    field = parse_results(data["authentication_results"])
    assert field.authserv_id == "mx.test"
    words = {found.method: found.result for found in field.results}
    assert words["spf"] == spf
    assert words["dmarc"] == dmarc
    [dmarc_entry] = field.of("dmarc")
    assert dmarc_entry.get("header", "from") == "example.com"
    assert dmarc_entry.get("polrec", "p") == "reject"

    identity = mail_from or "mail.example.com"
    spf_field = f"Authentication-Results: mx.test; spf={spf} smtp.mailfrom={identity}"
    theirs = oracle(message, spf_field)
    if dkim is not None:
        assert theirs["dkim"] == ("pass" if dkim == "pass" else "fail")
    assert theirs["dmarc"] == dmarc


def test_auth_check_text_ends_with_the_header(
    run_cli: RunCli, tmp_path: Path, zones: DnsServer
) -> None:
    (tmp_path / "m.eml").write_bytes(signed(BODY))
    result = run_cli(
        "auth", "check", "m.eml", "--ip", "127.0.0.10", "--helo", "mail.example.com",
        "--mail-from", "bounce@example.com", "--nameserver", zones.nameserver,
        "--authserv-id", "mx.test", "--check-helo",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["spf", "pass"]
    assert lines[1].split()[:2] == ["spf", "none"]  # mail.example.com has no SPF record
    assert lines[2].split()[:3] == ["dkim", "pass", "d=example.com"]
    assert lines[3].split()[:2] == ["arc", "none"]
    assert lines[4].split()[:3] == ["dmarc", "pass", "policy=reject"]
    header_at = result.stdout.index("Authentication-Results: mx.test;")
    field = parse_results(result.stdout[header_at:].split(":", 1)[1])
    assert [found.method for found in field.results] == ["spf", "spf", "dkim", "arc", "dmarc"]
    assert field.results[1].get("smtp", "helo") == "mail.example.com"


async def test_dns_failure_is_temperror_not_an_exception(zones: DnsServer) -> None:
    zones.fail("_dmarc.example.com", "servfail")
    zones.fail("example.com", "servfail", "TXT")
    resolver = CachingResolver(make_resolver([zones.nameserver], timeout=1.0))
    verdict = await authenticate(
        resolver, signed(BODY), ip="127.0.0.10", helo="h.example.com", mail_from="a@example.com"
    )
    assert verdict.spf.result.value == "temperror"
    assert [signature.result.value for signature in verdict.dkim] == ["pass"]
    assert verdict.dmarc.result.value == "temperror"
    field = verdict.header_field("mx.test")
    assert field.startswith(b"Authentication-Results: mx.test;")
    assert field.endswith(b"\r\n")


def test_bad_ip_and_missing_file_are_clear_errors(run_cli: RunCli, tmp_path: Path) -> None:
    args = ("auth", "check", "--helo", "h", "--mail-from", "a@example.com")
    (tmp_path / "m.eml").write_bytes(BODY)
    bad_ip = run_cli(*args, "--ip", "300.1.1.1", "m.eml")
    assert bad_ip.returncode == 2
    assert "not an IPv4 or IPv6 address" in bad_ip.stderr
    missing = run_cli(*args, "--ip", "127.0.0.1", "nothing.eml")
    assert missing.returncode == 1
    assert "cannot read nothing.eml" in missing.stderr
    assert "Traceback" not in bad_ip.stderr + missing.stderr
