"""The DKIM fuzz target (fuzz/fuzz_dkim.py), run by Hypothesis so that CI exercises it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fuzzing import load_target

FUZZ = load_target("fuzz_dkim")

#: Inputs that look like signatures, key records and messages, besides random octets.
plausible = st.lists(
    st.sampled_from(
        [
            b"v=1",
            b"a=rsa-sha256",
            b"a=ed25519-sha256",
            b"d=example.com",
            b"s=s",
            b"h=from",
            b"bh=AAAA",
            b"b=AAAA",
            b"p=",
            b"k=ed25519",
            b"v=DKIM1",
            b"t=s",
            b"l=1",
            b"x=1",
            b";",
            b" ",
            b"\r\n ",
            b"\r\n",
            b"\n",
            b"=",
            b":",
            b"\xff",
            b"From: a\r\n",
        ]
    ),
    max_size=30,
).map(b"".join)


@settings(max_examples=300)
@given(st.binary(max_size=300) | plausible)
def test_the_fuzz_target_holds_for_any_input(data: bytes) -> None:
    """No input breaks a parser or an invariant of canonicalisation."""
    FUZZ.check(data)
