"""The ARC fuzz target (fuzz/fuzz_arc.py), run by Hypothesis so that CI exercises it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fuzzing import load_target

FUZZ = load_target("fuzz_arc")

#: Inputs that look like ARC fields, tag lists and messages, besides random octets.
plausible = st.lists(
    st.sampled_from(
        [
            b"i=1",
            b"i=2",
            b"i=51",
            b"a=rsa-sha256",
            b"a=ed25519-sha256",
            b"cv=none",
            b"cv=pass",
            b"cv=fail",
            b"d=example.com",
            b"s=s",
            b"h=from",
            b"bh=AAAA",
            b"b=AAAA",
            b"p=",
            b"k=ed25519",
            b"v=DKIM1",
            b";",
            b" ",
            b"\r\n ",
            b"\r\n",
            b"\n",
            b"=",
            b":",
            b"\xff",
            b"ARC-Seal: ",
            b"ARC-Message-Signature: ",
            b"ARC-Authentication-Results: ",
            b"Authentication-Results: fuzz.example; arc=pass",
            b"From: a\r\n",
        ]
    ),
    max_size=30,
).map(b"".join)


@settings(max_examples=200)
@given(st.binary(max_size=300) | plausible)
def test_the_fuzz_target_holds_for_any_input(data: bytes) -> None:
    """No input breaks an ARC parser, the validator or the sealer."""
    FUZZ.check(data)
