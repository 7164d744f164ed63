"""Tests for mailwright.reports.schedule: the reporter, with a fake resolver and inject."""

from __future__ import annotations

import asyncio
import email
import email.policy
import gzip
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import dns.asyncresolver
import pytest
from tests.dmarc_reports import DAY, DAY0, Clock, evaluation, parse_back, policy, row, validate
from tests.dmarc_reports import zone_answers as zone

from mailwright.config import DmarcConfig
from mailwright.dns.queries import Answer, CachingResolver, Query
from mailwright.envelope import Envelope
from mailwright.reports.evaluations import EvaluationStore
from mailwright.reports.schedule import AggregateReporter
from mailwright.smtp.replies import Reply

QUEUED = Reply(250, "2.0.0", "Ok: queued as TEST")
RECORDS = {
    "_dmarc.example.com": ["v=DMARC1; p=reject"],
    "_dmarc.example.org": ["v=DMARC1; p=none"],
}


class FakeResolver(CachingResolver):
    """Answers from a function instead of DNS, and remembers what was asked."""

    def __init__(self, answer: Callable[[Query], Answer]) -> None:
        super().__init__(dns.asyncresolver.Resolver(configure=False), size=0)
        self.answer = answer
        self.asked: list[str] = []

    async def resolve(self, query: Query) -> Answer:
        self.asked.append(query.text)
        return self.answer(query)


class Inject:
    """Records the messages handed to it; answers with ``reply``."""

    def __init__(self, clock: Clock, reply: Reply = QUEUED) -> None:
        self.clock = clock
        self.reply = reply
        self.sent: list[tuple[float, Envelope, bytes]] = []

    async def __call__(self, envelope: Envelope, content: bytes) -> Reply:
        self.sent.append((self.clock(), envelope, content))
        return self.reply


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EvaluationStore]:
    opened = EvaluationStore(tmp_path / "dmarc.db")
    yield opened
    await opened.close()


def reporter(
    store: EvaluationStore,
    clock: Clock,
    inject: Inject,
    resolver: FakeResolver | None = None,
    **config: object,
) -> AggregateReporter:
    settings = DmarcConfig(report_from="dmarc-reports@mx.example.net", **config)  # type: ignore[arg-type]
    return AggregateReporter(
        store,
        resolver or FakeResolver(zone(RECORDS)),
        inject,
        settings,
        hostname="mx.example.net",
        clock=clock,
        sleep=clock.sleep,
        make_token=lambda: "t",
    )


def attachment_xml(content: bytes) -> bytes:
    message = email.message_from_bytes(content, policy=email.policy.default)
    for part in message.walk():
        if part.get_content_type() == "application/gzip":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return gzip.decompress(payload)
    raise AssertionError("no gzip attachment")


async def test_a_report_is_sent_to_verified_destinations_and_marked(
    store: EvaluationStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Pending rows become a report, queued through inject; the rows are then reported."""
    clock = Clock(DAY0 + DAY + 400)
    inject = Inject(clock)
    for second in range(3):
        store.add(evaluation(DAY0 + second))
    store.add(evaluation(DAY0 + 60, row("198.51.100.7", dkim="fail", spf="fail")))

    with caplog.at_level(logging.INFO, logger="mailwright.dmarc"):
        [outcome] = await reporter(store, clock, inject).report(DAY0 + DAY, send=True)

    assert outcome.status == "sent"
    assert outcome.recipients == ("dmarc@example.com",)
    [(_, envelope, content)] = inject.sent
    assert envelope.sender == "dmarc-reports@mx.example.net"
    assert [r.address for r in envelope.recipients] == ["dmarc@example.com"]
    xml = attachment_xml(content)
    assert xml == outcome.xml
    validate(xml)
    parsed = parse_back(xml)
    assert [(r["source"]["ip_address"], r["count"]) for r in parsed["records"]] == [
        ("192.0.2.1", 3),
        ("198.51.100.7", 1),
    ]
    assert await store.pending(DAY0 + DAY) == []
    assert "dmarc.report_sent domain=example.com" in caplog.text


async def test_a_dry_run_builds_but_neither_sends_nor_marks(store: EvaluationStore) -> None:
    """send=False returns built reports; inject is not called; rows stay pending."""
    clock = Clock(DAY0 + DAY + 400)
    inject = Inject(clock)
    store.add(evaluation(DAY0 + 1))

    [outcome] = await reporter(store, clock, inject).report(DAY0 + DAY, send=False)

    assert outcome.status == "built"
    assert outcome.recipients == ("dmarc@example.com",)
    assert inject.sent == []
    assert len(await store.pending(DAY0 + DAY)) == 1


async def test_a_report_nobody_may_receive_is_skipped_and_marked(
    store: EvaluationStore, caplog: pytest.LogCaptureFixture
) -> None:
    """An external destination without agreement: skipped, logged with the reason, marked."""
    clock = Clock(DAY0 + DAY + 400)
    inject = Inject(clock)
    store.add(evaluation(DAY0 + 1, rua=("mailto:victim@third-party.example",)))

    with caplog.at_level(logging.INFO, logger="mailwright.dmarc"):
        [outcome] = await reporter(store, clock, inject).report(DAY0 + DAY, send=True)

    assert outcome.status == "skipped"
    assert inject.sent == []
    assert await store.pending(DAY0 + DAY) == []
    assert "dmarc.report_destination_skipped domain=example.com" in caplog.text
    assert "example.com._report._dmarc.third-party.example" in caplog.text
    assert "dmarc.report_skipped" in caplog.text


async def test_a_transient_dns_failure_defers_the_report(store: EvaluationStore) -> None:
    """When the agreement cannot be looked up, the rows stay pending for the next run."""
    clock = Clock(DAY0 + DAY + 400)
    inject = Inject(clock)
    store.add(evaluation(DAY0 + 1, rua=("mailto:rua@vendor.example",)))
    failing = FakeResolver(zone(RECORDS, failing=["example.com._report._dmarc.vendor.example"]))

    [outcome] = await reporter(store, clock, inject, failing).report(DAY0 + DAY, send=True)

    assert outcome.status == "deferred"
    assert len(await store.pending(DAY0 + DAY)) == 1


async def test_a_refused_injection_leaves_the_rows_pending(store: EvaluationStore) -> None:
    """inject answering 452 fails the report; the next run sends it."""
    clock = Clock(DAY0 + DAY + 400)
    full = Inject(clock, Reply(452, "4.3.1", "Insufficient system storage"))
    store.add(evaluation(DAY0 + 1))

    [failed] = await reporter(store, clock, full).report(DAY0 + DAY, send=True)
    working = Inject(clock)
    [sent] = await reporter(store, clock, working).report(DAY0 + DAY, send=True)

    assert failed.status == "failed"
    assert "452" in failed.detail
    assert sent.status == "sent"
    assert sent.report_id == failed.report_id
    assert len(working.sent) == 1


async def test_an_invalid_report_is_logged_and_left_pending(
    store: EvaluationStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A word the schema does not allow is a bug upstream: logged at ERROR, nothing sent."""
    clock = Clock(DAY0 + DAY + 400)
    inject = Inject(clock)
    store.add(evaluation(DAY0 + 1, row(disposition="discard")))

    with caplog.at_level(logging.INFO, logger="mailwright.dmarc"):
        [outcome] = await reporter(store, clock, inject).report(DAY0 + DAY, send=True)

    assert outcome.status == "invalid"
    assert inject.sent == []
    assert any(
        r.levelno == logging.ERROR and "dmarc.report_invalid" in r.message for r in caplog.records
    )
    assert len(await store.pending(DAY0 + DAY)) == 1


async def test_one_report_per_policy_domain(store: EvaluationStore) -> None:
    """Evaluations for two policy domains give two reports, each to its own rua."""
    clock = Clock(DAY0 + DAY + 400)
    inject = Inject(clock)
    store.add(evaluation(DAY0 + 1))
    store.add(
        evaluation(
            DAY0 + 2,
            row(header_from="example.org"),
            published=policy("example.org", p="none"),
            rua=("mailto:agg@example.org",),
        )
    )

    outcomes = await reporter(store, clock, inject).report(DAY0 + DAY, send=True)

    assert [(o.report.policy.domain, o.recipients) for o in outcomes] == [
        ("example.com", ("dmarc@example.com",)),
        ("example.org", ("agg@example.org",)),
    ]


async def test_run_reports_each_period_after_its_grace_period(store: EvaluationStore) -> None:
    """With a virtual clock, two days of evaluations give two reports, each after its day."""
    clock = Clock(DAY0 + 10, stop_at=DAY0 + 2 * DAY + 300)
    inject = Inject(clock)
    store.add(evaluation(DAY0 + 100))
    store.add(evaluation(DAY0 + DAY + 100, row("192.0.2.50")))
    task = asyncio.create_task(reporter(store, clock, inject).run())

    await clock.until_parked()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # Started 10 s into a day: the grace period of the boundary just passed ends first.
    assert clock.sleeps == [290.0, DAY, DAY]
    assert [at for at, _, _ in inject.sent] == [DAY0 + DAY + 300, DAY0 + 2 * DAY + 300]
    first, second = (parse_back(attachment_xml(content)) for _, _, content in inject.sent)
    assert [r["source"]["ip_address"] for r in first["records"]] == ["192.0.2.1"]
    assert [r["source"]["ip_address"] for r in second["records"]] == ["192.0.2.50"]
    assert first["report_metadata"]["begin_date"] == "2026-03-02 00:00:00"
    assert second["report_metadata"]["begin_date"] == "2026-03-03 00:00:00"


@pytest.mark.parametrize(("days", "pending"), [(2, 1), (3, 0)])
async def test_run_without_send_reports_builds_then_gives_up(
    store: EvaluationStore, days: int, pending: int
) -> None:
    """send_reports = false: nothing is injected; unsent rows go after give_up_after (3 days)."""
    clock = Clock(DAY0 + 10, stop_at=DAY0 + days * DAY + 300)
    inject = Inject(clock)
    store.add(evaluation(DAY0 + 100))
    task = asyncio.create_task(reporter(store, clock, inject, send_reports=False).run())

    await clock.until_parked()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert inject.sent == []
    assert len(await store.pending(DAY0 + DAY)) == pending


def test_the_store_period_must_match_the_report_interval(tmp_path: Path) -> None:
    """A store aggregating by day cannot serve hourly reports."""
    clock = Clock(DAY0)
    with pytest.raises(ValueError, match="report_interval"):
        reporter(EvaluationStore(tmp_path / "x.db"), clock, Inject(clock), report_interval=3600.0)


def test_the_submitter_is_the_org_name_only_when_it_is_a_domain(tmp_path: Path) -> None:
    """The Subject ABNF wants a domain: an organisation name with spaces falls back."""
    clock = Clock(DAY0)
    store = EvaluationStore(tmp_path / "x.db")

    named = reporter(store, clock, Inject(clock), report_org_name="Example Receiver Inc.")
    domain = reporter(store, clock, Inject(clock), report_org_name="receiver.example")

    assert (named.org_name, named.submitter) == ("Example Receiver Inc.", "mx.example.net")
    assert (domain.org_name, domain.submitter) == ("receiver.example", "receiver.example")


async def test_without_report_from_nothing_is_sent(
    store: EvaluationStore, caplog: pytest.LogCaptureFixture
) -> None:
    """No report_from: reports are built with postmaster as contact, never injected."""
    clock = Clock(DAY0 + DAY + 400)
    inject = Inject(clock)
    store.add(evaluation(DAY0 + 1))
    built = AggregateReporter(
        store, FakeResolver(zone(RECORDS)), inject, DmarcConfig(), hostname="MX.Example.NET."
    )

    with caplog.at_level(logging.INFO, logger="mailwright.dmarc"):
        [outcome] = await built.report(DAY0 + DAY, send=True)

    assert outcome.status == "built"
    assert outcome.report.metadata.email == "postmaster@mx.example.net"
    assert outcome.report.metadata.org_name == "mx.example.net"
    assert inject.sent == []
    assert len(await store.pending(DAY0 + DAY)) == 1
    assert "dmarc.report_not_sent" in caplog.text


def test_next_boundary_is_a_utc_multiple_of_the_interval(tmp_path: Path) -> None:
    """Boundaries fall on midnight UTC for daily reports."""
    clock = Clock(DAY0)
    built = reporter(EvaluationStore(tmp_path / "x.db"), clock, Inject(clock))

    assert built.next_boundary(DAY0) == DAY0 + DAY
    assert built.next_boundary(DAY0 - 0.5) == DAY0
