"""The audit's fuzz target (fuzz/fuzz_audit.py), run by Hypothesis so that CI exercises it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fuzzing import load_target

from mailwright.audit._https import parse_response

FUZZ = load_target("fuzz_audit")

#: Pieces of policies, records and chunked bodies, so that inputs get past the first line.
plausible = st.lists(
    st.sampled_from(
        [
            b"version: STSv1\n",
            b"mode: enforce\n",
            b"mode: none\n",
            b"max_age: 86400\n",
            b"max_age: 99999999999\n",
            b"mx: *.example.com\n",
            b"mx: mx1.example.com\n",
            b"v=STSv1; id=20261203",
            b"v=TLSRPTv1; rua=mailto:t@example.com",
            b";",
            b"5\r\nhello\r\n",
            b"0\r\n\r\n",
            b"-5\r\n",
            b"1_0\r\n",
            b"ffffffff\r\n",
            b"\r\n",
            b":",
            b"*",
            b".",
            b"\xff",
        ]
    ),
    max_size=25,
).map(b"".join)


@settings(max_examples=400)
@given(st.binary(max_size=300) | plausible)
def test_the_fuzz_target_holds_for_any_input(data: bytes) -> None:
    """No input breaks a parser of the audit or makes it loop."""
    FUZZ.check(data)


def test_chunk_sizes_that_int_would_take_are_refused() -> None:
    """A negative size once made the chunk reader walk backwards; now it is malformed."""
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    for size in (b"-64", b"+5", b"0x5", b"1_0"):
        assert parse_response(head + size + b"\r\nhello\r\n0\r\n\r\n") == (
            "the chunked body is malformed"
        )
    assert parse_response(head + b"5\r\nhello\r\n0\r\n\r\n").body == b"hello"  # type: ignore[union-attr]
