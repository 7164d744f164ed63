"""Sealing as an ARC intermediary (RFC 8617 §5.1): what is added, and when nothing is."""

from __future__ import annotations

import re

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from tests.arcchains import MESSAGE, NOW, RECORDS, build, key, sealer, validate

from mailwright.auth.arc import (
    ArcResult,
    ArcSealer,
    ChainStatus,
    NotSealed,
    Sealed,
    SealerConfigError,
    SealError,
)
from mailwright.auth.authres import AuthenticationResults, result
from mailwright.auth.dkim import format_key_record
from mailwright.auth.message import parse_message

HOP = "hop1.example"

#: A 512-bit RSA key, made with ``openssl genrsa 512`` (the one the DKIM signer tests use).
SHORT_RSA_PEM = b"""-----BEGIN RSA PRIVATE KEY-----
MIIBOwIBAAJBAMddLc/wQNiahStbDaoyIeFOWJbzhzi+A3/398wF4nLjLay6qMBg
ea0EiAxRNxQBrqo3wXVyFZ2kV3ovXTc4MicCAwEAAQJARZFRTC9FIZCCCcgDM7G8
utdQ+JPQSs+bfwszcAFZrMbVBqKx2I75HaOWIR3wiPcckRbOuGGp5myx3oQv+gcd
YQIhAPp3pRcR4VZljhc/BxNNqG9XX31MpCdH28CaAlXRhFTRAiEAy8SNWk0WN+F8
pRInz6ENs/cA4YOYod3XoY12HDottXcCIQDCsEm1WwKrY5lFXIqlaJHqqiHhhbd7
iRG57nyuNIQGYQIhAINaviBTBxqYwegLTxyaXqH/fVLiqRbXUjSzY0sI+gQ7AiBq
fuoxxcFSPBUzKIrg3GbB13k5/RYSaNWTkqry4/k3zg==
-----END RSA PRIVATE KEY-----
"""


def sealed(content: bytes, chain: ArcResult | None = None, **options: object) -> Sealed:
    outcome = sealer(HOP).seal(content, validate(content) if chain is None else chain, **options)  # type: ignore[arg-type]
    assert isinstance(outcome, Sealed), outcome
    return outcome


class TestConfiguration:
    def test_rsa_keys_under_1024_bits_are_refused(self) -> None:
        """RFC 8301 §3.2: no RSA key under 1024 bits."""
        with pytest.raises(SealerConfigError, match="512-bit RSA key is too short"):
            ArcSealer(domain=HOP, selector="s", key=SHORT_RSA_PEM, authserv_id=HOP)

    @pytest.mark.parametrize(
        ("options", "match"),
        [
            ({"domain": "bad domain"}, "not a DNS name"),
            ({"selector": ""}, "not a DNS name"),
            ({"authserv_id": "two words"}, "not a token"),
            ({"algorithm": "rsa-sha256"}, "cannot seal"),
            ({"algorithm": "rsa-sha1"}, "must not be used"),
            ({"algorithm": "nonsense"}, "unknown signing algorithm"),
            ({"headers": ["from", "arc-seal"]}, "must not be signed"),
            ({"headers": ["from", "Authentication-Results"]}, "must not be signed"),
            ({"key": b"not a key"}, "cannot be used"),
        ],
    )
    def test_bad_options_are_refused_at_construction(
        self, options: dict[str, object], match: str
    ) -> None:
        """Each option we will not use raises SealerConfigError naming it."""
        arguments: dict[str, object] = {
            "domain": HOP,
            "selector": "s",
            "key": key(HOP),
            "authserv_id": HOP,
        }
        arguments.update(options)
        with pytest.raises(SealerConfigError, match=match):
            ArcSealer(**arguments)  # type: ignore[arg-type]


class TestSealing:
    def test_the_first_set_says_cv_none_and_instance_1(self) -> None:
        """A message without a chain gets i=1 and cv=none; the AAR carries arc=none."""
        outcome = sealed(MESSAGE)

        assert (outcome.instance, outcome.cv) == (1, ChainStatus.NONE)
        assert outcome.seal.startswith(b"ARC-Seal: a=ed25519-sha256;")
        assert b"cv=none" in outcome.seal
        assert outcome.authentication_results.startswith(
            b"ARC-Authentication-Results: i=1; hop1.example;\r\n arc=none"
        )
        assert all(header.endswith(b"\r\n") for header in outcome.fields)

    def test_our_authentication_results_are_copied_and_others_ignored(self) -> None:
        """The AAR merges our Authentication-Results fields, comments kept, others left out."""
        message = (
            b"Authentication-Results: hop1.example; spf=pass (good) smtp.mailfrom=a.example\r\n"
            b"Authentication-Results: other.example; dkim=fail\r\n"
            b"Authentication-Results: HOP1.example; dkim=pass header.d=a.example\r\n" + MESSAGE
        )

        aar = sealed(message).authentication_results

        assert b"spf=pass (good) smtp.mailfrom=a.example" in aar
        assert b"dkim=pass header.d=a.example" in aar
        assert b"other" not in aar
        assert b"dkim=fail" not in aar

    def test_a_forged_arc_stamp_in_our_name_is_replaced(self) -> None:
        """An arc=pass in a field bearing our authserv-id never reaches the seal."""
        message = b"Authentication-Results: hop1.example; arc=pass\r\n" + MESSAGE

        aar = sealed(message).authentication_results

        assert b"arc=none" in aar
        assert b"arc=pass" not in aar

    def test_results_can_be_given_as_text_or_parsed(self) -> None:
        """An explicit payload, as text or as AuthenticationResults, is what is sealed."""
        text = sealed(MESSAGE, results="spf=pass smtp.mailfrom=a.example")
        parsed = sealed(
            MESSAGE,
            results=AuthenticationResults(HOP, (result("spf", "pass"), result("arc", "none"))),
        )

        assert b"spf=pass smtp.mailfrom=a.example" in text.authentication_results
        assert b"arc=none" in text.authentication_results
        assert b"spf=pass" in parsed.authentication_results

    @pytest.mark.parametrize(
        "results",
        [
            "spf=",
            "arc=pass",
            AuthenticationResults("someone.else", (result("spf", "pass"),)),
        ],
    )
    def test_results_that_cannot_be_ours_raise(self, results: object) -> None:
        """A payload that does not parse, contradicts the chain, or is not ours raises."""
        with pytest.raises(SealError):
            sealer(HOP).seal(MESSAGE, validate(MESSAGE), results=results)  # type: ignore[arg-type]

    def test_a_chain_result_that_is_not_the_messages_raises(self) -> None:
        """Sealing with the status of another message is a caller's mistake."""
        none = validate(MESSAGE)
        two = validate(build(2))

        with pytest.raises(SealError):
            sealer(HOP).seal(build(1), none)
        with pytest.raises(SealError):
            sealer(HOP).seal(MESSAGE, two)
        with pytest.raises(SealError):
            sealer(HOP).seal(build(1), two)

    def test_the_timestamp_is_the_clocks_or_the_one_given(self) -> None:
        """t= comes from the clock, or from the timestamp argument."""
        clocked = ArcSealer(
            domain=HOP, selector="s", key=key(HOP), authserv_id=HOP, clock=lambda: 1234.9
        )
        outcome = clocked.seal(MESSAGE, validate(MESSAGE))

        assert isinstance(outcome, Sealed)
        assert b"t=1234" in outcome.seal
        assert b"t=42" in sealed(MESSAGE, timestamp=42).seal

    def test_an_explicit_header_list_is_signed_as_given(self) -> None:
        """headers= is the h= list exactly, absent fields included."""
        custom = ArcSealer(
            domain=HOP, selector="s", key=key(HOP), authserv_id=HOP, headers=["Subject", "from"]
        )
        outcome = custom.seal(MESSAGE, validate(MESSAGE))

        assert isinstance(outcome, Sealed)
        assert b"h=subject:from;" in outcome.message_signature

    def test_rsa_seals_verify_too(self) -> None:
        """An rsa-sha256 sealer's sets verify."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        records = {**RECORDS, "rsa._domainkey.hop1.example": format_key_record(private)}
        rsa_sealer = ArcSealer(domain=HOP, selector="rsa", key=private, authserv_id=HOP)

        outcome = rsa_sealer.seal(MESSAGE, validate(MESSAGE), timestamp=int(NOW))

        assert isinstance(outcome, Sealed)
        assert b"a=rsa-sha256" in outcome.seal
        assert validate(b"".join(outcome.fields) + MESSAGE, records).passed


class TestNotSealing:
    def test_a_chain_marked_failed_gets_no_new_set(self) -> None:
        """After a seal saying cv=fail nothing is added (RFC 8617 §5.1 step 1)."""
        broken = build(1) + b"changed\r\n"
        first = sealer("hop2.example").seal(broken, validate(broken))
        assert isinstance(first, Sealed)
        assert first.cv is ChainStatus.FAIL
        message = b"".join(first.fields) + broken

        outcome = sealer("hop3.example").seal(message, validate(message))

        assert isinstance(outcome, NotSealed)
        assert outcome.fields == ()
        assert "cv=fail" in outcome.reason

    def test_a_failed_chain_is_sealed_over_the_new_set_only(self) -> None:
        """A cv=fail seal covers its own set alone (RFC 8617 §5.1.2), so it still verifies."""
        broken = build(1) + b"changed\r\n"
        outcome = sealer("hop2.example").seal(broken, validate(broken))
        assert isinstance(outcome, Sealed)

        alone = parse_message(b"".join(outcome.fields) + MESSAGE)
        fields = [h for h in alone.headers if h.lower_name.startswith("arc-")]

        assert [h.lower_name for h in fields] == [
            "arc-seal",
            "arc-message-signature",
            "arc-authentication-results",
        ]
        assert b"cv=fail" in outcome.seal

    def test_fifty_sets_are_the_limit(self) -> None:
        """A chain of 50 sets gets no 51st (RFC 8617 §4.2.1)."""
        message = build(50)

        chain = validate(message)
        outcome = sealer("hop51.example").seal(message, chain)

        assert chain.passed
        assert isinstance(outcome, NotSealed)
        assert "50" in outcome.reason

    def test_a_51st_set_added_anyway_fails_validation(self) -> None:
        """A forged i=51 set fails: instances above 50 are not valid."""
        message = build(2)
        forged = re.sub(rb"i=2;", b"i=51;", message)

        assert validate(forged).result is ChainStatus.FAIL


def test_ed25519_is_the_default_for_an_ed25519_key() -> None:
    """The algorithm follows the key when not given."""
    assert sealer(HOP).algorithm.value == "ed25519-sha256"
    assert isinstance(key(HOP), ed25519.Ed25519PrivateKey)
