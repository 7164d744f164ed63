"""The received-reports fuzz target (fuzz/fuzz_reports.py), run by Hypothesis so CI runs it.

Besides random octets and fragments of report XML, the inputs include the
small shared samples with a few octets changed, removed or inserted, and
cut short: the damage real reports arrive with.
"""

from __future__ import annotations

import gzip

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fuzzing import load_target
from tests.vectors import VECTORS

FUZZ = load_target("fuzz_reports")

#: The samples small enough to mutate quickly.
SAMPLES = [
    path.read_bytes()
    for path in sorted((VECTORS / "reports" / "aggregate").glob("*.xml"))
    if path.stat().st_size < 5000
]

#: Fragments of report XML, so that random inputs reach past the root element.
fragments = st.lists(
    st.sampled_from(
        [
            b"<feedback>",
            b"</feedback>",
            b"<report_metadata>",
            b"<policy_published>",
            b"<record>",
            b"<row>",
            b"<source_ip>",
            b"192.0.2.1",
            b"2001:db8::1",
            b"<count>",
            b"7",
            b"-1",
            b"<disposition>",
            b"PASS",
            b"<auth_results>",
            b"<dkim>",
            b"<spf>",
            b"<domain>",
            b"<result>",
            b"</",
            b">",
            b"<",
            b"&",
            b"&lt;",
            b'<!DOCTYPE feedback [<!ENTITY e "x">]>',
            b"&e;",
            b"<ns1:",
            b'xmlns="urn:ietf:params:xml:ns:dmarc-2.0"',
            b"<?xml version='1.0' encoding='bogus'?>",
            b"\x1f\x8b",
            b"PK\x03\x04",
            b"Content-Type: application/gzip\r\n\r\n",
            b"\xff",
            b"\x00",
        ]
    ),
    max_size=40,
).map(b"".join)


@st.composite
def mutated_samples(draw: st.DrawFn) -> bytes:
    """A small sample with up to five octets replaced, dropped or inserted, maybe cut short."""
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(0, 5))):
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["replace", "drop", "insert"]))
        octet = draw(st.integers(0, 255))
        if action == "replace":
            data[at] = octet
        elif action == "drop":
            del data[at]
        else:
            data.insert(at, octet)
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def test_the_samples_to_mutate_are_there() -> None:
    """The mutation strategy has samples to start from (the shared vectors are found)."""
    assert len(SAMPLES) >= 6


@settings(max_examples=300)
@given(st.binary(max_size=300) | fragments)
def test_the_fuzz_target_holds_for_any_input(data: bytes) -> None:
    """Random octets and XML fragments break no parser and no invariant."""
    FUZZ.check(data)


@settings(max_examples=200)
@given(mutated_samples())
def test_the_fuzz_target_holds_for_damaged_samples(data: bytes) -> None:
    """Real reports with a few octets damaged: parsed or refused with a ReportError."""
    FUZZ.check(data)


@settings(max_examples=50)
@given(mutated_samples())
def test_the_fuzz_target_holds_for_damaged_samples_compressed(data: bytes) -> None:
    """The same damage behind gzip, and gzip damaged in turn, unpacks or is refused."""
    packed = bytearray(gzip.compress(data))
    FUZZ.check(bytes(packed))
    packed[len(packed) // 2] ^= 0xFF
    FUZZ.check(bytes(packed))
