"""The SPF fuzz target (fuzz/fuzz_spf.py), run by Hypothesis so that CI exercises it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fuzzing import load_target

FUZZ = load_target("fuzz_spf")

#: Inputs that look like SPF records, macros and explanations, besides random octets.
plausible = st.lists(
    st.sampled_from(
        [
            "v=spf1 ",
            " ",
            "-",
            "~",
            "?",
            "+",
            "all",
            "include:",
            "redirect=",
            "exp=",
            "a",
            "mx",
            "ptr",
            "exists:",
            "ip4:192.0.2.0/24",
            "ip6:2001:db8::/32",
            "/24",
            "//64",
            ":",
            "example.com",
            ".",
            "%{d}",
            "%{ir}",
            "%{l1r+-}",
            "%{p}",
            "%{c}",
            "%{t}",
            "%{S}",
            "%%",
            "%_",
            "%-",
            "%{",
            "}",
            "@",
            "\xff",
        ]
    ),
    max_size=30,
).map(lambda parts: "".join(parts).encode())


@settings(max_examples=300)
@given(st.binary(max_size=300) | plausible)
def test_the_fuzz_target_holds_for_any_input(data: bytes) -> None:
    """No input makes a parser raise or breaks an invariant of evaluation or counting."""
    FUZZ.check(data)
