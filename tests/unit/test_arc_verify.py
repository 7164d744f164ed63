"""Validating ARC chains (RFC 8617 §5.2): signatures, keys, DNS failures and the results."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.arcchains import (
    MESSAGE,
    RECORDS,
    answers,
    build,
    record,
    seal_once,
    sealer,
    validate,
)

from mailwright.auth.arc import ChainStatus, Sealed, verify_chain
from mailwright.auth.dkim import format_key_record
from mailwright.auth.message import parse_message
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import run_sync


class TestPassingChains:
    def test_one_to_five_hops_pass(self) -> None:
        """Chains of 1 to 5 of our own sets pass, with every seal valid."""
        message = MESSAGE
        for hops in range(1, 6):
            message = seal_once(message, f"hop{hops}.example")
            result = validate(message)

            assert result.result is ChainStatus.PASS, result.reason
            assert result.highest_instance == hops
            assert all(found.chain_valid for found in result.sets)
            assert result.oldest_pass == 0

    def test_a_parsed_message_is_accepted_as_well_as_bytes(self) -> None:
        """verify_chain takes a Message or its octets alike."""
        message = build(2)
        answer_all = validate(message)

        assert answer_all.passed
        assert run_sync(verify_chain(parse_message(message)), answers()).passed

    def test_keys_shared_by_sets_are_asked_once(self) -> None:
        """Each key record is asked once per validation, however many fields name it."""
        evaluation = verify_chain(build(3))
        step = next(evaluation)

        assert len(step) == len(set(step)) == 3
        evaluation.close()

    def test_the_sealers_and_their_results_are_reported(self) -> None:
        """Each set's seal domain and AAR are kept for DMARC's trusted sealers (§7.2.1)."""
        result = validate(build(3))

        assert result.sealer_domains == ("hop1.example", "hop2.example", "hop3.example")
        assert result.validated_sealers == result.sealer_domains
        trusted = result.trusted_set(["HOP2.example"])
        assert trusted is not None
        assert trusted.instance == 2
        assert trusted.results is not None
        assert trusted.results.authserv_id == "hop2.example"
        assert result.trusted_set(["elsewhere.example"]) is None

    def test_the_method_result_is_arc_pass(self) -> None:
        """to_method_result gives the arc= resinfo of RFC 8617 §6."""
        method = validate(build(1)).to_method_result(remote_ip="192.0.2.1")

        assert (method.method, method.result) == ("arc", "pass")
        assert method.get("smtp", "remote-ip") == "192.0.2.1"
        assert method.get("header", "oldest-pass") is None


class TestFailingChains:
    def test_a_changed_body_fails_the_newest_signature(self) -> None:
        """A body changed after the last seal fails its ARC-Message-Signature."""
        result = validate(build(2) + b"more\r\n")

        assert result.result is ChainStatus.FAIL
        assert "ARC-Message-Signature i=2: body hash did not verify" in result.reason

    def test_a_change_before_the_last_hop_moves_oldest_pass(self) -> None:
        """hop2 validates, then changes the body (a list footer) and seals: oldest-pass is 2."""
        received = build(1)
        chain = validate(received)
        changed = received + b"-- \r\nlist footer\r\n"
        sealed = sealer("hop2.example").seal(changed, chain)
        assert isinstance(sealed, Sealed)

        result = validate(b"".join(sealed.fields) + changed)

        assert result.passed, result.reason
        assert result.oldest_pass == 2
        assert result.sets[0].ams_valid is False
        assert result.to_method_result().get("header", "oldest-pass") == "2"

    def test_a_forged_seal_fails(self) -> None:
        """A seal signed by another key fails the chain, named by instance."""
        records = dict(RECORDS)
        other = ed25519.Ed25519PrivateKey.generate()
        records["s._domainkey.hop1.example"] = format_key_record(other)

        result = validate(build(1), records)

        assert result.result is ChainStatus.FAIL
        assert "did not verify" in result.reason
        assert result.validated_sealers == ()
        assert result.trusted_set(["hop1.example"]) is None

    def test_a_dns_timeout_fails_and_says_temperror(self) -> None:
        """DNS failures are permanent for ARC (§5.2.1); the reason says temperror."""
        faults = {"s._domainkey.hop1.example": LookupStatus.TIMEOUT}

        result = validate(build(1), faults=faults)

        assert result.result is ChainStatus.FAIL
        assert result.reason.startswith("temperror: ")

    def test_a_missing_key_fails(self) -> None:
        """NXDOMAIN for the key fails the chain."""
        result = validate(build(1), {})

        assert result.result is ChainStatus.FAIL
        assert "does not exist" in result.reason

    def test_a_revoked_key_fails(self) -> None:
        """An empty p= is a revoked key."""
        records = {**RECORDS, "s._domainkey.hop1.example": "v=DKIM1; k=ed25519; p="}

        result = validate(build(1), records)

        assert result.result is ChainStatus.FAIL
        assert "revoked" in result.reason

    def test_a_key_of_the_wrong_type_fails(self) -> None:
        """An RSA record cannot verify an Ed25519 seal."""
        records = {
            **RECORDS,
            "s._domainkey.hop1.example": record("hop1.example").replace("k=ed25519", "k=rsa"),
        }

        assert validate(build(1), records).result is ChainStatus.FAIL

    def test_the_failed_method_result_has_a_comment(self) -> None:
        """A failing arc= carries the reason as a comment, for people."""
        method = validate(build(1) + b"x").to_method_result()

        assert method.result == "fail"
        assert method.comment

    def test_invalid_base64_in_the_newest_signature_fails(self) -> None:
        """A b= that is not base64 fails with a reason rather than raising."""
        message = build(1).replace(b"bh=", b"bh=!!", 1)

        result = validate(message)

        assert result.result is ChainStatus.FAIL
        assert "base64" in result.reason


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"")),
    subject=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    hops=st.integers(1, 3),
)
def test_any_sealed_message_passes_and_any_changed_body_fails(
    body: bytes, subject: str, hops: int
) -> None:
    """Whatever the body and subject, our chains pass, and fail once the body grows."""
    message = b"From: a@origin.example\r\nSubject: " + subject.encode() + b"\r\n\r\n" + body
    sealed = build(hops, message)

    assert validate(sealed).passed
    assert validate(sealed + b"\r\nextra line\r\n").result is ChainStatus.FAIL
