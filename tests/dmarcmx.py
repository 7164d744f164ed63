"""A DMARC-enforcing MX for end-to-end tests: DNS zones, messages, the running server.

Shared by tests/integration/test_e2e_dmarc.py (enforcement) and
test_e2e_dmarc_reports.py (the reports both ways). The zones give each
sending domain an SPF record naming :data:`SENDER_IP`, a DKIM key
(selector ``s1``) and a DMARC record; clients bind to distinct 127.0.0.0/8
addresses so those records can name them.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import smtplib
import time
from dataclasses import dataclass
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailwright.auth.arc import Sealed
from mailwright.auth.dkim import Signer, format_key_record
from tests import arcchains
from tests.dnsserver import DnsServer
from tests.peers import MailwrightProcess, SmtpSink

INBOX = "var/mail/example.test/user/new"
QUARANTINE = "var/quarantine/example.test/user/new"

HOST = "mx.example.test"
SENDER_IP = "127.0.0.21"  # named by the SPF records of the sending domains
LIST_IP = "127.0.0.40"  # the mailing list's server
ALLOWED_IP = "127.0.0.50"  # in [dmarc] allow_ips
STRANGER_IP = "127.0.0.99"  # named by no SPF record

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_KEY_PEM = _KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.TraditionalOpenSSL,
    serialization.NoEncryption(),
)


def sending_domain(name: str, dmarc: str) -> dict[str, list[tuple[str, object]]]:
    return {
        name: [("A", "192.0.2.10"), ("TXT", f"v=spf1 ip4:{SENDER_IP} -all")],
        f"_dmarc.{name}": [("TXT", dmarc)],
        f"s1._domainkey.{name}": [("TXT", format_key_record(_KEY))],
    }


def zones() -> dict[str, list[tuple[str, object]]]:
    zones: dict[str, list[tuple[str, object]]] = {}
    zones.update(
        sending_domain(
            "reject.test",
            "v=DMARC1; p=reject; rua=mailto:agg@reject.test; ruf=mailto:ruf@reject.test; fo=1",
        )
    )
    # Where reports about reject.test go: an MX on loopback ([delivery] port picks the sink).
    zones["reject.test"].append(("MX", "10 mx.reject.test."))
    zones["mx.reject.test"] = [("A", "127.0.0.1")]
    zones.update(sending_domain("quarantine.test", "v=DMARC1; p=quarantine"))
    zones.update(sending_domain("none.test", "v=DMARC1; p=none"))
    zones.update(sending_domain("testing.test", "v=DMARC1; p=reject; t=y"))
    zones.update(sending_domain("org.test", "v=DMARC1; p=none; sp=reject; np=quarantine"))
    zones["sub.org.test"] = [("A", "192.0.2.11")]
    zones.update(sending_domain("tempfail.test", "v=DMARC1; p=reject"))
    zones.update(sending_domain("slow.test", "v=DMARC1; p=reject"))
    zones["lists.example.org"] = [("TXT", f"v=spf1 ip4:{LIST_IP} -all")]
    zones["s._domainkey.lists.example.org"] = [("TXT", arcchains.record("lists.example.org"))]
    zones["s._domainkey.evil.example"] = [("TXT", arcchains.record("evil.example"))]
    return zones


def make_message(author: str, to: str = "user@example.test", subject: str = "Hello") -> bytes:
    return (
        f"From: Sender <{author}>\r\n"
        f"To: <{to}>\r\n"
        f"Subject: {subject}\r\n"
        "Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
        f"Message-ID: <{time.monotonic_ns()}@{author.rpartition('@')[2]}>\r\n"
        "\r\n"
        "Hello from the tests.\r\n"
    ).encode()


def dkimpy_signed(message: bytes, domain: str) -> bytes:
    signature = dkim.sign(
        message,
        b"s1",
        domain.encode(),
        _KEY_PEM,
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    return bytes(signature) + message


def mailwright_signed(message: bytes, domain: str) -> bytes:
    return Signer(domain=domain, selector="s1", key=_KEY).sign(message) + message


def through_list(original: bytes, sealer_domain: str | None) -> bytes:
    """What a mailing list sends on: a tagged subject and a footer (DKIM breaks), sealed."""
    head, _, body = original.partition(b"\r\n\r\n")
    head = head.replace(b"Subject: ", b"Subject: [list] ")
    changed = head + b"\r\nList-Id: <list.lists.example.org>\r\n\r\n" + body + b"-- \r\nfooter\r\n"
    if sealer_domain is None:
        return changed
    sealer = arcchains.sealer(sealer_domain)
    sealed = sealer.seal(
        changed,
        arcchains.validate(changed),
        results="dkim=pass header.d=reject.test; spf=pass smtp.mailfrom=reject.test",
        timestamp=int(time.time()),
    )
    assert isinstance(sealed, Sealed), sealed
    return b"".join(sealed.fields) + changed


@dataclass
class Mx:
    """The running server and what it delivers."""

    process: MailwrightProcess
    port: int
    dns: DnsServer
    root: Path
    sink: SmtpSink | None = None

    def send(
        self,
        message: bytes,
        *,
        ip: str = SENDER_IP,
        sender: str | None = None,
        rcpt: str = "user@example.test",
    ) -> tuple[int, bytes]:
        """Send one message; the end-of-data reply as (code, text)."""
        if sender is None:
            parsed = email.message_from_bytes(message)
            sender = email.utils.parseaddr(parsed["From"])[1]
        with smtplib.SMTP("127.0.0.1", self.port, source_address=(ip, 0), timeout=30) as client:
            client.ehlo(f"mail.{sender.rpartition('@')[2] or 'client.test'}")
            client.mail(sender)
            code, text = client.rcpt(rcpt)
            assert code == 250, (code, text)
            client.putcmd("DATA")
            code, text = client.getreply()
            assert code == 354
            client.send(message.replace(b"\r\n.", b"\r\n..") + b".\r\n")
            return client.getreply()


def config(
    port: int, nameserver: str, extra: str = "", dmarc: str = "", receivers: int = 1
) -> str:
    """The server's configuration; ``extra`` tables before ``[dmarc]``, ``dmarc`` keys in it."""
    return f"""
[server]
hostname = "{HOST}"
spool = "var/spool"
receivers = {receivers}
fsync = false

[dns]
nameservers = ["{nameserver}"]
timeout = "1s"

[[listener]]
role = "inbound"
address = "127.0.0.1:{port}"

[domains]
local = ["example.test", "monitor.example"]

{extra}

[queue]
retry_intervals = ["1s"]

[dmarc]
enforce = true
quarantine = "maildir:var/quarantine"
allow_ips = ["{ALLOWED_IP}/32"]
trusted_arc_sealers = ["lists.example.org"]
monitor_domains = ["monitor.example"]
sample_pct = false
{dmarc}
"""


def results(delivered: bytes) -> list[str]:
    parsed = email.message_from_bytes(delivered, policy=email.policy.compat32)
    return [" ".join(value.split()) for value in parsed.get_all("Authentication-Results", [])]


def ours(delivered: bytes) -> str:
    found = [value for value in results(delivered) if value.startswith(HOST + ";")]
    assert len(found) == 1, found
    return found[0]


def txt(mx: Mx, name: bytes) -> bytes | None:
    wanted = name.decode().rstrip(".")
    for owner, records in zones().items():
        if owner == wanted:
            return next(str(value).encode() for kind, value in records if kind == "TXT")
    return None


def inbox(mx: Mx) -> list[bytes]:
    path = mx.root / INBOX
    return [item.read_bytes() for item in path.glob("*")] if path.is_dir() else []


def wait_for(mx: Mx, marker: bytes, folder: str = INBOX) -> bytes:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        path = mx.root / folder
        for item in path.glob("*") if path.is_dir() else []:
            data = item.read_bytes()
            if marker in data:
                return data
        time.sleep(0.05)
    raise AssertionError(f"{marker!r} was not delivered to {folder}")
