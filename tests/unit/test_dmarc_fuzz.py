"""The DMARC fuzz target (fuzz/fuzz_dmarc.py), run by Hypothesis so that CI exercises it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fuzzing import load_target

FUZZ = load_target("fuzz_dmarc")

#: Pieces of records and From fields, so that inputs reach past the first check.
pieces = st.lists(
    st.sampled_from(
        [
            b"v=DMARC1",
            b"; ",
            b";",
            b"p=reject",
            b"p=quarantine",
            b"sp=none",
            b"np=reject",
            b"psd=y",
            b"psd=n",
            b"t=y",
            b"pct=0",
            b"pct=50",
            b"adkim=s",
            b"aspf=r",
            b"fo=1:d",
            b"rua=mailto:a@example.com!10m",
            b"ruf=mailto:b@example.com,https://x.example/r",
            b"=",
            b",",
            b"a@example.com",
            b"Name <a@sub.example.com>",
            b'"quoted, name" ',
            b"(comment)",
            b"group:",
            b"<@route:",
            b"[192.0.2.1]",
            b"\xc3\xa9",
            b"\xff",
            b"\t",
        ]
    ),
    max_size=25,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | pieces)
def test_the_fuzz_target_holds_for_any_input(data: bytes) -> None:
    """No input makes a DMARC parser raise or breaks an invariant of the evaluation."""
    FUZZ.check(data)
