"""DKIM against published vectors, with keys served by a real DNS server on loopback.

The vectors (``shared/vectors/dkim``) are dkimpy's test data and signatures
made with dkimpy; every one must give its expected outcome through the same
path a received message takes: :func:`verify_message` over a
:class:`CachingResolver` asking :class:`~tests.dnsserver.DnsServer`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from tests.dnsserver import DnsServer
from tests.vectors import VECTORS as SHARED_VECTORS

from mailwright.auth.dkim import DkimResult, Outcome, Signer, verify_message
from mailwright.dns.queries import CachingResolver
from mailwright.dns.resolver import make_resolver

pytestmark = pytest.mark.integration

VECTORS = SHARED_VECTORS / "dkim"
DATA = VECTORS / "dkimpy-data"
SUITE = json.loads((VECTORS / "dkim-vectors.json").read_text())

#: After every t= in the vectors; none of them has x=.
NOW = 1_800_000_000.0

FOOTBALL_TEST = "test._domainkey.football.example.com"
FOOTBALL_BRISBANE = "brisbane._domainkey.football.example.com"


def data(name: str) -> bytes:
    return (DATA / name).read_bytes()


def record(name: str) -> str:
    """A dkimpy-data key record file as the TXT string it stands for."""
    return data(name).decode("ascii").strip()


def resolver_for(server: DnsServer) -> CachingResolver:
    return CachingResolver(make_resolver([server.nameserver], timeout=0.5, lifetime=1.0))


async def verified(zones: Mapping[str, Sequence[Any]], content: bytes) -> list[DkimResult]:
    """Verify ``content`` with ``zones`` served by a fresh DNS server."""
    with DnsServer(zones) as server:
        return await verify_message(resolver_for(server), content, now=NOW)


@pytest.fixture(scope="module")
def suite_server() -> Iterator[DnsServer]:
    """One server for the whole vector file's DNS map."""
    zones = {name: [("TXT", value)] for name, value in SUITE["dns"].items()}
    with DnsServer(zones) as server:
        yield server


@pytest.mark.parametrize("vector", SUITE["vectors"], ids=[v["id"] for v in SUITE["vectors"]])
async def test_every_vector_gives_its_expected_outcome(
    vector: dict[str, Any], suite_server: DnsServer
) -> None:
    """pass where dkimpy verified, fail (body hash) where the vector was tampered with."""
    content = vector["message"].encode("latin-1")

    results = await verify_message(resolver_for(suite_server), content, now=NOW)

    result = results[vector["signature_index"]]
    if vector["expect_verify"]:
        assert result.result is Outcome.PASS, result.reason
    else:
        assert (result.result, result.reason) == (Outcome.FAIL, "body hash did not verify")


def test_the_suite_has_the_22_vectors_we_expect() -> None:
    """A guard against a silently shrunken vector file."""
    assert len(SUITE["vectors"]) == 22


async def test_rfc6376_sample_carries_two_good_signatures() -> None:
    """rfc6376.signed.msg: Ed25519 (RFC 8463's key) on top, RSA below; both pass."""
    zones = {
        FOOTBALL_BRISBANE: [("TXT", SUITE["dns"][FOOTBALL_BRISBANE + "."])],
        FOOTBALL_TEST: [("TXT", record("test.txt"))],
    }

    results = await verified(zones, data("rfc6376.signed.msg"))

    assert [(r.algorithm, r.result) for r in results] == [
        ("ed25519-sha256", Outcome.PASS),
        ("rsa-sha256", Outcome.PASS),
    ]
    assert {r.identity for r in results} == {"@football.example.com"}


@pytest.mark.parametrize("key", ["test.txt", "test2.txt"])
async def test_the_rsa_sample_passes_with_or_without_k(key: str) -> None:
    """test2.txt has no k=: rsa is the default (RFC 6376 §3.6.1)."""
    [result] = await verified(
        {FOOTBALL_TEST: [("TXT", record(key))]}, data("rfc6376.signed.rsa.msg")
    )

    assert result.result is Outcome.PASS
    assert result.key_bits == 1024


async def test_x_without_t_is_valid_syntax() -> None:
    """rfc6376.signed.no_t.msg: x= far ahead and no t= parse; the b= copied there fails.

    dkimpy's data reuses the b= of rfc6376.signed.rsa.msg under changed tags,
    so the signature cannot verify (dkimpy says so too): fail, not permerror.
    """
    [result] = await verified(
        {FOOTBALL_TEST: [("TXT", record("test.txt"))]}, data("rfc6376.signed.no_t.msg")
    )

    assert (result.result, result.reason) == (Outcome.FAIL, "signature did not verify")


async def test_the_exim_prototype_signature_passes() -> None:
    """ed25519test2.msg, signed by a prototype Exim, with eximtest.dns as its key."""
    [result] = await verified(
        {"sed._domainkey.test.ex": [("TXT", record("eximtest.dns"))]}, data("ed25519test2.msg")
    )

    assert result.result is Outcome.PASS


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("badk.txt", "unknown key type k=ed25519-sha256"),
        ("badversion.txt", "is not DKIM1"),
        ("test_bad.txt", "not a DER RSA public key"),
        ("test_tlsrpt.txt", "s= does not include email"),
    ],
)
async def test_dkimpy_bad_key_records_are_permerror(key: str, reason: str) -> None:
    """The bad key records of dkimpy's data: each refused with its own reason."""
    [result] = await verified(
        {FOOTBALL_TEST: [("TXT", record(key))]}, data("rfc6376.signed.rsa.msg")
    )

    assert result.result is Outcome.PERMERROR
    assert reason in result.reason


@pytest.mark.parametrize(
    ("key", "message", "record_file"),
    [
        ("test.private", "test.message", "test.txt"),
        ("2048_testkey.key", "test_extra.message", "2048_testkey_wo_markers.pub.txt"),
        ("ed25519test.key", "ed25519test.msg", "ed25519test.dns"),
    ],
)
async def test_we_sign_dkimpy_messages_with_dkimpy_keys(
    key: str, message: str, record_file: str
) -> None:
    """dkimpy's keys (PKCS#1 PEM, raw Ed25519 seed) sign its messages; we verify over DNS."""
    signer = Signer(domain="example.com", selector="test", key=data(key), clock=lambda: NOW)
    content = data(message)

    [result] = await verified(
        {"test._domainkey.example.com": [("TXT", record(record_file))]},
        signer.sign(content) + content,
    )

    assert result.result is Outcome.PASS, result.reason


async def test_a_key_lookup_that_fails_is_temperror() -> None:
    """SERVFAIL and a server that never answers: try again later."""
    content = data("rfc6376.signed.msg")
    zones = {FOOTBALL_TEST: [("TXT", record("test.txt"))]}

    with DnsServer(zones) as server:
        server.fail(FOOTBALL_TEST, "servfail")
        server.fail(FOOTBALL_BRISBANE, "drop")
        results = await verify_message(resolver_for(server), content, now=NOW)

    assert [r.result for r in results] == [Outcome.TEMPERROR, Outcome.TEMPERROR]
    assert "timeout" in results[0].reason
    assert "servfail" in results[1].reason


async def test_a_missing_key_is_permerror() -> None:
    """NXDOMAIN at the selector: no key, permerror."""
    [result] = await verified({}, data("rfc6376.signed.rsa.msg"))

    assert result.result is Outcome.PERMERROR
    assert "does not exist" in result.reason


async def test_a_giant_key_record_is_permerror() -> None:
    """A 20,000-octet TXT record (over TCP) is refused by its size."""
    giant = ["v=DKIM1; k=rsa; n=" + "x" * 200 for _ in range(100)]

    [result] = await verified({FOOTBALL_TEST: [("TXT", giant)]}, data("rfc6376.signed.rsa.msg"))

    assert result.result is Outcome.PERMERROR
    assert "longer than 8192" in result.reason
