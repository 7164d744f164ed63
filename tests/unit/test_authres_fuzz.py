"""The Authentication-Results fuzz target (fuzz/fuzz_authres.py), run by Hypothesis in CI."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fuzzing import load_target

FUZZ = load_target("fuzz_authres")

#: Pieces of real fields and messages, so that inputs get past the authserv-id.
plausible = st.lists(
    st.sampled_from(
        [
            b"mx.example.com",
            b"; ",
            b";",
            b" 1",
            b"spf=pass",
            b"dkim=fail",
            b"dmarc=none",
            b" reason=",
            b'"quoted \\" text"',
            b" smtp.mailfrom=a@example.com",
            b" header.d=example.com",
            b"(comment (nested))",
            b"none",
            b"=",
            b".",
            b"/1",
            b"\r\n\t",
            b"Authentication-Results: ",
            b"\r\n",
            b"\n",
            b"\xc3\xa9",
            b"\xff",
        ]
    ),
    max_size=30,
).map(b"".join)


@settings(max_examples=400)
@given(st.binary(max_size=300) | plausible)
def test_the_fuzz_target_holds_for_any_input(data: bytes) -> None:
    """No input breaks the reader, the writer's round trip or the message splitter."""
    FUZZ.check(data)


def test_a_real_field_round_trips_through_the_target() -> None:
    """The target reaches the round trip for a field that parses (not only the error path)."""
    FUZZ.check(b"mx.example.com; spf=pass smtp.mailfrom=a@example.com; dkim=none")
