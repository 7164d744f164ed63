"""Signing algorithms (RFC 6376 §3.3, RFC 8463, RFC 8301) and the one place that calls them.

An a= value names a key type and a hash: ``rsa-sha256`` is RSASSA-PKCS1-v1_5
over SHA-256 (RFC 6376 §3.3.1), ``ed25519-sha256`` is PureEdDSA Ed25519 over
the SHA-256 digest of the same data (RFC 8463 §3). ``rsa-sha1`` is known so
that it can be named in a result, but RFC 8301 §3.1 forbids both signing and
verifying with it; nothing here will do either.

Hashing is done by :mod:`hashlib` in the caller, once; the digest is handed
to OpenSSL (through :mod:`cryptography`) as prehashed for RSA, and as the
message for Ed25519, which is exactly what RFC 8463 signs.
"""

from __future__ import annotations

import enum
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey

#: The RSASSA-PKCS1-v1_5 parameters of rsa-sha256, made once (they are immutable).
_PKCS1V15 = padding.PKCS1v15()
_PREHASHED_SHA256 = Prehashed(hashes.SHA256())


class Algorithm(enum.Enum):
    """A signing algorithm as a= names it."""

    RSA_SHA256 = "rsa-sha256"
    ED25519_SHA256 = "ed25519-sha256"
    RSA_SHA1 = "rsa-sha1"

    @classmethod
    def from_text(cls, value: str) -> Algorithm | None:
        """The algorithm called ``value`` (a= is case-sensitive), or None."""
        return _BY_NAME.get(value)

    @property
    def key_type(self) -> str:
        """The k= key type this algorithm needs: ``rsa`` or ``ed25519``."""
        return _PARTS[self][0]

    @property
    def hash_name(self) -> str:
        """The hash, as :mod:`hashlib` and key records' h= name it."""
        return _PARTS[self][1]

    @property
    def usable(self) -> bool:
        """False for rsa-sha1, which RFC 8301 §3.1 forbids signing or verifying with."""
        return self is not Algorithm.RSA_SHA1

    def new_hash(self) -> hashlib._Hash:
        """A fresh hash object of this algorithm's hash."""
        return hashlib.new(self.hash_name)


#: Each algorithm by its a= name, and its (key type, hash) split once: both are
#: asked for on every signature verified.
_BY_NAME: dict[str, Algorithm] = {algorithm.value: algorithm for algorithm in Algorithm}
_PARTS: dict[Algorithm, tuple[str, str]] = {
    algorithm: (algorithm.value.partition("-")[0], algorithm.value.partition("-")[2])
    for algorithm in Algorithm
}


def key_type_of(key: PrivateKey | PublicKey) -> str:
    """``rsa`` or ``ed25519``: the k= value of a key."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "rsa"
    return "ed25519"


def key_bits(key: PrivateKey | PublicKey) -> int:
    """The size of the key: the RSA modulus length, 256 for Ed25519."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return key.key_size
    return 256


def sign_digest(key: PrivateKey, algorithm: Algorithm, digest: bytes) -> bytes:
    """Sign the SHA-256 ``digest`` of the header hash input with ``key``.

    Raises :class:`ValueError` when the key does not fit the algorithm or
    the algorithm is rsa-sha1; a :class:`~.sign.Signer` checks both first.
    """
    if not algorithm.usable:
        raise ValueError(f"{algorithm.value} must not be used to sign (RFC 8301 §3.1)")
    if key_type_of(key) != algorithm.key_type:
        raise ValueError(f"a {key_type_of(key)} key cannot sign {algorithm.value}")

    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(digest, _PKCS1V15, _PREHASHED_SHA256)
    return key.sign(digest)


def verify_digest(key: PublicKey, algorithm: Algorithm, digest: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``key``'s signature of ``digest`` under ``algorithm``.

    Never raises: a key of the wrong type, rsa-sha1, a signature of the wrong
    length or one that does not verify are all False.
    """
    # One isinstance per key type: these are ABC checks, slow next to the rest.
    if algorithm is Algorithm.RSA_SHA256:
        if not isinstance(key, rsa.RSAPublicKey):
            return False
        try:
            key.verify(signature, digest, _PKCS1V15, _PREHASHED_SHA256)
        except (InvalidSignature, ValueError):
            return False
        return True
    if algorithm is not Algorithm.ED25519_SHA256 or not isinstance(key, ed25519.Ed25519PublicKey):
        return False
    try:
        key.verify(signature, digest)
    except (InvalidSignature, ValueError):
        return False
    return True


def signing_algorithm(
    key: object, wanted: Algorithm | str | None, min_rsa_bits: int, verb: str = "sign"
) -> Algorithm | str:
    """The algorithm to sign with ``key``, or why it cannot be used (DKIM and ARC alike).

    ``wanted`` None means the key's own (rsa-sha256 or ed25519-sha256). The
    answer is a problem text for: a key that is neither RSA nor Ed25519, an
    unknown name, rsa-sha1 (RFC 8301 §3.1), a key of the other type, or an
    RSA key under ``min_rsa_bits`` (RFC 8301 §3.2). ``verb`` ("sign",
    "seal") goes into the text; the caller raises its own error with it.
    """
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        return f"{type(key).__name__} keys cannot {verb} (RSA or Ed25519 only)"
    kind = key_type_of(key)
    if wanted is None:
        algorithm: Algorithm | None = (
            Algorithm.RSA_SHA256 if kind == "rsa" else Algorithm.ED25519_SHA256
        )
    else:
        algorithm = wanted if isinstance(wanted, Algorithm) else Algorithm.from_text(wanted)
    if algorithm is None:
        return f"unknown signing algorithm {wanted!r}"

    if not algorithm.usable:
        return f"{algorithm.value} must not be used to {verb} (RFC 8301 §3.1)"
    if algorithm.key_type != kind:
        return f"a {kind} key cannot {verb} {algorithm.value}"
    bits = key_bits(key)
    if kind == "rsa" and bits < min_rsa_bits:
        return f"{bits}-bit RSA key is too short: RFC 8301 §3.2 requires at least {min_rsa_bits}"
    return algorithm
