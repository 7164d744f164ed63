"""Tests for mailwright.auth.dkim.sign: what a Signer writes and what it refuses."""

from __future__ import annotations

from functools import cache

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwright.auth.dkim.algorithms import PrivateKey
from mailwright.auth.dkim.canonical import Canonicalization
from mailwright.auth.dkim.errors import KeyLoadError, SignerConfigError
from mailwright.auth.dkim.keys import format_key_record
from mailwright.auth.dkim.result import DkimResult, Outcome
from mailwright.auth.dkim.sign import Signer
from mailwright.auth.dkim.signature import Signature, parse_signature
from mailwright.auth.dkim.verify import verify
from mailwright.auth.message import parse_message
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Query, run_sync

NOW = 1_700_000_000.0
MESSAGE = (
    b"From: Joe <joe@example.com>\r\n"
    b"To: sue@example.net\r\n"
    b"Subject: dinner\r\n"
    b"Received: from somewhere\r\n"
    b"\r\n"
    b"Are you hungry yet?\r\n"
)

#: A 512-bit RSA key, made with ``openssl genrsa 512`` for these tests only.
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


@cache
def rsa_key() -> rsa.RSAPrivateKey:
    """One 2048-bit key for the module (generation is slow)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def signer(key: PrivateKey | None = None, **options: object) -> Signer:
    """A signer for example.com, selector s1, at NOW."""
    return Signer(
        domain="example.com",
        selector="s1",
        key=key or rsa_key(),
        clock=lambda: NOW,
        **options,  # type: ignore[arg-type]
    )


def signature_of(field: bytes) -> Signature:
    """The parsed DKIM-Signature ``field`` (name, value, CRLF)."""
    [header] = parse_message(field + b"\r\n").headers
    parsed = parse_signature(header.value)
    assert isinstance(parsed, Signature), parsed
    return parsed


def verified(content: bytes, key: PrivateKey, now: float = NOW) -> list[DkimResult]:
    """Verify ``content`` with ``key`` published at s1._domainkey.example.com."""
    record = format_key_record(key).encode()

    def answer(query: Query) -> Answer:
        if query.text == "s1._domainkey.example.com":
            return Answer(query, LookupStatus.ANSWER, (record,))
        return Answer(query, LookupStatus.NXDOMAIN)

    return run_sync(verify(content, now=now), answer)


class TestRefusals:
    def test_rsa_sha1_is_refused(self) -> None:
        """RFC 8301 §3.1: rsa-sha1 must not be used to sign."""
        with pytest.raises(SignerConfigError, match="rsa-sha1 must not be used"):
            signer(algorithm="rsa-sha1")

    def test_rsa_keys_under_1024_bits_are_refused(self) -> None:
        """RFC 8301 §3.2: at least 1024 bits."""
        with pytest.raises(SignerConfigError, match="512-bit RSA key is too short"):
            Signer(domain="example.com", selector="s1", key=SHORT_RSA_PEM)

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"algorithm": "ed25519-sha256"}, "a rsa key cannot sign ed25519-sha256"),
            ({"algorithm": "rsa-sha512"}, "unknown signing algorithm"),
            ({"domain": "exa mple.com"}, "domain 'exa mple.com' is not a DNS name"),
            ({"selector": ""}, "selector '' is not a DNS name"),
            ({"identity": "joe@example.org"}, "not an address in example.com"),
            ({"identity": "joe"}, "not an address in example.com"),
            ({"expire_after": 0}, "expire_after=0 is not a positive duration"),
            ({"headers": ["to", "bad:name"]}, "invalid field name"),
        ],
    )
    def test_bad_options_are_refused_at_construction(
        self, options: dict[str, object], message: str
    ) -> None:
        """Every refusal happens when the Signer is built, naming the offending value."""
        arguments: dict[str, object] = {"domain": "example.com", "selector": "s1"}
        arguments.update(options)

        with pytest.raises(SignerConfigError, match=message):
            Signer(key=rsa_key(), **arguments)  # type: ignore[arg-type]

    def test_other_key_objects_are_refused(self) -> None:
        """A loaded EC key is not an RSA or Ed25519 key."""
        key = ec.generate_private_key(ec.SECP256R1())

        with pytest.raises(SignerConfigError, match="keys cannot sign"):
            Signer(domain="example.com", selector="s1", key=key)  # type: ignore[arg-type]

    def test_an_unreadable_key_is_a_key_load_error(self) -> None:
        """KeyLoadError is a SignerConfigError, raised at construction."""
        with pytest.raises(KeyLoadError):
            Signer(domain="example.com", selector="s1", key=b"garbage!")


class TestWhatIsSigned:
    def test_from_is_listed_once_more_than_it_occurs(self) -> None:
        """Over-signing From: no From can be added without breaking the signature."""
        field = signer().sign(MESSAGE)

        assert signature_of(field).headers == ("from", "from", "subject", "to")

    def test_fields_not_recommended_are_not_signed(self) -> None:
        """Received is not in the §5.4.1 list and is left out."""
        assert "received" not in signature_of(signer().sign(MESSAGE)).headers

    def test_repeated_fields_are_listed_as_often_as_they_occur(self) -> None:
        """Every instance of a signed field is covered."""
        content = MESSAGE.replace(b"To:", b"Cc: a@example.net\r\nCc: b@example.net\r\nTo:")

        assert signature_of(signer().sign(content)).headers.count("cc") == 2

    def test_list_unsubscribe_fields_are_always_signed(self) -> None:
        """RFC 8058 §4, even when the configured list leaves them out."""
        content = (
            b"List-Unsubscribe: <https://example.com/u>\r\n"
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" + MESSAGE
        )

        headers = signature_of(signer(headers=["subject"]).sign(content)).headers

        assert headers == ("from", "from", "subject", "list-unsubscribe", "list-unsubscribe-post")

    def test_t_comes_from_the_clock_and_x_from_the_expiry(self) -> None:
        """t= is the signing time; x= adds expire_after to it."""
        parsed = signature_of(signer(expire_after=3600).sign(MESSAGE))

        assert (parsed.timestamp, parsed.expiration) == (int(NOW), int(NOW) + 3600)

    def test_l_is_never_written(self) -> None:
        """l= lets anyone append to the body; we never use it."""
        parsed = signature_of(signer().sign(MESSAGE))

        assert parsed.body_length is None
        assert "l" not in parsed.tags

    def test_relaxed_relaxed_is_the_default(self) -> None:
        """c=relaxed/relaxed survives the most common rewrites in transit."""
        parsed = signature_of(signer().sign(MESSAGE))

        assert (parsed.header_canon, parsed.body_canon) == (
            Canonicalization.RELAXED,
            Canonicalization.RELAXED,
        )

    def test_the_field_is_folded_with_crlf(self) -> None:
        """Lines stay within the width, continuation lines start with a space, CRLF ends it."""
        field = signer(identity="joe@mail.example.com").sign(MESSAGE)

        lines = field.split(b"\r\n")
        assert field.endswith(b"\r\n")
        assert lines[-1] == b""
        assert all(len(line) <= 78 for line in lines)
        assert all(line.startswith(b" ") for line in lines[1:-1])
        assert b"\n" not in field.replace(b"\r\n", b"")

    def test_ed25519_signatures_are_deterministic(self) -> None:
        """Same key, message and clock: the same field (Ed25519 has no randomness)."""
        first = signer(ed_key()).sign(MESSAGE)
        second = signer(ed_key()).sign(MESSAGE)

        assert first == second
        assert signature_of(first).algorithm.value == "ed25519-sha256"


class TestSignThenVerify:
    @pytest.mark.parametrize("make", [rsa_key, ed_key])
    @pytest.mark.parametrize("header_canon", list(Canonicalization))
    @pytest.mark.parametrize("body_canon", list(Canonicalization))
    def test_our_signatures_verify(
        self,
        make: object,
        header_canon: Canonicalization,
        body_canon: Canonicalization,
    ) -> None:
        """Both algorithms, all four c= combinations."""
        key = make()  # type: ignore[operator]
        field = signer(key, header_canon=header_canon, body_canon=body_canon).sign(MESSAGE)

        [result] = verified(field + MESSAGE, key)

        assert result.result is Outcome.PASS, result.reason

    def test_a_from_added_above_breaks_the_signature(self) -> None:
        """Over-signing at work: a second From fails verification."""
        field = signer().sign(MESSAGE)

        [result] = verified(field + b"From: evil@example.org\r\n" + MESSAGE, rsa_key())

        assert result.result is Outcome.FAIL

    def test_a_from_added_below_breaks_the_signature(self) -> None:
        """The extra h=from entry is null at signing time; a new bottom From changes it."""
        field = signer().sign(MESSAGE)
        content = field + MESSAGE.replace(b"\r\n\r\n", b"\r\nFrom: evil@example.org\r\n\r\n", 1)

        [result] = verified(content, rsa_key())

        assert result.result is Outcome.FAIL

    def test_a_signer_built_from_pem_holds_the_loaded_key(self) -> None:
        """The key is parsed once, at construction, and every message reuses it."""
        text = rsa_key().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

        built = Signer(domain="example.com", selector="s1", key=text, clock=lambda: NOW)

        assert isinstance(built.key, rsa.RSAPrivateKey)
        assert verified(built.sign(MESSAGE) + MESSAGE, rsa_key())[0].passed

    @settings(max_examples=40, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["Subject", "To", "Cc", "X-Thing", "Date", "Reply-To"]),
                st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=30),
                st.booleans(),
            ),
            max_size=6,
        ),
        st.lists(
            st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=90),
            max_size=8,
        ),
        st.sampled_from(list(Canonicalization)),
        st.sampled_from(list(Canonicalization)),
    )
    def test_arbitrary_messages_sign_and_verify(
        self,
        fields: list[tuple[str, str, bool]],
        lines: list[str],
        header_canon: Canonicalization,
        body_canon: Canonicalization,
    ) -> None:
        """Whatever the header and body hold, what we sign we verify."""
        header = b"From: a@example.com\r\n" + b"".join(
            f"{name}: {value}".encode("latin-1") + (b"\r\n folded" if fold else b"") + b"\r\n"
            for name, value, fold in fields
        )
        content = header + b"\r\n" + b"".join(line.encode("latin-1") + b"\r\n" for line in lines)
        field = signer(ed_key(), header_canon=header_canon, body_canon=body_canon).sign(content)

        [result] = verified(field + content, ed_key())

        assert result.result is Outcome.PASS, result.reason
