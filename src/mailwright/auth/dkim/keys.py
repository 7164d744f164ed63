"""DKIM keys: private keys from files, public keys from key records (RFC 6376 §3.6.1, RFC 8463).

Private keys come in the forms operators have on disk:

* PEM, PKCS#1 (``BEGIN RSA PRIVATE KEY``) or PKCS#8 (``BEGIN PRIVATE KEY``,
  RSA or Ed25519), optionally encrypted;
* the base64 text of a PEM body without its marker lines (DER inside);
* the base64 of a raw 32-octet Ed25519 seed, the form dkimpy and several
  other signers write for Ed25519 keys (a 64-octet seed-and-public-key form
  is accepted when its two halves agree).

Public keys come from the p= tag of a key record. For ``k=rsa``, RFC 6376
§3.6.1 names a DER RSAPublicKey (PKCS#1), while its Appendix C, erratum 3017
and every publisher we know use a SubjectPublicKeyInfo around it; both are
read. For ``k=ed25519`` only the raw 32-octet key is (RFC 8463 §4.2).

:func:`generate_private_key` makes a new key and :func:`private_key_pem` writes
it (PKCS#8 PEM, the form every signer reads); :func:`format_key_record`
writes the TXT record to publish for a key.
"""

from __future__ import annotations

import base64
import binascii
import functools

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailwright.auth.dkim.algorithms import PrivateKey, PublicKey, key_type_of
from mailwright.auth.dkim.errors import KeyLoadError

#: RFC 8301 §3.2: no signing with, and no trusting of, smaller RSA keys.
MIN_RSA_BITS = 1024

#: The RSA size ``dkim keygen`` makes by default: RFC 8301 §3.2 asks for at
#: least 2048 bits; larger keys no longer fit one 512-octet UDP answer.
DEFAULT_RSA_BITS = 2048

#: Larger RSA keys are refused by the verifier: they cost time and nobody
#: publishes them (RFC 8301 §3.2 requires verifiers to handle 1024 to 4096).
MAX_RSA_BITS = 8192

_ED25519_BYTES = 32

#: Public keys kept loaded by :func:`cached_public_key`: a verifier meets the
#: same few hundred signing keys over and over (big senders, lists, ARC sealers).
PUBLIC_KEY_CACHE_SIZE = 512
_PRIVATE = (rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)


def load_private_key(data: bytes | str, password: bytes | None = None) -> PrivateKey:
    """Read an RSA or Ed25519 private key in any of the forms listed above.

    Raises :class:`~.errors.KeyLoadError` naming the form tried when the data
    is none of them, the password is wrong or missing, or the key is of
    another type (EC, DSA).
    """
    raw = data.encode("ascii", "replace") if isinstance(data, str) else bytes(data)
    text = raw.strip()

    if text.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text, password=password)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyLoadError(f"PEM private key could not be read: {exc}") from exc
        return _supported(key)

    try:
        decoded = base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyLoadError("private key is neither PEM nor base64") from exc

    if len(decoded) == _ED25519_BYTES:
        return ed25519.Ed25519PrivateKey.from_private_bytes(decoded)
    if len(decoded) == 2 * _ED25519_BYTES:
        return _seed_and_public(decoded)
    try:
        key = serialization.load_der_private_key(decoded, password=password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyLoadError(
            f"base64 private key of {len(decoded)} octets is neither an Ed25519 seed nor DER"
        ) from exc
    return _supported(key)


def _seed_and_public(decoded: bytes) -> ed25519.Ed25519PrivateKey:
    """A 64-octet Ed25519 key: the seed, then the public key it must produce."""
    key = ed25519.Ed25519PrivateKey.from_private_bytes(decoded[:_ED25519_BYTES])
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    if public != decoded[_ED25519_BYTES:]:
        raise KeyLoadError("64-octet Ed25519 key: the public half does not match the seed")
    return key


def _supported(key: object) -> PrivateKey:
    if isinstance(key, _PRIVATE):
        return key
    raise KeyLoadError(f"{type(key).__name__} keys cannot sign DKIM (RSA or Ed25519 only)")


def load_public_key(key_type: str, data: bytes) -> PublicKey | str:
    """The public key of a key record's decoded p= value, or the reason it is unusable.

    ``key_type`` is the record's k= value. Never raises.
    """
    if key_type == "ed25519":
        if len(data) != _ED25519_BYTES:
            return f"an Ed25519 key is 32 octets, p= holds {len(data)} (RFC 8463 §4.2)"
        return ed25519.Ed25519PublicKey.from_public_bytes(data)

    if key_type != "rsa":
        return f"unknown key type k={key_type}"
    try:
        key = serialization.load_der_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return f"p= is not a DER RSA public key ({exc})"
    if not isinstance(key, rsa.RSAPublicKey):
        return f"k=rsa but p= holds a {type(key).__name__}"
    return key


@functools.lru_cache(maxsize=PUBLIC_KEY_CACHE_SIZE)
def cached_public_key(key_type: str, data: bytes) -> PublicKey | str:
    """:func:`load_public_key`, remembered for the :data:`PUBLIC_KEY_CACHE_SIZE` latest keys.

    A verifier loads the same key for every message a domain sends, and
    each load is a DER parse and a new OpenSSL key object. The cache is keyed
    by the k= value and the p= octets themselves, never by the record's
    name, so a rotated or revoked key is seen as soon as DNS answers with
    it; cryptography's key objects are immutable, so sharing one between
    verifications (and threads) is safe. Refusal reasons are cached too:
    they depend on nothing else. Never raises.
    """
    return load_public_key(key_type, data)


def public_key_octets(key: PublicKey | PrivateKey) -> bytes:
    """The p= octets for ``key`` (of a private key: of its public half)."""
    public = key.public_key() if isinstance(key, _PRIVATE) else key
    if isinstance(public, rsa.RSAPublicKey):
        return public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def format_key_record(key: PublicKey | PrivateKey, *, testing: bool = False) -> str:
    """The TXT record that publishes ``key``: ``v=DKIM1; k=...; p=...``.

    ``testing`` adds ``t=y`` (RFC 6376 §3.6.1): verifiers then know the
    domain is trying DKIM out.
    """
    p = base64.b64encode(public_key_octets(key)).decode("ascii")
    flags = "; t=y" if testing else ""
    return f"v=DKIM1; k={key_type_of(key)}{flags}; p={p}"


def generate_private_key(key_type: str, bits: int = DEFAULT_RSA_BITS) -> PrivateKey:
    """A new RSA (``"rsa"``, ``bits`` long) or Ed25519 (``"ed25519"``) private key.

    Raises :class:`~.errors.KeyLoadError` for another type, or for an RSA
    size under 1024 bits (RFC 8301 §3.2), over our verifier's limit, or not
    a multiple of 8.
    """
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if key_type != "rsa":
        raise KeyLoadError(f"unknown key type {key_type!r} (rsa or ed25519)")
    if not MIN_RSA_BITS <= bits <= MAX_RSA_BITS or bits % 8:
        raise KeyLoadError(
            f"an RSA key of {bits} bits is refused: use a multiple of 8 from "
            f"{MIN_RSA_BITS} to {MAX_RSA_BITS} (2048 recommended, RFC 8301 §3.2)"
        )
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_key_pem(key: PrivateKey) -> bytes:
    """``key`` as unencrypted PKCS#8 PEM (``BEGIN PRIVATE KEY``), as written to key files."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
