"""Tests for mailwright.auth.dkim.keys and .algorithms: loading keys and using them."""

from __future__ import annotations

import base64
import hashlib
from functools import cache

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from tests.vectors import VECTORS as SHARED_VECTORS

from mailwright.auth.dkim.algorithms import (
    Algorithm,
    key_bits,
    key_type_of,
    sign_digest,
    verify_digest,
)
from mailwright.auth.dkim.errors import KeyLoadError
from mailwright.auth.dkim.keyrecord import KeyRecord, parse_key_record
from mailwright.auth.dkim.keys import (
    cached_public_key,
    format_key_record,
    generate_private_key,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_octets,
)
from mailwright.auth.dkim.sign import Signer

DKIMPY_DATA = SHARED_VECTORS / "dkim" / "dkimpy-data"
DIGEST = hashlib.sha256(b"header hash input").digest()
NO_ENCRYPTION = serialization.NoEncryption()


@cache
def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """One RSA key per size for the whole module (generation is slow)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def pem(
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, fmt: serialization.PrivateFormat
) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, NO_ENCRYPTION)


class TestPrivateKeys:
    def test_pkcs1_pem_is_read(self) -> None:
        """BEGIN RSA PRIVATE KEY, the form dkimpy and OpenDKIM write."""
        key = load_private_key(pem(rsa_key(), serialization.PrivateFormat.TraditionalOpenSSL))

        assert isinstance(key, rsa.RSAPrivateKey)
        assert key.key_size == 2048

    def test_pkcs8_pem_is_read_for_both_key_types(self) -> None:
        """BEGIN PRIVATE KEY holds RSA or Ed25519."""
        ed = ed25519.Ed25519PrivateKey.generate()

        loaded_rsa = load_private_key(pem(rsa_key(), serialization.PrivateFormat.PKCS8))
        loaded_ed = load_private_key(pem(ed, serialization.PrivateFormat.PKCS8).decode())

        assert isinstance(loaded_rsa, rsa.RSAPrivateKey)
        assert isinstance(loaded_ed, ed25519.Ed25519PrivateKey)

    def test_encrypted_pem_needs_its_password(self) -> None:
        """An encrypted key loads with the password and is refused without it."""
        locked = rsa_key().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )

        assert isinstance(load_private_key(locked, password=b"secret"), rsa.RSAPrivateKey)
        with pytest.raises(KeyLoadError, match="PEM private key could not be read"):
            load_private_key(locked)

    def test_the_dkimpy_raw_ed25519_seed_is_read(self) -> None:
        """dkimpy's test keys are the base64 of the 32-octet seed."""
        key = load_private_key((DKIMPY_DATA / "ed25519test.key").read_bytes())

        assert isinstance(key, ed25519.Ed25519PrivateKey)
        record = parse_key_record((DKIMPY_DATA / "ed25519test.dns").read_bytes().strip())
        assert isinstance(record, KeyRecord)
        assert public_key_octets(key) == record.public_key

    def test_the_rfc8032_test_key_gives_its_published_public_key(self) -> None:
        """RFC 8032 §7.1 test 1: the seed in dkimpy's data and the key in RFC 8463's example."""
        key = load_private_key((DKIMPY_DATA / "rfc8032_7_1.key").read_text())

        assert base64.b64encode(public_key_octets(key)) == (
            b"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
        )

    def test_the_seed_and_public_key_form_is_checked(self) -> None:
        """A 64-octet key is read when its halves agree and refused when they do not."""
        key = ed25519.Ed25519PrivateKey.generate()
        seed = key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, NO_ENCRYPTION
        )
        good = base64.b64encode(seed + public_key_octets(key))
        bad = base64.b64encode(seed + bytes(32))

        assert public_key_octets(load_private_key(good)) == public_key_octets(key)
        with pytest.raises(KeyLoadError, match="does not match"):
            load_private_key(bad)

    def test_pem_body_without_markers_is_read_as_der(self) -> None:
        """Base64 DER (a PEM file stripped of its marker lines) is accepted."""
        der = rsa_key().private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, NO_ENCRYPTION
        )

        assert isinstance(load_private_key(base64.encodebytes(der)), rsa.RSAPrivateKey)

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (b"not a key at all!", "neither PEM nor base64"),
            (base64.b64encode(b"x" * 40), "neither an Ed25519 seed nor DER"),
            (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "could not"),
        ],
    )
    def test_garbage_is_refused_with_a_reason(self, data: bytes, message: str) -> None:
        """KeyLoadError says which form was tried."""
        with pytest.raises(KeyLoadError, match=message):
            load_private_key(data)

    def test_other_key_types_are_refused(self) -> None:
        """An EC key cannot sign DKIM."""
        key = ec.generate_private_key(ec.SECP256R1())

        with pytest.raises(KeyLoadError, match="RSA or Ed25519 only"):
            load_private_key(pem(key, serialization.PrivateFormat.PKCS8))  # type: ignore[arg-type]


class TestPublicKeys:
    def test_rsa_keys_load_from_spki_and_pkcs1(self) -> None:
        """RFC 6376 specifies SubjectPublicKeyInfo; bare RSAPublicKey is also seen and read."""
        public = rsa_key().public_key()
        spki = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        pkcs1 = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)

        for data in (spki, pkcs1):
            loaded = load_public_key("rsa", data)
            assert isinstance(loaded, rsa.RSAPublicKey)
            assert loaded.public_numbers() == public.public_numbers()

    def test_ed25519_keys_are_32_raw_octets(self) -> None:
        """RFC 8463 §4.2: no DER wrapping."""
        public = ed25519.Ed25519PrivateKey.generate().public_key()

        assert isinstance(
            load_public_key("ed25519", public_key_octets(public)), ed25519.Ed25519PublicKey
        )
        assert "32 octets" in str(load_public_key("ed25519", b"\x00" * 44))

    @pytest.mark.parametrize(
        ("key_type", "data", "reason"),
        [
            ("rsa", b"\x30\x03\x02\x01\x01", "not a DER RSA public key"),
            ("dsa", b"", "unknown key type k=dsa"),
        ],
    )
    def test_unusable_keys_give_reasons(self, key_type: str, data: bytes, reason: str) -> None:
        """load_public_key never raises; it says why a key is unusable."""
        result = load_public_key(key_type, data)

        assert isinstance(result, str)
        assert reason in result

    def test_cached_public_keys_are_loaded_once_per_p_value(self) -> None:
        """The same k= and p= give the same loaded key; other octets give another."""
        first = ed25519.Ed25519PrivateKey.generate().public_key()
        second = ed25519.Ed25519PrivateKey.generate().public_key()

        loaded = cached_public_key("ed25519", public_key_octets(first))

        assert loaded is cached_public_key("ed25519", public_key_octets(first))
        assert isinstance(loaded, ed25519.Ed25519PublicKey)
        assert loaded.public_bytes_raw() == public_key_octets(first)
        assert cached_public_key("ed25519", public_key_octets(second)) is not loaded
        assert cached_public_key("ed25519", b"\x00" * 44) == load_public_key(
            "ed25519", b"\x00" * 44
        )

    def test_dkimpy_bad_key_record_has_a_truncated_key(self) -> None:
        """test_bad.txt holds an RSA key cut short: it parses as a record, not as a key."""
        record = parse_key_record((DKIMPY_DATA / "test_bad.txt").read_bytes().strip())

        assert isinstance(record, KeyRecord)
        assert isinstance(load_public_key(record.key_type, record.public_key), str)

    def test_a_written_key_record_reads_back(self) -> None:
        """format_key_record gives the TXT record that publishes the key."""
        key = ed25519.Ed25519PrivateKey.generate()

        record = parse_key_record(format_key_record(key, testing=True))

        assert isinstance(record, KeyRecord)
        assert (record.key_type, record.testing) == ("ed25519", True)
        assert record.public_key == public_key_octets(key)


class TestAlgorithms:
    @pytest.mark.parametrize(
        ("algorithm", "key_type", "hash_name"),
        [
            (Algorithm.RSA_SHA256, "rsa", "sha256"),
            (Algorithm.ED25519_SHA256, "ed25519", "sha256"),
            (Algorithm.RSA_SHA1, "rsa", "sha1"),
        ],
    )
    def test_algorithms_name_a_key_type_and_a_hash(
        self, algorithm: Algorithm, key_type: str, hash_name: str
    ) -> None:
        """a= values split into k= and the hash."""
        assert (algorithm.key_type, algorithm.hash_name) == (key_type, hash_name)
        assert algorithm.new_hash().name == hash_name

    @pytest.mark.parametrize("make", [lambda: rsa_key(), ed25519.Ed25519PrivateKey.generate])
    def test_a_signed_digest_verifies_and_a_changed_one_does_not(self, make: object) -> None:
        """sign_digest and verify_digest agree, for both key types."""
        key = make()  # type: ignore[operator]
        algorithm = Algorithm.RSA_SHA256 if key_type_of(key) == "rsa" else Algorithm.ED25519_SHA256

        signature = sign_digest(key, algorithm, DIGEST)

        assert verify_digest(key.public_key(), algorithm, DIGEST, signature)
        assert not verify_digest(key.public_key(), algorithm, DIGEST[::-1], signature)
        assert not verify_digest(key.public_key(), algorithm, DIGEST, signature[:-1])

    def test_verify_is_false_for_mismatched_keys_and_rsa_sha1(self) -> None:
        """A key of the wrong type, or rsa-sha1, never verifies and never raises."""
        key = rsa_key()
        signature = sign_digest(key, Algorithm.RSA_SHA256, DIGEST)

        assert not verify_digest(key.public_key(), Algorithm.ED25519_SHA256, DIGEST, signature)
        assert not verify_digest(key.public_key(), Algorithm.RSA_SHA1, DIGEST, signature)

    def test_signing_refuses_rsa_sha1_and_mismatched_keys(self) -> None:
        """sign_digest raises for what a Signer would have refused."""
        with pytest.raises(ValueError, match="RFC 8301"):
            sign_digest(rsa_key(), Algorithm.RSA_SHA1, DIGEST)
        with pytest.raises(ValueError, match="cannot sign"):
            sign_digest(rsa_key(), Algorithm.ED25519_SHA256, DIGEST)

    def test_key_bits_are_the_modulus_length_or_256(self) -> None:
        """Key sizes as results report them."""
        assert key_bits(rsa_key(1024).public_key()) == 1024
        assert key_bits(ed25519.Ed25519PrivateKey.generate()) == 256


# -- key generation (dkim keygen) --------------------------------------------------------


def test_generated_keys_round_trip_through_pem_and_sign() -> None:
    for key_type, bits in (("rsa", 1024), ("ed25519", 256)):
        key = generate_private_key(key_type, bits)
        pem = private_key_pem(key)
        assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
        loaded = load_private_key(pem)
        assert key_bits(loaded) == bits
        Signer(domain="example.com", selector="s", key=loaded)


@pytest.mark.parametrize(("key_type", "bits"), [("rsa", 512), ("rsa", 2047), ("dsa", 2048)])
def test_generation_refuses_what_rfc_8301_or_dkim_forbids(key_type: str, bits: int) -> None:
    with pytest.raises(KeyLoadError):
        generate_private_key(key_type, bits)
