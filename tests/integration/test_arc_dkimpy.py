"""Cross-checks with dkimpy as an ARC oracle: it seals and we verify, we seal and it verifies.

Chains of up to three hops are built over a small corpus of messages that
stress canonicalisation (folded fields, runs of white space, trailing
white space and empty lines in the body, LF line ends), alternating
sealers so that every mix of dkimpy and mailwright sets is validated by
both. Only rsa-sha256 is cross-checked: dkimpy 1.1.8 supports Ed25519 for
DKIM but not for ARC in either direction (``arc_sign`` reads only RSA keys,
and ``arc_verify`` answers "unknown signature algorithm" for an
ed25519-sha256 seal), so our Ed25519 seals are checked by our own
validator only (``tests/unit/test_arc_seal.py``). dkimpy's RSA is pure
Python, so the corpus is kept small.
"""

from __future__ import annotations

import time
from functools import cache

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailwright.auth.arc import ArcResult, ArcSealer, ChainStatus, Sealed, verify_chain
from mailwright.auth.dkim import format_key_record
from mailwright.auth.dkim.algorithms import PrivateKey
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Query, run_sync

pytestmark = pytest.mark.integration

HOPS = ("hop1.example", "hop2.example", "hop3.example")

CORPUS = [
    b"From: Alice <alice@origin.example>\r\nTo: list@hop1.example\r\n"
    b"Subject: plain\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"Message-ID: <1@origin.example>\r\n\r\nHello.\r\n",
    b"From:   Alice  <alice@origin.example>\r\nTo: list@hop1.example,\r\n"
    b"\tbob@hop2.example\r\nSubject: folded\r\n  and spaced  \r\n"
    b"MIME-Version: 1.0\r\n\r\nline with trailing space   \r\n\r\n"
    b"  indented\tline\r\n\r\n\r\n",
    b"From: alice@origin.example\nTo: list@hop1.example\nSubject: LF only\n\n"
    b"body with LF\n.\nFrom the start\n",
    b"From: alice@origin.example\r\nSubject: empty body\r\n\r\n",
]


@cache
def private_key(name: str) -> PrivateKey:
    """A key per name: RSA 2048 unless the name says ed25519."""
    if "ed25519" in name:
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(name: str) -> bytes:
    """The key as dkimpy's ARC signer reads it: PKCS#1 PEM."""
    key = private_key(name)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def records() -> dict[str, str]:
    """Key records of every hop, for both algorithms (selectors ``rsa`` and ``ed``)."""
    out = {}
    for hop in HOPS:
        out[f"rsa._domainkey.{hop}"] = format_key_record(private_key(f"{hop}/rsa"))
        out[f"ed._domainkey.{hop}"] = format_key_record(private_key(f"{hop}/ed25519"))
    return out


def dkimpy_dns(name: bytes, timeout: int = 5) -> bytes | None:
    """dkimpy's dnsfunc: the key records above, nothing elsewhere."""
    found = records().get(name.decode("ascii").rstrip("."))
    return None if found is None else found.encode("ascii")


def answer(query: Query) -> Answer:
    found = records().get(query.text)
    if found is None:
        return Answer(query, LookupStatus.NXDOMAIN)
    return Answer(query, LookupStatus.ANSWER, (found.encode("ascii"),))


def ours(message: bytes) -> ArcResult:
    return run_sync(verify_chain(message, now=time.time()), answer)


def theirs(message: bytes) -> str:
    cv, _, reason = dkim.arc_verify(message, dnsfunc=dkimpy_dns)
    return f"{cv.decode() if cv else ''}: {reason}"


def received(message: bytes, hop: str, cv: ChainStatus) -> bytes:
    """The message as ``hop`` stamps it: its Authentication-Results on top."""
    field = f"Authentication-Results: {hop}; arc={cv.value}; spf=pass smtp.mailfrom=origin.example"
    return field.encode("ascii") + b"\r\n" + message


def dkimpy_seal(message: bytes, hop: str) -> bytes:
    sealed = dkim.arc_sign(
        message,
        b"rsa",
        hop.encode("ascii"),
        pem(f"{hop}/rsa"),
        hop.encode("ascii"),
        include_headers=[b"from", b"to", b"subject", b"date"],
    )
    return b"".join(sealed) + message


def our_seal(message: bytes, hop: str, chain: ArcResult, algorithm: str) -> bytes:
    selector = "ed" if algorithm == "ed25519" else "rsa"
    sealer = ArcSealer(
        domain=hop,
        selector=selector,
        key=private_key(f"{hop}/{algorithm}"),
        authserv_id=hop,
    )
    sealed = sealer.seal(message, chain)
    assert isinstance(sealed, Sealed)
    return b"".join(sealed.fields) + message


@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_we_verify_chains_dkimpy_seals(index: int) -> None:
    """Three dkimpy hops: we find each chain passing, then failing once the body changes."""
    message = CORPUS[index]
    cv = ChainStatus.NONE

    for hop in HOPS:
        message = dkimpy_seal(received(message, hop, cv), hop)
        result = ours(message)
        assert result.result is ChainStatus.PASS, result.reason
        cv = result.result
    assert result.sealer_domains == HOPS
    assert result.oldest_pass == 0

    tampered = message + b"appended\r\n"
    assert ours(tampered).result is ChainStatus.FAIL


@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_dkimpy_verifies_chains_we_seal(index: int) -> None:
    """Three of our hops: dkimpy finds each chain passing, and a changed body failing."""
    message = CORPUS[index]
    chain = ours(message)

    for hop in HOPS:
        message = our_seal(received(message, hop, chain.result), hop, chain, "rsa")
        assert theirs(message).startswith("pass"), theirs(message)
        chain = ours(message)
        assert chain.passed, chain.reason

    assert theirs(message + b"appended\r\n").startswith("fail")


@pytest.mark.parametrize("index", [0, 1])
def test_mixed_chains_pass_for_both(index: int) -> None:
    """dkimpy, then us, then dkimpy: both validators agree at every hop."""
    message = CORPUS[index]
    chain = ours(message)

    message = dkimpy_seal(received(message, HOPS[0], chain.result), HOPS[0])
    chain = ours(message)
    message = our_seal(received(message, HOPS[1], chain.result), HOPS[1], chain, "rsa")
    assert theirs(message).startswith("pass")
    chain = ours(message)
    message = dkimpy_seal(received(message, HOPS[2], chain.result), HOPS[2])

    assert theirs(message).startswith("pass")
    assert ours(message).passed


def test_a_failed_chain_we_seal_is_failed_for_dkimpy() -> None:
    """A broken chain sealed with cv=fail: dkimpy reads it as failed or terminated, as we do."""
    message = dkimpy_seal(received(CORPUS[0], HOPS[0], ChainStatus.NONE), HOPS[0])
    broken = message.replace(b"Hello.", b"Hullo.")
    chain = ours(broken)
    assert chain.result is ChainStatus.FAIL

    sealed = our_seal(received(broken, HOPS[1], chain.result), HOPS[1], chain, "rsa")

    assert not theirs(sealed).startswith("pass")
    assert ours(sealed).result is ChainStatus.FAIL
