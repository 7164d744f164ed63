"""Fuzz target for the parsers of ``mailwright check``: MTA-STS, TLS-RPT, HTTP responses.

Run it with atheris (not a dependency; ``pip install atheris``; see ``_harness.py``)::

    python fuzz/fuzz_audit.py -max_total_time=600

:func:`check` feeds one input to the MTA-STS record and policy parsers, the
MX pattern matcher, the TLS-RPT record check and the HTTP response parser
that reads a fetched policy, and asserts that each gives a value or a reason
(never an exception or a hang), that a parsed policy keeps within the limits
of RFC 8461 §3.2, and that every finding has a message.
``tests/unit/test_audit_fuzz.py`` drives it from Hypothesis in CI.
"""

from __future__ import annotations

from _harness import run

from mailwright.audit._https import MAX_POLICY_OCTETS, HttpResponse, parse_response
from mailwright.audit.mtasts import (
    MAX_AGE_LIMIT,
    MODES,
    StsPolicy,
    StsRecord,
    mx_matches,
    parse_policy,
    parse_sts_record,
    record_findings,
)
from mailwright.audit.tlsrpt import tlsrpt_findings


def check(data: bytes) -> None:
    """Exercise the audit's parsers on ``data``; AssertionError on a broken invariant."""
    text = data.decode("utf-8", "replace")

    record = parse_sts_record(data)
    assert isinstance(record, StsRecord | str)
    if isinstance(record, StsRecord):
        assert 1 <= len(record.id) <= 32
        assert record.id.isascii()
        assert record.id.isalnum()

    policy = parse_policy(text)
    if isinstance(policy, StsPolicy):
        assert policy.mode in MODES
        assert 0 <= policy.max_age <= MAX_AGE_LIMIT
        assert policy.mx or policy.mode == "none"
        for pattern in policy.mx:
            mx_matches(text, pattern)
    else:
        assert policy

    mx_matches(text, text)
    mx_matches("mx1.example.com", text)

    findings, _ = record_findings("example.com", [data])
    for finding in [*findings, *tlsrpt_findings("example.com", [data, b"v=TLSRPTv1;" + data])]:
        assert finding.message

    response = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + data)
    for parsed in (response, parse_response(data)):
        if isinstance(parsed, HttpResponse):
            assert len(parsed.body) <= MAX_POLICY_OCTETS
            assert parsed.status >= 0
        else:
            assert parsed


if __name__ == "__main__":
    run(check)
