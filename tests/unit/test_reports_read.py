"""The lenient aggregate report parser (mailwright.reports.xml_read), with parsedmarc as oracle.

Every sample of ``shared/vectors/reports/aggregate`` must parse. For every
sample parsedmarc accepts, both parsers must agree on the metadata, the
published policy and every record. parsedmarc normalises a few things we
keep as sent, so the comparison undoes them, and only them:

- it replaces ``org_name`` with its registrable domain when the name has
  no space (``Outlook.com`` becomes ``outlook.com``): names are compared
  case-insensitively;
- it fills defaults into ``policy_published`` (``adkim`` and ``aspf``
  ``r``, ``sp`` as ``p``) where we keep None for an absent element;
- it writes times as local-time strings;
- it splits the records of a report spanning more than a day into daily
  buckets: the threshold is raised so that it does not.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import parsedmarc
import pytest
from tests.vectors import VECTORS

from mailwright.errors import ReportError
from mailwright.reports.model import NAMESPACE, AggregateReport
from mailwright.reports.xml_read import MAX_PROBLEMS, parse_aggregate

SAMPLES = VECTORS / "reports" / "aggregate"
SAMPLE_FILES = sorted(SAMPLES.glob("*.xml"))
#: Samples that are not well-formed XML: parsed through recovery, with problems.
BROKEN = {"opendmarc-bad.com_example.com_1337140800_1337227200.xml", "parsedmarc-invalid_xml.xml"}


def sample(name: str) -> AggregateReport:
    return parse_aggregate((SAMPLES / name).read_bytes())


def report(records: str = "", *, metadata: str | None = None, policy: str | None = None) -> bytes:
    """A small RFC 7489 report around ``records``."""
    if metadata is None:
        metadata = (
            "<report_metadata><org_name>r.example</org_name><email>a@r.example</email>"
            "<report_id>42</report_id><date_range><begin>1700000000</begin>"
            "<end>1700086399</end></date_range></report_metadata>"
        )
    if policy is None:
        policy = "<policy_published><domain>example.com</domain><p>none</p></policy_published>"
    return f"<feedback>{metadata}{policy}{records}</feedback>".encode()


def record(
    ip: str = "192.0.2.1",
    count: str = "3",
    evaluated: str = "<disposition>none</disposition><dkim>pass</dkim><spf>fail</spf>",
    identifiers: str = "<identifiers><header_from>example.com</header_from></identifiers>",
    auth: str = "",
) -> str:
    return (
        f"<record><row><source_ip>{ip}</source_ip><count>{count}</count>"
        f"<policy_evaluated>{evaluated}</policy_evaluated></row>{identifiers}"
        f"<auth_results>{auth}</auth_results></record>"
    )


def test_the_samples_are_there() -> None:
    """The shared vectors hold the samples this file is about (never skipped)."""
    assert len(SAMPLE_FILES) >= 12
    assert {path.name for path in SAMPLE_FILES} >= BROKEN


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda path: path.name)
def test_every_sample_parses(path: Path) -> None:
    """Each sample gives a report with rows; only the broken ones have problems."""
    parsed = parse_aggregate(path.read_bytes())

    assert parsed.rows
    assert parsed.policy.domain == "example.com"
    assert parsed.metadata.begin <= parsed.metadata.end
    assert bool(parsed.problems) == (path.name in BROKEN), parsed.problems


# -- the oracle ----------------------------------------------------------------------------


def oracle(path: Path) -> dict[str, Any] | None:
    """parsedmarc's reading of the sample, or None when parsedmarc refuses it."""
    try:
        parsed: dict[str, Any] = parsedmarc.parse_aggregate_report_xml(
            path.read_text(), offline=True, normalize_timespan_threshold_hours=1e9
        )
    except parsedmarc.InvalidAggregateReport:
        return None
    return parsed


def local_time(seconds: int) -> str:
    """A Unix time as parsedmarc writes it (local time)."""
    return datetime.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda path: path.name)
def test_parsedmarc_reads_each_sample_as_we_do(path: Path) -> None:
    """Metadata, policy and every record's results agree with parsedmarc's where it accepts."""
    theirs = oracle(path)
    if theirs is None:
        # parsedmarc refuses prefixed roots (ns1:feedback); we read them.
        assert path.name == "opendmarc-bad.com_example.com_1337140800_1337227200.xml"
        return
    ours = parse_aggregate(path.read_bytes())

    meta = theirs["report_metadata"]
    assert ours.metadata.org_name.lower() == meta["org_name"].lower()
    assert ours.metadata.report_id == meta["report_id"]
    assert local_time(ours.metadata.begin) == meta["begin_date"]
    assert local_time(ours.metadata.end) == meta["end_date"]

    policy = theirs["policy_published"]
    assert ours.policy.domain == policy["domain"]
    assert ours.policy.p == policy["p"]
    assert (ours.policy.sp or ours.policy.p) == policy["sp"]
    assert (ours.policy.adkim or "r") == policy["adkim"]
    assert (ours.policy.aspf or "r") == policy["aspf"]
    assert ours.policy.pct == (None if policy["pct"] is None else int(policy["pct"]))
    assert ours.policy.fo == policy["fo"]
    assert ours.policy.np == policy["np"]
    assert ours.policy.testing == policy["testing"]
    assert ours.policy.discovery_method == policy["discovery_method"]

    assert len(ours.rows) == len(theirs["records"])
    for row, their in zip(ours.rows, theirs["records"], strict=True):
        assert row.source_ip == their["source"]["ip_address"]
        assert row.count == their["count"]
        evaluated = their["policy_evaluated"]
        assert (row.disposition, row.dkim, row.spf) == (
            evaluated["disposition"],
            evaluated["dkim"],
            evaluated["spf"],
        )
        assert row.header_from == their["identifiers"]["header_from"]
        assert [(auth.domain, auth.result) for auth in row.dkim_results] == [
            (auth["domain"].lower(), auth["result"]) for auth in their["auth_results"]["dkim"]
        ]
        assert [(auth.domain, auth.result) for auth in row.spf_results] == [
            (auth["domain"].lower(), auth["result"]) for auth in their["auth_results"]["spf"]
        ]


def test_the_oracle_accepts_all_but_one_sample() -> None:
    """The comparison above is not vacuous: parsedmarc reads every sample but the ns1 one."""
    refused = [path.name for path in SAMPLE_FILES if oracle(path) is None]

    assert refused == ["opendmarc-bad.com_example.com_1337140800_1337227200.xml"]


# -- the samples that need leniency --------------------------------------------------------


def test_a_prefixed_draft_namespace_is_read() -> None:
    """``ns1:feedback`` in the 0.1 draft namespace, children unqualified, is a report."""
    parsed = sample("opendmarc-bad.com_example.com_1337140800_1337227200.xml")

    assert parsed.namespace == "http://dmarc.org/dmarc-xml/0.1"
    assert parsed.metadata.org_name == "AOL"
    assert parsed.policy.p == "reject"


def test_an_invalid_source_ip_skips_its_record_with_a_problem() -> None:
    """``108r.166.27.220`` drops that record (16 messages) and says so."""
    parsed = sample("opendmarc-bad.com_example.com_1337140800_1337227200.xml")

    assert [row.source_ip for row in parsed.rows] == ["108.166.27.220", "118.103.89.13"]
    assert parsed.message_count == 267 + 1
    assert any("'108r.166.27.220'" in problem for problem in parsed.problems)


def test_an_empty_disposition_is_kept_empty_with_a_problem() -> None:
    """``<disposition></disposition>`` gives "" (not a guess) and a problem line."""
    parsed = sample("opendmarc-bad.com_example.com_1337140800_1337227200.xml")

    assert parsed.rows[0].disposition == ""
    assert "record 1: policy_evaluated/disposition is missing or empty" in parsed.problems


def test_a_value_split_by_recovery_is_left_empty() -> None:
    """``<header_from>bad<xml.net</header_from>`` is damaged: empty, noted, row kept."""
    parsed = sample("parsedmarc-invalid_xml.xml")

    assert len(parsed.rows) == 1
    assert parsed.rows[0].header_from == ""
    assert parsed.rows[0].spf_results == ()  # its <domain/> was empty
    assert parsed.metadata.email == ""
    assert parsed.problems[0].startswith("the XML is not well formed (line 5:")
    assert "record 1: identifiers/header_from is damaged XML and was left empty" in (
        parsed.problems
    )


def test_upper_case_words_are_lower_cased() -> None:
    """``None``, ``Pass`` become ``none``, ``pass``; org_name loses its trailing space."""
    parsed = sample("parsedmarc-report_with_upper_cased_pass.xml")

    row = parsed.rows[0]
    assert (row.disposition, row.dkim, row.spf) == ("none", "pass", "pass")
    assert row.dkim_results[0].result == "pass"
    assert parsed.metadata.org_name == "example.com"


def test_decimal_timestamps_are_read() -> None:
    """``<begin>1337270400.0</begin>``, as OpenDMARC's samples write it, is 1337270400."""
    parsed = sample("opendmarc-163.com_example.com_1337270400_1337356799.20120518163.xml")

    assert (parsed.metadata.begin, parsed.metadata.end) == (1337270400, 1337356799)
    assert parsed.version is None
    assert parsed.namespace is None


def test_an_rfc_9990_report_keeps_its_new_fields() -> None:
    """The RFC 9990 sample: its namespace, generator, np, testing, discovery_method."""
    parsed = sample("parsedmarc-rfc9990-sample.xml")

    assert parsed.namespace == NAMESPACE
    assert parsed.metadata.generator == "Example DMARC Aggregate Reporter v1.2"
    assert (parsed.policy.np, parsed.policy.testing) == ("none", "n")
    assert parsed.policy.discovery_method == "treewalk"
    assert parsed.policy.pct is None
    assert parsed.rows[0].disposition == "pass"
    assert parsed.rows[0].dkim_results[0].selector == "abc123"


def test_an_override_reason_is_read_and_an_empty_one_dropped() -> None:
    """``<reason><type>other</type>...`` is kept; ``<type></type><comment></comment>`` is not."""
    with_reason = sample("parsedmarc-rfc9990-example.net_example.com_1700000000_1700086399.xml")
    empty = sample("parsedmarc-empty_reason.xml")

    assert [(reason.type, reason.comment) for reason in with_reason.rows[1].reasons] == [
        ("other", "sender not authorized")
    ]
    assert empty.rows[0].reasons == ()
    assert empty.problems == ()


# -- namespaces and shapes -----------------------------------------------------------------


def test_a_prefixed_rfc_9990_namespace_is_read() -> None:
    """Every element behind a ``dmarc:`` prefix bound to the RFC 9990 namespace."""
    xml = (
        f'<dmarc:feedback xmlns:dmarc="{NAMESPACE}"><dmarc:report_metadata>'
        "<dmarc:org_name>r.example</dmarc:org_name><dmarc:email>a@r.example</dmarc:email>"
        "<dmarc:report_id>7</dmarc:report_id><dmarc:date_range><dmarc:begin>1</dmarc:begin>"
        "<dmarc:end>2</dmarc:end></dmarc:date_range></dmarc:report_metadata>"
        "<dmarc:policy_published><dmarc:domain>Example.COM.</dmarc:domain><dmarc:p>REJECT"
        "</dmarc:p></dmarc:policy_published><dmarc:record><dmarc:row><dmarc:source_ip>"
        "2001:DB8::0:1</dmarc:source_ip><dmarc:count>4</dmarc:count><dmarc:policy_evaluated>"
        "<dmarc:disposition>reject</dmarc:disposition><dmarc:dkim>fail</dmarc:dkim>"
        "<dmarc:spf>fail</dmarc:spf></dmarc:policy_evaluated></dmarc:row><dmarc:identifiers>"
        "<dmarc:header_from>example.com</dmarc:header_from></dmarc:identifiers>"
        "<dmarc:auth_results/></dmarc:record></dmarc:feedback>"
    ).encode()

    parsed = parse_aggregate(xml)

    assert parsed.namespace == NAMESPACE
    assert (parsed.policy.domain, parsed.policy.p) == ("example.com", "reject")
    assert parsed.rows[0].source_ip == "2001:db8::1"
    assert parsed.problems == ()


def test_identities_of_old_drafts_are_identifiers() -> None:
    """An old draft's ``<identities>`` holds the header_from like ``<identifiers>``."""
    xml = report(
        record(identifiers="<identities><header_from>example.com</header_from></identities>")
    )

    assert parse_aggregate(xml).rows[0].header_from == "example.com"


def test_missing_evaluated_results_are_empty_and_noted() -> None:
    """A record without policy_evaluated keeps its count; its words are "" with problems."""
    xml = report(record(evaluated=""))

    parsed = parse_aggregate(xml)

    assert parsed.rows[0].count == 3
    assert (parsed.rows[0].dkim, parsed.rows[0].spf) == ("", "")
    assert "record 1: policy_evaluated/dkim is missing or empty" in parsed.problems


@pytest.mark.parametrize("count", ["-1", "many", "1.5", "", "1e400"])
def test_an_unusable_count_skips_the_record(count: str) -> None:
    """A count that is not a whole number of messages cannot be added up: skipped, noted."""
    parsed = parse_aggregate(report(record(count=count) + record(ip="192.0.2.9")))

    assert [row.source_ip for row in parsed.rows] == ["192.0.2.9"]
    assert parsed.problems[0].startswith("record 1: count is")


def test_an_auth_result_without_a_result_word_is_kept_with_a_problem() -> None:
    """``<dkim><domain>d.example</domain></dkim>`` keeps the domain; the result is ""."""
    parsed = parse_aggregate(report(record(auth="<dkim><domain>D.example</domain></dkim>")))

    assert parsed.rows[0].dkim_results[0].domain == "d.example"
    assert parsed.rows[0].dkim_results[0].result == ""
    assert parsed.problems == ("record 1: auth_results/dkim[1]/result is missing or empty",)


def test_the_problem_list_is_capped() -> None:
    """Two hundred bad records give MAX_PROBLEMS lines and one that counts the rest."""
    parsed = parse_aggregate(report("".join(record(ip="bad") for _ in range(200))))

    assert parsed.rows == ()
    assert len(parsed.problems) == MAX_PROBLEMS + 1
    assert parsed.problems[-1] == f"… and {200 - MAX_PROBLEMS} more problems"


# -- what is refused -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (b"", "the document is empty"),
        (b"   \n", "the document is empty"),
        (b"just words", "not XML"),
        (b"\x00\xff\x10binary", "not XML"),
        (b"<html><body>hello</body></html>", "the root element is <html>, not <feedback>"),
        (b'{"organization-name": "tls"}', "not XML"),
        (report(metadata=""), "<feedback> has no <report_metadata>"),
        (report(policy=""), "<feedback> has no <policy_published>"),
        (b"<feedback/>", "has no <report_metadata> and no <policy_published>"),
    ],
)
def test_what_is_no_aggregate_report_raises_a_report_error(xml: bytes, message: str) -> None:
    """Not XML, another root, or a missing section: ReportError saying which."""
    with pytest.raises(ReportError, match=message.replace("(", r"\(")):
        parse_aggregate(xml)


def test_entities_are_not_expanded() -> None:
    """Internal entities (a billion laughs) and external ones (a local file) stay unexpanded."""
    laughs = "".join(f'<!ENTITY l{n} "{f"&l{n - 1};" * 10 if n else "lol"}">' for n in range(10))
    xml = (
        f'<?xml version="1.0"?><!DOCTYPE feedback [{laughs}'
        '<!ENTITY file SYSTEM "file:///etc/passwd">]>'
    ).encode() + report(
        record(identifiers="<identifiers><header_from>&file;&l9;</header_from></identifiers>")
    )

    parsed = parse_aggregate(xml)

    assert parsed.rows[0].header_from == ""
    assert "root" not in repr(parsed)
