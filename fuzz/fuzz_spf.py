"""Fuzz target for SPF: records, macros, check_host(), lookup counting, string splitting.

Run it with atheris (not a dependency; ``pip install atheris``; see ``_harness.py``)::

    python fuzz/fuzz_spf.py -max_total_time=600

:func:`check` is the target. It parses one input as a record and as each
kind of macro-string, expands what parses, and evaluates it: the input (and
``v=spf1`` followed by it) is served as the TXT record of every name, so
includes and redirects recurse into it, and every address lookup answers
with the client. It asserts what must hold for any octets: nothing raises,
every check ends in one of the seven result words with a reason, the limits
of RFC 7208 §4.6.4 bound the work, an explanation comes only with ``fail``
and is printable ASCII, expanded names fit in 253 characters, a lookup count
lists one entry per term counted, and split TXT strings join back to the
record. ``tests/unit/test_spf_fuzz.py`` calls the same function from
Hypothesis, so the target runs in CI without atheris.
"""

from __future__ import annotations

import ipaddress

import dns.name
from _harness import run

from mailwright.auth.authres import RESULT_WORDS
from mailwright.auth.spf import Record, Result, check_host, count_lookups, parse_record
from mailwright.auth.spf.build import MAX_STRING, split_strings
from mailwright.auth.spf.macros import (
    MAX_DOMAIN_LENGTH,
    MacroString,
    MacroValues,
    expand,
    expand_domain,
    parse_domain_spec,
    parse_explanation,
    parse_macro_string,
)
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Query, run_sync

#: One client of each address family.
CLIENTS = ("192.0.2.1", "2001:db8::1")


def check(data: bytes) -> None:
    """Run every SPF parser and the evaluation on ``data``; AssertionError on a broken rule."""
    text = data.decode("utf-8", "replace")
    for source in (data, text, b"v=spf1 " + data):
        record = parse_record(source)
        if isinstance(record, Record):
            assert all(directive.text in record.text for directive in record.directives)

    for parse in (parse_domain_spec, parse_explanation, parse_macro_string):
        parsed = parse(text)
        if isinstance(parsed, MacroString):
            for client in CLIENTS:
                values = _values(text, client)
                assert len(expand_domain(parsed, values)) <= MAX_DOMAIN_LENGTH
                assert len(expand(parsed, values, limit=400)) <= 400

    def answer(query: Query) -> Answer:
        if query.rdtype == "TXT":
            return Answer(query, LookupStatus.ANSWER, (data, b"v=spf1 " + data))
        if query.rdtype in ("A", "AAAA"):
            return Answer(query, LookupStatus.ANSWER, CLIENTS)
        if query.rdtype == "MX":
            return Answer(query, LookupStatus.ANSWER, ((10, dns.name.from_text("mx.example")),))
        return Answer(query, LookupStatus.NXDOMAIN)

    for client in CLIENTS:
        result = run_sync(check_host(client, "example.com", text, helo=text), answer)
        assert result.result.value in RESULT_WORDS["spf"]
        assert result.reason
        assert result.lookups <= 11
        assert result.void_lookups <= 3
        assert not result.explanation or result.result is Result.FAIL
        assert all(" " <= char <= "~" for char in result.explanation)
        assert result.to_method_result().result == result.result.value

    for source in (text, "v=spf1 " + text):
        count = run_sync(count_lookups(source, domain="example.com"), answer)
        assert count.total == len(count.terms)
        assert count.voids == sum(term.void for term in count.terms)

    record_text = "v=spf1 " + "".join(char for char in text if " " <= char <= "~")
    strings = split_strings(record_text)
    assert "".join(strings) == record_text
    assert all(len(piece) <= MAX_STRING for piece in strings)


def _values(text: str, client: str) -> MacroValues:
    local_part, _, domain = text.rpartition("@")
    return MacroValues(
        sender=text,
        local_part=local_part or "postmaster",
        sender_domain=domain or "example.com",
        domain="example.com",
        ip=ipaddress.ip_address(client),
        helo=text,
        validated_domain=text,
        receiver=text,
    )


if __name__ == "__main__":
    run(check)
