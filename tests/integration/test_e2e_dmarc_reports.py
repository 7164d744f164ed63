"""End to end: the DMARC reports a running server sends, and the ones it receives.

One server enforces DMARC with reports on. Mail from reject.test (which
asks for aggregate reports at ``agg@reject.test`` and failure reports at
``ruf@reject.test``, ``fo=1``) comes in; reject.test's MX is Postfix's
smtp-sink on loopback. Then:

* the failure report for the forged message arrives at the sink, redacted
  (no original local part, no body) and parseable by parsedmarc;
* ``mailwright dmarc report --send --now <tomorrow>`` (the virtual clock:
  the day is over) queues yesterday's aggregate report; the sink receives
  it DKIM-signed, and parsedmarc reads the gzipped XML back with the counts,
  dispositions and override reasons of what was sent;
* an aggregate report mailed to ``report_address`` is parsed and stored, and
  ``mailwright dmarc sources`` shows its figures.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import email.utils
import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path

import dkim
import parsedmarc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from tests.dmarcmx import (
    ALLOWED_IP,
    SENDER_IP,
    STRANGER_IP,
    Mx,
    config,
    dkimpy_signed,
    make_message,
    wait_for,
    zones,
)
from tests.dnsserver import DnsServer
from tests.peers import (
    MailwrightProcess,
    SinkMessage,
    SmtpSink,
    free_port,
    running,
    wait_for_listeners,
)
from tests.vectors import VECTORS

from mailwright.auth.dkim import format_key_record

pytestmark = [pytest.mark.integration, pytest.mark.postfix]

REPORTER_IP = "127.0.0.60"

#: The DKIM key records the server signs reports with, as published (filled by ``mx``).
KEY_RECORDS: dict[str, bytes] = {}
SAMPLE = (
    VECTORS
    / "reports"
    / "aggregate"
    / "parsedmarc-rfc9990-example.net_example.com_1700000000_1700086399.xml"
)


@pytest.fixture(scope="module")
def mx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mx]:
    """A reporting MX; reject.test's MX (where its reports go) is the sink."""
    root = tmp_path_factory.mktemp("dmarc-reports")
    key = ed25519.Ed25519PrivateKey.generate()
    (root / "example.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    records = zones()
    records["s2._domainkey.example.test"] = [("TXT", format_key_record(key))]
    KEY_RECORDS["s2._domainkey.example.test"] = format_key_record(key).encode()
    dns = DnsServer(records).start()
    sink = SmtpSink(root).start()
    port = free_port()
    extra = f"""
[delivery]
port = {sink.port}
tls = "none"

[[dkim.sign]]
domain = "example.test"
selector = "s2"
key = "example.key"
algorithm = "ed25519"
"""
    dmarc = """
report_address = "dmarc-reports@example.test"
report_from = "dmarc-noreply@example.test"
report_org_name = "Example Receiver"
failure_reports = true
"""
    process = MailwrightProcess(root, config(port, dns.nameserver, extra, dmarc))
    try:
        with running(process, ("127.0.0.1", port)):
            yield Mx(process, port, dns, root, sink)
    finally:
        sink.stop()
        dns.stop()


def _to(
    sink: SmtpSink, recipient: str, count: int = 1, timeout: float = 20.0
) -> list[SinkMessage]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in sink.messages() if recipient in m.recipients]
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"nothing for {recipient} at the sink")


@pytest.fixture(scope="module")
def traffic(mx: Mx) -> dict[str, int]:
    """The day's mail from reject.test: two passes, a rejection, an allow-listed failure."""
    replies = {}
    signed = dkimpy_signed(make_message("a@reject.test", subject="one"), "reject.test")
    replies["dkim pass"] = mx.send(signed, ip=STRANGER_IP)[0]
    replies["spf pass"] = mx.send(make_message("b@reject.test"), ip=SENDER_IP)[0]
    forged = make_message("ceo@reject.test", to="victim@example.test", subject="Pay now")
    replies["forged"] = mx.send(forged, ip=STRANGER_IP, rcpt="victim@example.test")[0]
    replies["allowed"] = mx.send(make_message("c@reject.test"), ip=ALLOWED_IP)[0]
    return replies


def test_the_days_mail_gets_the_expected_replies(traffic: dict[str, int]) -> None:
    """The traffic the reports describe: three accepted, the forgery refused."""
    assert traffic == {"dkim pass": 250, "spf pass": 250, "forged": 550, "allowed": 250}


def test_failure_report_is_sent_redacted(mx: Mx, traffic: dict[str, int]) -> None:
    """The forged message's failure report reaches ruf@, headers only, local parts hidden.

    fo=1 asks for a report whenever a mechanism failed to give an aligned
    pass, so the passing messages are reported too; the forged one is the
    report whose delivery result is reject.
    """
    assert mx.sink is not None
    deadline = time.monotonic() + 20
    rejected: list[dict[str, object]] = []
    while not rejected and time.monotonic() < deadline:
        for report in _to(mx.sink, "ruf@reject.test"):
            assert b"Pay now" not in report.content  # Subject removed, body never included
            assert b"ceo@" not in report.content
            assert b"victim@" not in report.content
            found = parsedmarc.parse_report_email(report.content, offline=True)
            assert found["report_type"] == "failure"
            if found["report"]["delivery_result"] == "reject":
                rejected.append(found["report"])
        time.sleep(0.1)
    [parsed] = rejected
    assert parsed["feedback_type"] == "auth-failure"
    assert parsed["source"]["ip_address"] == STRANGER_IP  # type: ignore[index]
    assert parsed["reported_domain"] == "reject.test"


def _attachment(message: bytes) -> tuple[str, bytes]:
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    for part in parsed.walk():
        if part.get_content_type() == "application/gzip":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return str(part.get_filename()), gzip.decompress(payload)
    raise AssertionError("no application/gzip part")


def test_next_days_aggregate_report_reaches_rua_and_parses(
    mx: Mx, traffic: dict[str, int]
) -> None:
    """With the clock a day on, the report is sent, signed, and parsedmarc reads our figures."""
    assert mx.sink is not None
    tomorrow = time.time() + 86400 + 3600
    done = mx.process.run("dmarc", "report", "--send", "--finished", "--now", str(tomorrow),
                          "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    outcome = json.loads(done.stdout)
    [sent] = [item for item in outcome["reports"] if item["domain"] == "reject.test"]
    assert (sent["status"], sent["messages"], sent["recipients"]) == (
        "sent", 4, ["agg@reject.test"],
    )  # fmt: skip

    [message] = _to(mx.sink, "agg@reject.test")
    assert message.sender == "dmarc-noreply@example.test"
    assert dkim.verify(
        message.content,
        dnsfunc=lambda name, timeout=5: KEY_RECORDS.get(name.decode().rstrip(".")),
    )
    subject = " ".join(email.message_from_bytes(message.content)["Subject"].split())
    assert subject.startswith("Report Domain: reject.test Submitter: ")

    filename, xml = _attachment(message.content)
    assert filename.startswith("mx.example.test!reject.test!")
    assert filename.endswith(".xml.gz")
    report = parsedmarc.parse_aggregate_report_xml(xml.decode(), offline=True)
    assert report["report_metadata"]["org_name"] == "Example Receiver"
    assert report["policy_published"]["domain"] == "reject.test"
    assert report["policy_published"]["p"] == "reject"
    rows = {
        (r["source"]["ip_address"], r["policy_evaluated"]["disposition"]): r
        for r in report["records"]
    }
    assert sum(r["count"] for r in report["records"]) == 4
    assert rows[(STRANGER_IP, "reject")]["count"] == 1
    assert rows[(SENDER_IP, "pass")]["policy_evaluated"]["spf"] == "pass"
    allowed = rows[(ALLOWED_IP, "none")]
    assert allowed["policy_evaluated"]["policy_override_reasons"] == [
        {"type": "local_policy", "comment": f"source {ALLOWED_IP} in allow_ips {ALLOWED_IP}/32"}
    ]

    again = mx.process.run("dmarc", "report", "--send", "--finished", "--now", str(tomorrow),
                           "--json")  # fmt: skip
    assert json.loads(again.stdout)["reports"] == []  # reported once, never twice


def _report_mail(xml: bytes) -> bytes:
    message = email.message.EmailMessage()
    message["From"] = "noreply-dmarc@reporter.test"
    message["To"] = "dmarc-reports@example.test"
    message["Subject"] = "Report Domain: example.com Submitter: example.net Report-ID: t1"
    message["Date"] = email.utils.formatdate()
    message["Message-ID"] = email.utils.make_msgid(domain="reporter.test")
    message.set_content("An aggregate report.")
    message.add_attachment(
        gzip.compress(xml), maintype="application", subtype="gzip", filename="report.xml.gz"
    )
    return message.as_bytes(policy=email.policy.SMTP)


def test_reports_sent_to_us_are_stored_and_summarised(mx: Mx, tmp_path: Path) -> None:
    """A report mailed to report_address is delivered and parsed; `sources` shows its figures."""
    code, text = mx.send(
        _report_mail(SAMPLE.read_bytes()),
        ip=REPORTER_IP,
        sender="noreply-dmarc@reporter.test",
        rcpt="dmarc-reports@example.test",
    )
    assert code == 250, text
    wait_for(mx, b"Report-ID: t1", "var/mail/example.test/dmarc-reports/new")

    done = mx.process.run("dmarc", "sources", "example.com", "--json")
    assert done.returncode == 0, done.stderr.decode()
    found = json.loads(done.stdout)
    assert (found["messages"], found["dmarc_pass"], found["dmarc_fail"]) == (7, 5, 2)
    by_ip = {source["source_ip"]: source for source in found["sources"]}
    assert by_ip["198.51.100.1"]["messages"] == 5
    assert by_ip["203.0.113.10"]["dispositions"] == {"reject": 2}
    assert by_ip["198.51.100.1"]["organisations"] == ["example.net"]


def test_two_receivers_record_into_one_report(tmp_path: Path) -> None:
    """Both receiving processes write the store; the report counts every message once."""
    dns = DnsServer(zones()).start()
    sink = SmtpSink(tmp_path).start()
    port = free_port()
    extra = f'[delivery]\nport = {sink.port}\ntls = "none"\n'
    dmarc = 'report_from = "dmarc-noreply@example.test"\nsend_reports = false\n'
    process = MailwrightProcess(tmp_path, config(port, dns.nameserver, extra, dmarc, receivers=2))
    try:
        with running(process, ("127.0.0.1", port)):
            wait_for_listeners(port, 2)
            mx = Mx(process, port, dns, tmp_path, sink)
            for number in range(24):  # the kernel spreads the connections over both
                signed = dkimpy_signed(make_message(f"n{number}@reject.test"), "reject.test")
                assert mx.send(signed, ip=STRANGER_IP)[0] == 250
            # No wait here: the command itself waits for the other process's buffer.
            done = process.run(
                "dmarc", "report", "--send", "--finished", "--now", str(time.time() + 90000),
                "--json",
            )  # fmt: skip
            assert done.returncode == 0, done.stderr.decode()
            [report] = json.loads(done.stdout)["reports"]
            assert (report["domain"], report["messages"], report["status"]) == (
                "reject.test", 24, "sent",
            )  # fmt: skip
            # Both processes served: each has a session prefix of its own.
            events = (tmp_path / "var/log/events.jsonl").read_text().splitlines()
            sessions = {
                json.loads(line)["session"][:6]  # a prefix of its own per process
                for line in events
                if '"received"' in line and '"inbound"' in line
            }
            assert len(sessions) == 2, "the connections all went to one receiver"
            [message] = _to(sink, "agg@reject.test")
            _, xml = _attachment(message.content)
            parsed = parsedmarc.parse_aggregate_report_xml(xml.decode(), offline=True)
            assert sum(record["count"] for record in parsed["records"]) == 24
    finally:
        sink.stop()
        dns.stop()
