"""Fuzz target for DMARC: policy records, From field values, and evaluation over both.

Run it with atheris (not a dependency; ``pip install atheris``; see ``_harness.py``)::

    python fuzz/fuzz_dmarc.py -max_total_time=600

:func:`check` is the target. It parses one input as a DMARC record and as a
From field value, evaluates a message whose From field is the input against
DNS that answers every TXT question with the input, and asserts what must
hold for any octets: nothing raises; a parsed record written back with
``to_text`` parses again, without problems, to the same tags; every Author
Domain found is already in normal form; the result word is one RFC 8601
knows and a disposition stricter than none comes only with a fail.
``tests/unit/test_dmarc_fuzz.py`` calls the same function from Hypothesis,
so the target runs in CI without atheris.
"""

from __future__ import annotations

import dataclasses

from _harness import run

from mailwright.auth.authres import RESULT_WORDS
from mailwright.auth.dmarc import Policy, Record, Result, author_domains, evaluate, parse_record
from mailwright.auth.dmarc._domains import normalize_domain
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Query, run_sync


def check(data: bytes) -> None:
    """Exercise the DMARC parsers and evaluation on ``data``; AssertionError on a broken rule."""
    record = parse_record(data)
    if isinstance(record, Record):
        again = parse_record(record.to_text())
        assert isinstance(again, Record)
        assert not again.problems, again.problems
        assert again == dataclasses.replace(record, problems=(), ignored=())

    text = data.decode("utf-8", "replace")
    authors = author_domains([text])
    for domain in authors.domains:
        assert normalize_domain(domain) == domain

    def answer(query: Query) -> Answer:
        if query.rdtype == "TXT":
            return Answer(query, LookupStatus.ANSWER, (data,))
        return Answer(query, LookupStatus.NXDOMAIN)

    result = run_sync(evaluate(authors, dkim=[(text, "pass")], spf=("pass", text)), answer)
    assert result.result.value in RESULT_WORDS["dmarc"]
    assert result.reason
    if result.disposition is not Policy.NONE:
        assert result.result is Result.FAIL


if __name__ == "__main__":
    run(check)
