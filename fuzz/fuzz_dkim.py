"""Fuzz target for DKIM: tag lists, signatures, key records, canonicalisation, verification.

Run it with atheris (not a dependency; ``pip install atheris``; see ``_harness.py``)::

    python fuzz/fuzz_dkim.py -max_total_time=600

:func:`check` is the target. It feeds one input to every parser and to both
canonicalisations, and verifies the input as a message with the input also
served as the key record, and asserts the invariants that must hold for any
octets: nothing raises, canonical bodies end in CRLF (or are empty, for
relaxed) and are fixed points, streaming and one-shot canonicalisation
agree. ``tests/unit/test_dkim_fuzz.py`` calls the same function from
Hypothesis, so the target runs in CI without atheris.
"""

from __future__ import annotations

from _harness import run

from mailwright.auth.dkim.canonical import (
    BodyCanonicalizer,
    Canonicalization,
    canonicalize_body,
    canonicalize_header,
)
from mailwright.auth.dkim.hashing import blank_signature
from mailwright.auth.dkim.keyrecord import parse_key_record
from mailwright.auth.dkim.signature import parse_signature
from mailwright.auth.dkim.tags import parse_tag_list
from mailwright.auth.dkim.verify import verify
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Query, run_sync

#: The verification time used for every input (the middle of 2023).
NOW = 1_690_000_000.0


def check(data: bytes) -> None:
    """Exercise every DKIM parser on ``data``; raise AssertionError on a broken invariant."""
    parse_tag_list(data)
    parse_tag_list(data.decode("utf-8", "replace"))
    parse_signature(data)
    parse_key_record(data)
    blank_signature(b"DKIM-Signature:" + data)

    for method in Canonicalization:
        canonicalize_header(data, method)
        body = canonicalize_body(data, method)
        assert body.endswith(b"\r\n") or (body == b"" and method is Canonicalization.RELAXED)
        assert canonicalize_body(body, method) == body

        half = len(data) // 2
        streaming = BodyCanonicalizer(method)
        pieces = streaming.feed(data[:half]) + streaming.feed(data[half:]) + streaming.finish()
        assert pieces == body

    def answer(query: Query) -> Answer:
        return Answer(query, LookupStatus.ANSWER, (data,))

    message = b"DKIM-Signature:" + data if data[:1] != b"\n" else data
    for result in run_sync(verify(message, now=NOW), answer):
        assert result.reason


if __name__ == "__main__":
    run(check)
