"""Fuzz target for received DMARC reports: unpacking and the lenient aggregate parser.

Run it with atheris (not a dependency; ``pip install atheris``; see ``_harness.py``)::

    python fuzz/fuzz_reports.py -max_total_time=600

:func:`check` is the target. It gives one input to
:func:`~mailwright.reports.unpack.report_payloads` (as a message or a bare
file) and to :func:`~mailwright.reports.xml_read.parse_aggregate`, both
bare and spliced into an otherwise valid report (so that the fuzzer
reaches the record reader without having to invent the whole skeleton),
and asserts what must hold for any octets: nothing but ReportError is
raised; every row kept has a source address in normal form, a count in
range and lower-case words; the problem list stays bounded.
``tests/unit/test_reports_fuzz.py`` calls the same function from
Hypothesis, so the target runs in CI without atheris.
"""

from __future__ import annotations

import ipaddress

from _harness import run

from mailwright.errors import ReportError
from mailwright.reports.model import AggregateReport
from mailwright.reports.unpack import MAX_DECOMPRESSED, report_payloads
from mailwright.reports.xml_read import MAX_COUNT, MAX_PROBLEMS, parse_aggregate

#: A valid RFC 9990 report with one record; the input replaces ``@@``.
TEMPLATE = b"""<?xml version="1.0"?>
<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0"><version>1.0</version>
<report_metadata><org_name>fuzz.example</org_name><email>r@fuzz.example</email>
<report_id>1</report_id><date_range><begin>1700000000</begin><end>1700086399</end>
</date_range></report_metadata>
<policy_published><domain>example.com</domain><p>none</p></policy_published>
<record><row><source_ip>192.0.2.1</source_ip><count>1</count><policy_evaluated>
<disposition>none</disposition><dkim>pass</dkim><spf>@@</spf></policy_evaluated></row>
<identifiers><header_from>example.com</header_from></identifiers>
<auth_results><dkim><domain>example.com</domain><result>pass</result></dkim></auth_results>
</record></feedback>
"""


def check_report(report: AggregateReport) -> None:
    """The invariants of any report :func:`parse_aggregate` returns."""
    assert len(report.problems) <= MAX_PROBLEMS + 1, len(report.problems)
    for row in report.rows:
        assert str(ipaddress.ip_address(row.source_ip)) == row.source_ip, row.source_ip
        assert 0 <= row.count <= MAX_COUNT, row.count
        for word in (row.disposition, row.dkim, row.spf):
            assert word == word.lower(), word
        for auth in (*row.dkim_results, *row.spf_results):
            assert auth.domain, row
            assert auth.result == auth.result.lower(), auth


def parse(data: bytes) -> None:
    """Parse ``data``: a report that keeps the invariants, or a ReportError that says why."""
    reason = ""
    try:
        report = parse_aggregate(data)
    except ReportError as refused:
        reason = str(refused)
    else:
        check_report(report)
        return
    assert reason, "a ReportError must say what is wrong"


def check(data: bytes) -> None:
    """Exercise unpacking and parsing on ``data``; AssertionError on a broken rule."""
    reason = ""
    try:
        payloads = report_payloads(data)
    except ReportError as refused:
        payloads, reason = [], str(refused)
    assert payloads or reason, "report_payloads returns reports or says why not"
    for payload in payloads:
        assert len(payload.xml) <= max(len(data), MAX_DECOMPRESSED)
        parse(payload.xml)

    parse(data)
    parse(TEMPLATE.replace(b"@@", data))


if __name__ == "__main__":
    run(check)
