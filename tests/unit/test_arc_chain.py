"""The structure of an ARC chain (RFC 8617 §4.2, §5.2 steps 1 to 3), judged before DNS."""

from __future__ import annotations

import re

import pytest
from tests.arcchains import MESSAGE, build, validate

from mailwright.auth.arc import ChainStatus
from mailwright.auth.arc.chain import Broken, Chain, read_chain
from mailwright.auth.message import parse_message


def replace_field(message: bytes, name: bytes, instance: int, new: bytes | None) -> bytes:
    """``message`` with the ``name`` field of ``instance`` replaced by ``new`` (or removed)."""
    pattern = re.compile(
        rb"^" + re.escape(name) + rb":[^\r\n]*(?:\r\n[ \t][^\r\n]*)*\r\n", re.MULTILINE
    )
    for match in pattern.finditer(message):
        if re.search(rb"i=" + str(instance).encode() + rb";", match.group(0)):
            start, end = match.span()
            return message[:start] + (new or b"") + message[end:]
    raise AssertionError(f"no {name!r} of instance {instance}")


def field_of(message: bytes, name: bytes, instance: int) -> bytes:
    pattern = re.compile(
        rb"^" + re.escape(name) + rb":[^\r\n]*(?:\r\n[ \t][^\r\n]*)*\r\n", re.MULTILINE
    )
    for match in pattern.finditer(message):
        if re.search(rb"i=" + str(instance).encode() + rb";", match.group(0)):
            return match.group(0)
    raise AssertionError(f"no {name!r} of instance {instance}")


class TestNoChain:
    def test_a_message_without_arc_fields_is_none(self) -> None:
        """No ARC field at all gives none, without asking DNS."""
        assert read_chain(parse_message(MESSAGE)) is None
        assert validate(MESSAGE).result is ChainStatus.NONE

    def test_an_empty_message_is_none(self) -> None:
        """Even zero octets have a status: none."""
        assert validate(b"").result is ChainStatus.NONE


class TestStructure:
    def test_a_sealed_chain_reads_as_its_sets(self) -> None:
        """Three hops give a chain of three complete sets."""
        chain = read_chain(parse_message(build(3)))

        assert isinstance(chain, Chain)
        assert chain.highest == 3
        assert [found.instance for found in chain.sets] == [1, 2, 3]

    @pytest.mark.parametrize(
        "name", [b"ARC-Seal", b"ARC-Message-Signature", b"ARC-Authentication-Results"]
    )
    def test_a_missing_field_fails_the_chain(self, name: bytes) -> None:
        """Each instance needs all three fields (RFC 8617 §4.2.1)."""
        message = replace_field(build(2), name, 1, None)

        result = validate(message)

        assert result.result is ChainStatus.FAIL
        assert "instance 1 has no" in result.reason

    @pytest.mark.parametrize(
        "name", [b"ARC-Seal", b"ARC-Message-Signature", b"ARC-Authentication-Results"]
    )
    def test_a_duplicated_field_fails_the_chain(self, name: bytes) -> None:
        """Two fields of one kind in one instance fail, even when identical."""
        message = build(1)
        message = field_of(message, name, 1) + message

        result = validate(message)

        assert result.result is ChainStatus.FAIL
        assert "has 2" in result.reason

    def test_a_gap_fails_the_chain(self) -> None:
        """Instances must run from 1 without a gap."""
        message = build(3)
        for name in (b"ARC-Seal", b"ARC-Message-Signature", b"ARC-Authentication-Results"):
            message = replace_field(message, name, 2, None)

        result = validate(message)

        assert result.result is ChainStatus.FAIL
        assert "instance 2 is missing" in result.reason

    @pytest.mark.parametrize("value", [b"0", b"51", b"x", b"", b"-1", b"1.0"])
    def test_an_instance_outside_1_to_50_fails(self, value: bytes) -> None:
        """i= must be a number from 1 to 50 (RFC 8617 §4.2.1)."""
        message = build(1).replace(b"i=1;", b"i=" + value + b";", 1)

        result = validate(message)

        assert result.result is ChainStatus.FAIL
        assert isinstance(read_chain(parse_message(message)), Broken)

    def test_an_aar_without_its_instance_prefix_fails(self) -> None:
        """An ARC-Authentication-Results must start with i=N; (RFC 8617 §4.1.1)."""
        aar = field_of(build(1), b"ARC-Authentication-Results", 1)
        message = build(1).replace(aar, aar.replace(b"i=1; ", b""))

        result = validate(message)

        assert result.result is ChainStatus.FAIL
        assert "i=N;" in result.reason


class TestChainValidation:
    def test_cv_other_than_none_at_instance_1_fails(self) -> None:
        """The first seal must say cv=none (RFC 8617 §5.2 step 3)."""
        seal = field_of(build(1), b"ARC-Seal", 1)
        message = build(1).replace(seal, seal.replace(b"cv=none", b"cv=pass"))

        result = validate(message)

        assert result.result is ChainStatus.FAIL
        assert "cv=pass, not none" in result.reason

    def test_cv_none_above_instance_1_fails(self) -> None:
        """Seals above the first must say cv=pass."""
        message = build(2)
        seal = field_of(message, b"ARC-Seal", 2)
        message = message.replace(seal, seal.replace(b"cv=pass", b"cv=none"))

        assert validate(message).result is ChainStatus.FAIL

    def test_a_newest_seal_saying_fail_terminates_the_chain(self) -> None:
        """cv=fail on the newest seal fails without verifying anything (§5.2 step 2)."""
        message = build(2)
        seal = field_of(message, b"ARC-Seal", 2)
        message = message.replace(seal, seal.replace(b"cv=pass", b"cv=fail"))

        result = validate(message)
        broken = read_chain(parse_message(message))

        assert result.result is ChainStatus.FAIL
        assert result.terminated
        assert isinstance(broken, Broken)
        assert broken.newest_failed

    def test_an_older_seal_saying_fail_terminates_the_chain(self) -> None:
        """cv=fail below the newest seal fails too, and is reported as terminated."""
        message = build(3)
        seal = field_of(message, b"ARC-Seal", 2)
        message = message.replace(seal, seal.replace(b"cv=pass", b"cv=fail"))

        result = validate(message)

        assert result.result is ChainStatus.FAIL
        assert result.terminated
