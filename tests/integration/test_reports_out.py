"""DMARC aggregate reports out, end to end: store, scheduler, real DNS, spool (RFC 9990).

Evaluations of two days go into a real SQLite store; the reporter runs on a
virtual clock; destinations are verified against a real DNS server on
loopback that authorises some external report consumers and not others.
Every report written is checked against the RFC 9990 schema and parsed
back by parsedmarc, field by field, against values written out here.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import gzip
import logging
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from tests.dmarc_reports import DAY, DAY0, Clock, parse_back, validate
from tests.dnsserver import DnsServer

from mailwright.config import DmarcConfig
from mailwright.dns.queries import CachingResolver
from mailwright.dns.resolver import make_resolver
from mailwright.envelope import Envelope
from mailwright.reports.evaluations import EvaluationStore
from mailwright.reports.model import (
    NAMESPACE,
    DkimAuth,
    Evaluation,
    OverrideReason,
    PolicyPublished,
    Row,
    SpfAuth,
)
from mailwright.reports.schedule import AggregateReporter
from mailwright.smtp.replies import Reply
from mailwright.spool import Spool

pytestmark = pytest.mark.integration

HOSTNAME = "mx.receiver.test"
REPORT_FROM = "dmarc-reports@receiver.test"

EXAMPLE_RUA = (
    "mailto:dmarc@example.com",
    "mailto:agg@vendor.example",  # external, authorised
    "mailto:x@unauthorised.example",  # external, no agreement record
    "https://example.com/reports",  # not supported
)
ORG_RUA = (
    "mailto:tiny@vendor.example!100",  # authorised, but the report is bigger than 100 octets
    "mailto:agg@vendor.example",
)

ZONES: dict[str, list[tuple[str, Any]]] = {
    "_dmarc.example.com": [("TXT", "v=DMARC1; p=reject; rua=" + ",".join(EXAMPLE_RUA))],
    "_dmarc.example.org": [("TXT", "v=DMARC1; p=quarantine; rua=" + ",".join(ORG_RUA))],
    "_dmarc.vendor.example": [("TXT", "v=DMARC1; p=none")],
    "example.com._report._dmarc.vendor.example": [("TXT", "v=DMARC1")],
    "example.org._report._dmarc.vendor.example": [("TXT", "v=DMARC1;")],
    "_dmarc.unauthorised.example": [("TXT", "v=DMARC1; p=none")],
    "unauthorised.example": [("A", "192.0.2.200")],
}

EXAMPLE_POLICY = PolicyPublished(domain="example.com", p="reject", discovery_method="treewalk")
ORG_POLICY = PolicyPublished(domain="example.org", p="quarantine", sp="none", adkim="s")


def clean_row(ip: str) -> Row:
    """Aligned DKIM and SPF passes for example.com."""
    return Row(
        source_ip=ip,
        count=1,
        disposition="none",
        dkim="pass",
        spf="pass",
        header_from="example.com",
        envelope_from="example.com",
        envelope_to="receiver.test",
        dkim_results=(DkimAuth("example.com", "pass", "s2026"),),
        spf_results=(SpfAuth("example.com", "pass"),),
    )


SPOOFED = Row(
    source_ip="198.51.100.20",
    count=1,
    disposition="reject",
    dkim="fail",
    spf="fail",
    header_from="example.com",
    envelope_from="spoofer.example",
    envelope_to="receiver.test",
    spf_results=(SpfAuth("spoofer.example", "fail", human_result="-all"),),
)
OVERRIDDEN = Row(
    source_ip="2001:db8::30",
    count=1,
    disposition="none",
    dkim="fail",
    spf="fail",
    header_from="news.example.com",
    envelope_from="",
    envelope_to="receiver.test",
    reasons=(OverrideReason("local_policy", "allow-listed sender"),),
    dkim_results=(DkimAuth("news.example.com", "fail", "s1", human_result="body hash"),),
    spf_results=(SpfAuth("mx.news.example.com", "none"),),
)
LISTED = Row(
    source_ip="203.0.113.5",
    count=1,
    disposition="quarantine",
    dkim="fail",
    spf="fail",
    header_from="example.org",
    envelope_from="lists.example.net",
    envelope_to="receiver.test",
    reasons=(OverrideReason("mailing_list", "lists.example.net"),),
    dkim_results=(
        DkimAuth("lists.example.net", "pass", "list"),
        DkimAuth("example.org", "fail", "k1"),
    ),
    spf_results=(SpfAuth("lists.example.net", "pass"),),
)


def day0_evaluations() -> list[Evaluation]:
    """Day 0: 5 clean + 2 spoofed + 1 overridden for example.com; 3 listed for example.org."""
    evaluations = []
    for second in range(5):
        evaluations.append(Evaluation(DAY0 + 60 + second, EXAMPLE_POLICY, clean_row("192.0.2.10")))
    for second in range(2):
        evaluations.append(Evaluation(DAY0 + 3600 + second, EXAMPLE_POLICY, SPOOFED))
    evaluations.append(Evaluation(DAY0 + 7200, EXAMPLE_POLICY, OVERRIDDEN))
    for second in range(3):
        evaluations.append(Evaluation(DAY0 + 40000 + second, ORG_POLICY, LISTED))
    return [_with_rua(e) for e in evaluations]


def day1_evaluations() -> list[Evaluation]:
    """Day 1: 4 clean messages from a second source, for example.com only."""
    return [
        _with_rua(Evaluation(DAY0 + DAY + 10 * n, EXAMPLE_POLICY, clean_row("192.0.2.11")))
        for n in range(4)
    ]


def _with_rua(evaluation: Evaluation) -> Evaluation:
    rua = EXAMPLE_RUA if evaluation.policy.domain == "example.com" else ORG_RUA
    return Evaluation(evaluation.received_at, evaluation.policy, evaluation.row, rua=rua)


# --- Fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def dns(dns_server: Callable[..., DnsServer]) -> DnsServer:
    return dns_server(ZONES)


@pytest.fixture
def resolver(dns: DnsServer) -> CachingResolver:
    return CachingResolver(make_resolver([dns.nameserver], timeout=0.5, lifetime=2.0))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EvaluationStore]:
    opened = EvaluationStore(tmp_path / "var" / "dmarc.db")
    await opened.start()
    yield opened
    await opened.close()


class Captured:
    """A stand-in for MtaHandler.inject that keeps what it was given."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.messages: list[tuple[float, Envelope, bytes]] = []

    async def __call__(self, envelope: Envelope, content: bytes) -> Reply:
        self.messages.append((self.clock(), envelope, content))
        return Reply(250, "2.0.0", f"Ok: queued as Q{len(self.messages)}")


def reporter(
    store: EvaluationStore,
    resolver: CachingResolver,
    inject: Callable[[Envelope, bytes], Any],
    clock: Clock,
) -> AggregateReporter:
    config = DmarcConfig(report_from=REPORT_FROM, report_org_name="receiver.test")
    return AggregateReporter(
        store, resolver, inject, config, hostname=HOSTNAME, clock=clock, sleep=clock.sleep
    )


def unpack(content: bytes) -> tuple[EmailMessage, str, bytes]:
    """The message, its attachment's file name and the decompressed XML."""
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    [attachment] = [p for p in message.walk() if p.get_content_type() == "application/gzip"]
    payload = attachment.get_payload(decode=True)
    assert isinstance(payload, bytes)
    filename = attachment.get_filename()
    assert filename is not None
    return message, filename, gzip.decompress(payload)


def record_fields(parsed: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Each parsed record as (ip, count, disposition, dkim, spf, reasons, header_from,
    envelope_from, dkim results, spf results), in report order."""
    return [
        (
            r["source"]["ip_address"],
            r["count"],
            r["policy_evaluated"]["disposition"],
            r["policy_evaluated"]["dkim"],
            r["policy_evaluated"]["spf"],
            [(x["type"], x["comment"]) for x in r["policy_evaluated"]["policy_override_reasons"]],
            r["identifiers"]["header_from"],
            r["identifiers"]["envelope_from"],
            [(d["domain"], d["selector"], d["result"]) for d in r["auth_results"]["dkim"]],
            [(s["domain"], s["scope"], s["result"]) for s in r["auth_results"]["spf"]],
        )
        for r in parsed["records"]
    ]


# --- The tests ----------------------------------------------------------------------------------


async def test_two_days_through_the_scheduler_give_three_verified_reports(
    store: EvaluationStore,
    resolver: CachingResolver,
    dns: DnsServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Day 0 gives a report per policy domain, day 1 one more; each to its authorised rua."""
    for evaluation in day0_evaluations() + day1_evaluations():
        store.add(evaluation)
    clock = Clock(DAY0 + DAY - 3600, stop_at=DAY0 + 2 * DAY + 300)
    captured = Captured(clock)
    task = asyncio.create_task(reporter(store, resolver, captured, clock).run())

    with caplog.at_level(logging.INFO, logger="mailwright.dmarc"):
        await clock.until_parked()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    sent = [(at, env, *unpack(content)) for at, env, content in captured.messages]
    assert [(at, [r.address for r in env.recipients]) for at, env, *_ in sent] == [
        (DAY0 + DAY + 300, ["dmarc@example.com", "agg@vendor.example"]),
        (DAY0 + DAY + 300, ["agg@vendor.example"]),
        (DAY0 + 2 * DAY + 300, ["dmarc@example.com", "agg@vendor.example"]),
    ]
    for _, envelope, message, filename, xml in sent:
        validate(xml)
        assert envelope.sender == REPORT_FROM
        assert envelope.listener == "reports"
        assert message["From"] == REPORT_FROM
        assert filename.startswith(f"{HOSTNAME}!")
        assert filename.endswith(".xml.gz")
    begin0, begin1 = int(DAY0), int(DAY0 + DAY)
    assert [filename.split("!")[:4] for *_, filename, _ in sent] == [
        [HOSTNAME, "example.com", str(begin0), str(begin1 - 1)],
        [HOSTNAME, "example.org", str(begin0), str(begin1 - 1)],
        [HOSTNAME, "example.com", str(begin1), str(begin1 + int(DAY) - 1)],
    ]

    example0, org0, example1 = (parse_back(xml) for *_, xml in sent)
    assert record_fields(example0) == [
        (
            "192.0.2.10", 5, "none", "pass", "pass", [], "example.com", "example.com",
            [("example.com", "s2026", "pass")], [("example.com", "mfrom", "pass")],
        ),
        (
            "198.51.100.20", 2, "reject", "fail", "fail", [], "example.com", "spoofer.example",
            [], [("spoofer.example", "mfrom", "fail")],
        ),
        (
            "2001:db8::30", 1, "none", "fail", "fail",
            # parsedmarc fills an empty envelope_from in from the SPF domain
            [("local_policy", "allow-listed sender")], "news.example.com", "mx.news.example.com",
            [("news.example.com", "s1", "fail")], [("mx.news.example.com", "mfrom", "none")],
        ),
    ]  # fmt: skip
    assert record_fields(org0) == [
        (
            "203.0.113.5", 3, "quarantine", "fail", "fail",
            [("mailing_list", "lists.example.net")], "example.org", "lists.example.net",
            [("lists.example.net", "list", "pass"), ("example.org", "k1", "fail")],
            [("lists.example.net", "mfrom", "pass")],
        ),
    ]  # fmt: skip
    assert [(r[0], r[1]) for r in record_fields(example1)] == [("192.0.2.11", 4)]
    null_path = ET.fromstring(sent[0][-1]).findall(f".//{{{NAMESPACE}}}envelope_from")[2]
    assert null_path.text is None  # written empty: the message had a null reverse-path

    assert example0["policy_published"]["p"] == "reject"
    assert org0["policy_published"]["p"] == "quarantine"
    assert org0["policy_published"]["sp"] == "none"
    assert org0["policy_published"]["adkim"] == "s"
    for parsed, begin in (
        (example0, "2026-03-02"),
        (org0, "2026-03-02"),
        (example1, "2026-03-03"),
    ):
        assert parsed["report_metadata"]["org_name"] == "receiver.test"
        assert parsed["report_metadata"]["org_email"] == REPORT_FROM
        assert parsed["report_metadata"]["begin_date"] == f"{begin} 00:00:00"
        assert parsed["report_metadata"]["end_date"] == f"{begin} 23:59:59"

    assert dns.queries_for("example.com._report._dmarc.vendor.example", "TXT")
    assert dns.queries_for("example.com._report._dmarc.unauthorised.example", "TXT")
    assert "uri=mailto:x@unauthorised.example verdict=refused" in caplog.text
    assert "uri=https://example.com/reports verdict=refused" in caplog.text
    assert "uri=mailto:tiny@vendor.example!100 verdict=refused" in caplog.text
    assert "exceeds the !size limit of 100" in caplog.text
    assert caplog.text.count("dmarc.report_sent ") == 3
    assert await store.pending(DAY0 + 3 * DAY) == []


async def test_subject_and_message_id_carry_the_report_id(
    store: EvaluationStore, resolver: CachingResolver
) -> None:
    """Subject follows RFC 9990's ABNF; Message-ID and the XML's report_id agree."""
    for evaluation in day0_evaluations()[:5]:
        store.add(evaluation)
    clock = Clock(DAY0 + DAY + 600)
    captured = Captured(clock)

    [outcome] = await reporter(store, resolver, captured, clock).report(DAY0 + DAY, send=True)

    [(_, _, content)] = captured.messages
    message, filename, xml = unpack(content)
    report_id = outcome.report_id
    assert parse_back(xml)["report_metadata"]["report_id"] == report_id.split("@")[0]
    assert message["Message-ID"] == f"<{report_id}>"
    assert str(message["Subject"]) == (
        f"Report Domain: example.com Submitter: receiver.test Report-ID: <{report_id}>"
    )
    assert filename.removesuffix(".xml.gz").split("!")[4] == report_id.split(".")[1]


async def test_reports_land_in_a_real_spool(
    store: EvaluationStore, resolver: CachingResolver, tmp_path: Path
) -> None:
    """With Spool.store as inject the report is on disk; a dry run built the same XML."""
    for evaluation in day0_evaluations():
        store.add(evaluation)
    clock = Clock(DAY0 + DAY + 600)
    spool = Spool(tmp_path / "spool", fsync=False, min_free_bytes=0, clock=clock)
    await spool.open()
    queued: list[str] = []

    async def inject(envelope: Envelope, content: bytes) -> Reply:
        queued.append(await spool.store(envelope, content))
        return Reply(250, "2.0.0", f"Ok: queued as {queued[-1]}")

    dry = await reporter(store, resolver, inject, clock).report(DAY0 + DAY, send=False)
    sent = await reporter(store, resolver, inject, clock).report(DAY0 + DAY, send=True)
    await spool.close()

    assert [o.status for o in dry] == ["built", "built"]
    assert [o.status for o in sent] == ["sent", "sent"]
    assert len(queued) == 2
    reopened = Spool(tmp_path / "spool", fsync=False, min_free_bytes=0, clock=clock)
    await reopened.open()
    try:
        details = [await reopened.get_message(queue_id) for queue_id in queued]
    finally:
        await reopened.close()
    for detail, built in zip(details, dry, strict=True):
        _, _, xml = unpack(detail.content)
        assert xml == built.xml
        validate(xml)
        assert detail.envelope.sender == REPORT_FROM
        assert detail.envelope.listener == "reports"
    assert [r.address for r in details[0].envelope.recipients] == [
        "dmarc@example.com",
        "agg@vendor.example",
    ]
    assert [r["count"] for r in parse_back(unpack(details[0].content)[2])["records"]] == [5, 2, 1]
    assert [r["count"] for r in parse_back(unpack(details[1].content)[2])["records"]] == [3]


async def test_a_dns_outage_defers_then_a_later_run_sends(
    store: EvaluationStore, resolver: CachingResolver, dns: DnsServer
) -> None:
    """SERVFAIL on the agreement name keeps the report; once DNS heals, it is sent."""
    for evaluation in day0_evaluations()[8:]:  # example.org only: its rua is all external
        store.add(evaluation)
    dns.fail("example.org._report._dmarc.vendor.example", "servfail")
    clock = Clock(DAY0 + DAY + 600)
    captured = Captured(clock)

    [deferred] = await reporter(store, resolver, captured, clock).report(DAY0 + DAY, send=True)
    dns.heal("example.org._report._dmarc.vendor.example")
    [sent] = await reporter(store, resolver, captured, clock).report(DAY0 + DAY, send=True)

    assert deferred.status == "deferred"
    assert sent.status == "sent"
    assert sent.report_id == deferred.report_id
    assert [r.address for r in captured.messages[0][1].recipients] == ["agg@vendor.example"]
