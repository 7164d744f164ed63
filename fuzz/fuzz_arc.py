"""Fuzz target for ARC: field parsers, chain structure, validation and sealing.

Run it with atheris (not a dependency; ``pip install atheris``; see ``_harness.py``)::

    python fuzz/fuzz_arc.py -max_total_time=600

:func:`check` is the target. It feeds one input to each ARC field parser
(as an ARC-Seal, an ARC-Message-Signature and an ARC-Authentication-Results
value), validates the input as a whole message with the input also served
as every key record, and seals that message with the status found, and
asserts the invariants that must hold for any octets: nothing raises; a
status is one of none, pass and fail and always comes with a reason; none
only for a message without ARC fields; a message that gets a set sealed
onto it still has a readable chain of one more instance.
``tests/unit/test_arc_fuzz.py`` calls the same function from Hypothesis, so
the target runs in CI without atheris.
"""

from __future__ import annotations

from _harness import run
from cryptography.hazmat.primitives.asymmetric import ed25519

from mailwright.auth.arc.chain import Chain, arc_fields, read_chain
from mailwright.auth.arc.fields import (
    parse_aar,
    parse_message_signature,
    parse_seal,
    read_instance,
)
from mailwright.auth.arc.result import ChainStatus
from mailwright.auth.arc.seal import ArcSealer, NotSealed, Sealed
from mailwright.auth.arc.verify import verify_chain
from mailwright.auth.message import HeaderField, parse_message
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Query, run_sync

#: The validation time used for every input (the middle of 2023).
NOW = 1_690_000_000.0

#: A fixed sealing key (the RFC 8032 §7.1 test-1 seed), so runs are reproducible.
SEALER = ArcSealer(
    domain="fuzz.example",
    selector="s",
    key=ed25519.Ed25519PrivateKey.from_private_bytes(
        bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    ),
    authserv_id="fuzz.example",
)


def check(data: bytes) -> None:
    """Exercise every ARC parser on ``data``; raise AssertionError on a broken invariant."""
    for name in ("ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results"):
        header = HeaderField(name, name.encode() + b":" + data)
        read_instance(header)
    parse_seal(HeaderField("ARC-Seal", b"ARC-Seal:" + data))
    parse_message_signature(HeaderField("ARC-Message-Signature", b"ARC-Message-Signature:" + data))
    parse_aar(HeaderField("ARC-Authentication-Results", b"ARC-Authentication-Results:" + data))

    def answer(query: Query) -> Answer:
        return Answer(query, LookupStatus.ANSWER, (data,))

    for content in (data, b"ARC-Seal:" + data, b"ARC-Authentication-Results: i=1;" + data):
        message = parse_message(content)
        result = run_sync(verify_chain(message, now=NOW), answer)
        assert result.result in ChainStatus
        assert result.reason
        assert (result.result is ChainStatus.NONE) == (not arc_fields(message))

        sealed = SEALER.seal(message, result, timestamp=int(NOW))
        assert isinstance(sealed, Sealed | NotSealed)
        if isinstance(sealed, Sealed):
            again = parse_message(b"".join(sealed.fields) + content)
            chain = read_chain(again)
            if result.passed or result.result is ChainStatus.NONE:
                assert isinstance(chain, Chain)
                assert chain.highest == sealed.instance


if __name__ == "__main__":
    run(check)
