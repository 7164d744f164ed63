"""The store of received reports on a real SQLite file, and ``dmarc import`` / ``dmarc sources``.

The expected summaries are computed here from the sample XML with the
standard library's ElementTree, not with our parser, so that the store and
the parser are checked against an independent reading. ElementTree refuses
the two samples that are not well-formed; what we recover from those is
written out by hand from the files.
"""

from __future__ import annotations

import gzip
import json
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunCli
from tests.vectors import VECTORS

from mailwright.reports.model import AggregateReport, PolicyPublished, ReportMetadata, Row
from mailwright.reports.received import ReceivedReports
from mailwright.reports.xml_read import parse_aggregate

pytestmark = pytest.mark.integration

SAMPLES = VECTORS / "reports" / "aggregate"
FAILURE_REPORT = VECTORS / "reports" / "failure" / "parsedmarc-dmarc_ruf_report_linkedin.eml"
BROKEN = {"opendmarc-bad.com_example.com_1337140800_1337227200.xml", "parsedmarc-invalid_xml.xml"}
WELL_FORMED = sorted(path for path in SAMPLES.glob("*.xml") if path.name not in BROKEN)
#: The keys of each source in ``dmarc sources --json`` (docs/dmarc-reports.md).
SOURCE_KEYS = {
    "source_ip",
    "messages",
    "dmarc_pass",
    "dmarc_fail",
    "pass_pct",
    "dispositions",
    "organisations",
    "dkim_domains",
    "spf_domains",
    "header_from",
    "reports",
    "first_seen",
    "last_seen",
}


# -- the independent reading -----------------------------------------------------------


def _strip(element: ElementTree.Element) -> None:
    for node in element.iter():
        node.tag = node.tag.rpartition("}")[2]


def _text(element: ElementTree.Element, path: str) -> str:
    found = element.find(path)
    return (found.text or "").strip() if found is not None else ""


def expected_sources(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """Per source address: messages, DMARC passes, reporters and auth domains, from the XML."""
    sources: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"messages": 0, "pass": 0, "orgs": set(), "dkim": set(), "spf": set()}
    )
    for path in paths:
        root = ElementTree.parse(path).getroot()
        _strip(root)
        org = _text(root, "report_metadata/org_name")
        for record in root.iter("record"):
            ip = _text(record, "row/source_ip")
            count = int(_text(record, "row/count"))
            results = {
                _text(record, "row/policy_evaluated/dkim").lower(),
                _text(record, "row/policy_evaluated/spf").lower(),
            }
            source = sources[ip]
            source["messages"] += count
            source["pass"] += count if "pass" in results else 0
            source["orgs"].add(org)
            for method in ("dkim", "spf"):
                for auth in record.findall(f"auth_results/{method}"):
                    if _text(auth, "domain"):
                        source[method].add(_text(auth, "domain").lower())
    return dict(sources)


def stored(tmp_path: Path, paths: list[Path]) -> ReceivedReports:
    store = ReceivedReports(tmp_path / "reports.db")
    for path in paths:
        assert store.add(parse_aggregate(path.read_bytes()), received_at=1.0, source=path.name)
    return store


def small_report(
    *rows: Row, org: str = "r.example", report_id: str = "1", domain: str = "example.com"
) -> AggregateReport:
    return AggregateReport(
        metadata=ReportMetadata(
            org_name=org, email=f"a@{org}", report_id=report_id, begin=1000, end=2000
        ),
        policy=PolicyPublished(domain=domain, p="none"),
        rows=rows,
    )


def row(ip: str, count: int, header_from: str, dkim: str = "pass") -> Row:
    return Row(ip, count, disposition="none", dkim=dkim, spf="fail", header_from=header_from)


# -- the store -------------------------------------------------------------------------


class TestStore:
    def test_sources_match_an_independent_reading_of_the_samples(self, tmp_path: Path) -> None:
        """Every well-formed sample stored: per-address counts, reporters and auth domains."""
        expected = expected_sources(WELL_FORMED)

        with stored(tmp_path, WELL_FORMED) as store:
            summaries = store.sources("example.com")

        assert {summary.source_ip for summary in summaries} == set(expected)
        for summary in summaries:
            want = expected[summary.source_ip]
            assert summary.messages == want["messages"], summary.source_ip
            assert summary.dmarc_pass == want["pass"], summary.source_ip
            assert summary.dmarc_fail == want["messages"] - want["pass"]
            assert set(summary.organisations) == want["orgs"]
            assert set(summary.dkim_domains) == want["dkim"]
            assert set(summary.spf_domains) == want["spf"]
            assert sum(summary.dispositions.values()) == summary.messages
        volumes = [summary.messages for summary in summaries]
        assert volumes == sorted(volumes, reverse=True)

    def test_a_report_stored_twice_is_a_duplicate(self, tmp_path: Path) -> None:
        """The same organisation, report id and policy domain: False, and nothing added."""
        report = parse_aggregate(WELL_FORMED[0].read_bytes())

        with ReceivedReports(tmp_path / "reports.db") as store:
            first = store.add(report, received_at=1.0)
            again = store.add(replace(report, rows=report.rows[:1]), received_at=2.0)
            messages = sum(summary.messages for summary in store.sources("example.com"))

        assert (first, again) == (True, False)
        assert messages == report.message_count

    def test_the_same_report_id_from_elsewhere_is_another_report(self, tmp_path: Path) -> None:
        """Another organisation, or another policy domain, with the same id: both stored."""
        one = small_report(row("192.0.2.1", 1, "example.com"))
        elsewhere = replace(one, metadata=replace(one.metadata, org_name="o.example"))
        other_domain = replace(one, policy=replace(one.policy, domain="example.org"))

        with ReceivedReports(tmp_path / "reports.db") as store:
            results = [
                store.add(report, received_at=1.0) for report in (one, elsewhere, other_domain)
            ]

        assert results == [True, True, True]

    def test_reports_without_an_id_are_told_apart_by_content(self, tmp_path: Path) -> None:
        """No report_id: an identical copy is a duplicate, a different report is not."""
        one = small_report(row("192.0.2.1", 1, "example.com"), report_id="")
        other = small_report(row("192.0.2.1", 2, "example.com"), report_id="")

        with ReceivedReports(tmp_path / "reports.db") as store:
            results = [store.add(report, received_at=1.0) for report in (one, one, other)]

        assert results == [True, False, True]

    def test_reports_survive_closing_the_store(self, tmp_path: Path) -> None:
        """A second open of the file sees the first's reports, and still refuses duplicates."""
        report = small_report(row("192.0.2.1", 5, "example.com"))
        with ReceivedReports(tmp_path / "var" / "reports.db") as store:
            store.add(report, received_at=1.0)

        with ReceivedReports(tmp_path / "var" / "reports.db") as store:
            again = store.add(report, received_at=2.0)
            summaries = store.sources("example.com")

        assert again is False
        assert [(s.source_ip, s.messages) for s in summaries] == [("192.0.2.1", 5)]

    def test_subdomains_count_and_lookalikes_do_not(self, tmp_path: Path) -> None:
        """header_from mail.example.com counts for example.com; notexample.com does not."""
        report = small_report(
            row("192.0.2.1", 1, "example.com"),
            row("192.0.2.2", 2, "mail.example.com"),
            row("192.0.2.3", 4, "notexample.com"),
            row("192.0.2.4", 8, "example.com.evil.test"),
            domain="org.test",
        )

        with ReceivedReports(tmp_path / "reports.db") as store:
            store.add(report, received_at=1.0)
            found = {s.source_ip: s.messages for s in store.sources("Example.COM.")}
            by_policy = {s.source_ip for s in store.sources("org.test")}
            sub = {s.source_ip for s in store.sources("mail.example.com")}

        assert found == {"192.0.2.1": 1, "192.0.2.2": 2}
        assert by_policy == {"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}
        assert sub == {"192.0.2.2"}

    def test_since_keeps_the_reports_whose_period_ends_after_it(self, tmp_path: Path) -> None:
        """A report ending at 2000 counts from since=2000, not from 2001."""
        with ReceivedReports(tmp_path / "reports.db") as store:
            store.add(small_report(row("192.0.2.1", 1, "example.com")), received_at=1.0)

            assert len(store.sources("example.com", since=2000)) == 1
            assert store.sources("example.com", since=2001) == []

    def test_a_summary_adds_up_results_dispositions_and_reporters(self, tmp_path: Path) -> None:
        """One address in two reports: totals, passes, dispositions and both reporters."""
        first = small_report(row("192.0.2.1", 3, "example.com"), org="a.example")
        second = small_report(
            replace(row("192.0.2.1", 2, "example.com", dkim="fail"), disposition=""),
            org="b.example",
        )

        with ReceivedReports(tmp_path / "reports.db") as store:
            store.add(first, received_at=1.0)
            store.add(second, received_at=1.0)
            (summary,) = store.sources("example.com")

        assert (summary.messages, summary.dmarc_pass, summary.dmarc_fail) == (5, 3, 2)
        assert summary.dispositions == {"none": 3, "unspecified": 2}
        assert summary.organisations == ("a.example", "b.example")
        assert (summary.reports, summary.first_seen, summary.last_seen) == (2, 1000, 2000)
        assert summary.pass_ratio == pytest.approx(0.6)

    def test_the_rows_of_a_recovered_report_are_stored(self, tmp_path: Path) -> None:
        """The ns1, broken sample: 267 + 1 messages kept, none passing (no evaluated results)."""
        broken = SAMPLES / "opendmarc-bad.com_example.com_1337140800_1337227200.xml"

        with stored(tmp_path, [broken]) as store:
            summaries = {s.source_ip: s for s in store.sources("example.com")}

        assert {ip: s.messages for ip, s in summaries.items()} == {
            "108.166.27.220": 267,
            "118.103.89.13": 1,
        }
        assert all(s.dmarc_pass == 0 for s in summaries.values())
        assert summaries["108.166.27.220"].dispositions == {"unspecified": 267}
        assert summaries["118.103.89.13"].spf_domains == ("null",)

    def test_domains_lists_the_policy_domains(self, tmp_path: Path) -> None:
        """domains() names each policy domain once, sorted."""
        with ReceivedReports(tmp_path / "reports.db") as store:
            for domain in ("example.org", "example.com", "example.org"):
                report = small_report(row("192.0.2.1", 1, domain), domain=domain, report_id=domain)
                store.add(report, received_at=1.0)

            assert store.domains() == ["example.com", "example.org"]


# -- the command line ------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A configuration whose report store is var/reports.db beside it."""
    path = tmp_path / "mailwright.toml"
    path.write_text('[dmarc]\nreceived_store = "var/reports.db"\n')
    return path


def report_message(tmp_path: Path, xml: bytes) -> Path:
    """An .eml as a receiver sends it: a text part and the gzip-compressed report."""
    mail = EmailMessage()
    mail["From"] = "noreply-dmarc@reporter.example"
    mail["To"] = "dmarc@example.com"
    mail["Subject"] = "Report domain: example.com"
    mail.set_content("Aggregate report attached.")
    mail.add_attachment(
        gzip.compress(xml), maintype="application", subtype="gzip", filename="report.xml.gz"
    )
    path = tmp_path / "report.eml"
    path.write_bytes(mail.as_bytes())
    return path


class TestCli:
    def test_import_then_sources_json_gives_the_exact_counts(
        self, run_cli: RunCli, config: Path
    ) -> None:
        """Every well-formed sample imported; --json counts match the independent reading."""
        expected = expected_sources(WELL_FORMED)

        imported = run_cli("dmarc", "import", *map(str, WELL_FORMED))
        result = run_cli("dmarc", "sources", "example.com", "--json")

        assert imported.returncode == 0, imported.stderr
        assert (
            imported.stdout.splitlines()[-1]
            == f"{len(WELL_FORMED)} stored, 0 duplicate, 0 refused"
        )
        assert result.returncode == 0, result.stderr
        document = json.loads(result.stdout)
        messages = sum(source["messages"] for source in expected.values())
        passed = sum(source["pass"] for source in expected.values())
        assert (document["domain"], document["since"]) == ("example.com", None)
        assert (document["messages"], document["dmarc_pass"]) == (messages, passed)
        assert document["dmarc_fail"] == messages - passed
        assert len(document["sources"]) == len(expected)
        for source in document["sources"]:
            want = expected[source["source_ip"]]
            assert (source["messages"], source["dmarc_pass"]) == (want["messages"], want["pass"])
            assert set(source["organisations"]) == want["orgs"]
            assert set(source["dkim_domains"]) == want["dkim"]
            assert set(source["spf_domains"]) == want["spf"]
            assert set(source) == SOURCE_KEYS

    def test_sources_prints_a_table_and_the_summary(self, run_cli: RunCli, config: Path) -> None:
        """The text output: one line per address, and the DMARC pass line with exact counts."""
        paths = [
            SAMPLES / "opendmarc-163.com_example.com_1337270400_1337356799.20120518163.xml",
            SAMPLES / "parsedmarc-rfc9990-example.net_example.com_1700000000_1700086399.xml",
        ]
        expected = expected_sources(paths)
        messages = sum(source["messages"] for source in expected.values())
        passed = sum(source["pass"] for source in expected.values())
        run_cli("dmarc", "import", *map(str, paths))

        result = run_cli("dmarc", "sources", "example.com")

        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].split()[:5] == ["IP", "messages", "pass", "fail", "pass"]
        table = [line.split() for line in lines[1 : 1 + len(expected)]]
        assert {cells[0]: cells[1:4] for cells in table} == {
            ip: [
                str(source["messages"]),
                str(source["pass"]),
                str(source["messages"] - source["pass"]),
            ]
            for ip, source in expected.items()
        }
        volumes = [int(cells[1]) for cells in table]
        assert volumes == sorted(volumes, reverse=True)
        assert lines[1 + len(expected)] == ""
        assert lines[2 + len(expected)] == (
            f"example.com: {passed} of {messages} messages pass DMARC"
            f" ({round(100 * passed / messages, 1)}%), {messages - passed} fail, from"
            f" {len(expected)} sources (reports from 2012-05-17 to 2023-11-15)."
        )
        failing = sum(1 for source in expected.values() if source["pass"] < source["messages"])
        assert lines[3 + len(expected)].startswith(
            f"Under p=reject the {messages - passed} failing messages, from {failing} sources,"
        )

    def test_import_reports_duplicates_and_refusals(
        self, run_cli: RunCli, config: Path, tmp_path: Path
    ) -> None:
        """An .eml is stored, its copy is a duplicate, the failure report is refused (exit 1)."""
        sample = SAMPLES / "parsedmarc-empty_reason.xml"
        message = report_message(tmp_path, sample.read_bytes())

        result = run_cli("dmarc", "import", str(message), str(sample), str(FAILURE_REPORT))

        assert result.returncode == 1, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == (
            f"{message} (report.xml): stored: example.org report 20240125141224705995 about"
            " example.com, 2024-01-25 to 2024-01-25, 1 row, 2 messages"
        )
        assert (
            lines[1]
            == f"{sample}: duplicate: example.org report 20240125141224705995 was stored before"
        )
        assert lines[2].startswith(
            f"{FAILURE_REPORT}: refused: no aggregate report in the message"
        )
        assert "failure report" in lines[2]
        assert lines[-1] == "1 stored, 1 duplicate, 1 refused"
        assert "Traceback" not in result.stderr

    def test_import_lists_the_problems_of_a_recovered_report(
        self, run_cli: RunCli, config: Path
    ) -> None:
        """A broken sample is stored, with each problem on its own line; --json has them too."""
        broken = SAMPLES / "opendmarc-bad.com_example.com_1337140800_1337227200.xml"

        result = run_cli("dmarc", "import", "--json", str(broken))

        assert result.returncode == 0, result.stderr
        (outcome,) = json.loads(result.stdout)
        assert (outcome["outcome"], outcome["rows"], outcome["messages"]) == ("stored", 2, 268)
        assert any("108r.166.27.220" in problem for problem in outcome["problems"])

    def test_import_refuses_an_unreadable_file(self, run_cli: RunCli, config: Path) -> None:
        """A missing file is one refusal line, exit 1, no traceback."""
        result = run_cli("dmarc", "import", "missing.xml")

        assert result.returncode == 1
        assert result.stdout.startswith("missing.xml: refused: cannot read missing.xml")
        assert "Traceback" not in result.stderr

    def test_sources_of_an_unknown_domain_says_so(self, run_cli: RunCli, config: Path) -> None:
        """No data about the domain: a clear message, the domains that have data, exit 0."""
        run_cli("dmarc", "import", str(WELL_FORMED[0]))

        result = run_cli("dmarc", "sources", "example.org")

        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("no aggregate reports about example.org in ")
        assert "it has reports about example.com" in result.stdout

    def test_sources_without_a_store_creates_none(
        self, run_cli: RunCli, config: Path, tmp_path: Path
    ) -> None:
        """Before any import there is nothing to report, and no database file appears."""
        text = run_cli("dmarc", "sources", "example.com")
        document = run_cli("dmarc", "sources", "example.com", "--json")

        assert text.returncode == document.returncode == 0
        assert text.stdout.startswith("no aggregate reports about example.com")
        assert json.loads(document.stdout)["sources"] == []
        assert not (tmp_path / "var" / "reports.db").exists()

    def test_since_narrows_and_a_bad_duration_is_a_usage_error(
        self, run_cli: RunCli, config: Path
    ) -> None:
        """--since 1d leaves out the 2023 sample; --since soon exits 2 with a message."""
        run_cli("dmarc", "import", str(WELL_FORMED[0]))

        recent = run_cli("dmarc", "sources", "example.com", "--since", "1d")
        bad = run_cli("dmarc", "sources", "example.com", "--since", "soon")

        assert recent.returncode == 0
        assert "in that period" in recent.stdout
        assert bad.returncode == 2
        assert bad.stderr.startswith("mailwright: --since: ")
