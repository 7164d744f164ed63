"""Tests for mailwright.auth.dkim.verify: one result per signature, in RFC 8601's words."""

from __future__ import annotations

import base64
from collections.abc import Callable
from functools import cache

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwright.auth.dkim.algorithms import Algorithm, PrivateKey, sign_digest
from mailwright.auth.dkim.canonical import parse_canonicalization
from mailwright.auth.dkim.hashing import body_digest, header_digest, select_headers
from mailwright.auth.dkim.keys import format_key_record, load_private_key
from mailwright.auth.dkim.result import DkimResult, Outcome
from mailwright.auth.dkim.sign import Signer
from mailwright.auth.dkim.tags import format_tag_list
from mailwright.auth.dkim.verify import FUTURE_ALLOWANCE, verify
from mailwright.auth.message import parse_message
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Query, run_sync

NOW = 1_700_000_000
KEY_NAME = "s1._domainkey.example.com"
MESSAGE = (
    b"From: Joe <joe@example.com>\r\n"
    b"To: sue@example.net\r\n"
    b"Subject: dinner\r\n"
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

Zone = dict[str, list[bytes] | LookupStatus]


@cache
def rsa_key() -> rsa.RSAPrivateKey:
    """One 2048-bit key for the module (generation is slow)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def record(key: PrivateKey, extra: str = "") -> list[bytes]:
    """The TXT record publishing ``key``, with ``extra`` tags put before p=."""
    text = format_key_record(key)
    head, _, p = text.rpartition("; ")
    return [f"{head}{'; ' + extra if extra else ''}; {p}".encode()]


def forge(
    content: bytes,
    key: PrivateKey,
    *,
    algorithm: str | None = None,
    headers: str = "from:to:subject",
    c: str = "relaxed/relaxed",
    extra: tuple[tuple[str, str], ...] = (),
    domain: str = "example.com",
) -> bytes:
    """``content`` with a DKIM-Signature whose tags the test chooses, correctly signed.

    This is how tests reach signatures our Signer would never write (rsa-sha1,
    l=, odd h= lists, short keys).
    """
    if algorithm is None:
        algorithm = "rsa-sha256" if isinstance(key, rsa.RSAPrivateKey) else "ed25519-sha256"
    hash_name = algorithm.partition("-")[2]
    canon = parse_canonicalization(c)
    assert canon is not None
    message = parse_message(content)
    tags = dict(extra)
    limit = int(tags["l"]) if "l" in tags else None

    bh, _ = body_digest(message.body, canon[1], hash_name, limit)
    pairs = [("v", "1"), ("a", algorithm), ("c", c), ("d", domain), ("s", "s1"), ("h", headers)]
    pairs += [*extra, ("bh", base64.b64encode(bh).decode())]
    unsigned = f"DKIM-Signature: {format_tag_list(pairs)}; b=".encode()
    names = [name.strip() for name in headers.split(":")]
    digest = header_digest(select_headers(message.headers, names), unsigned, canon[0], hash_name)

    if algorithm == "rsa-sha1":  # sign_digest refuses it, as it should
        assert isinstance(key, rsa.RSAPrivateKey)
        raw = key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA1()))
    else:
        raw = sign_digest(key, Algorithm(algorithm), digest)
    return unsigned + base64.b64encode(raw) + b"\r\n" + content


def answering(zone: Zone) -> Callable[[Query], Answer]:
    """A DNS stand-in: names map to TXT records, or to a failure status."""

    def answer(query: Query) -> Answer:
        found = zone.get(query.text)
        if found is None:
            return Answer(query, LookupStatus.NXDOMAIN, detail="no such name")
        if isinstance(found, LookupStatus):
            return Answer(query, found, detail="injected")
        return Answer(query, LookupStatus.ANSWER, tuple(found))

    return answer


def results(content: bytes, zone: Zone, now: float = NOW, **options: int) -> list[DkimResult]:
    return run_sync(verify(content, now=now, **options), answering(zone))


def only(content: bytes, zone: Zone, now: float = NOW) -> DkimResult:
    [result] = results(content, zone, now)
    return result


def signed(key: PrivateKey | None = None, **options: object) -> bytes:
    """MESSAGE signed by our Signer at NOW."""
    signer = Signer(
        domain="example.com",
        selector="s1",
        key=key or rsa_key(),
        clock=lambda: NOW,
        **options,  # type: ignore[arg-type]
    )
    return signer.sign(MESSAGE) + MESSAGE


class TestPassAndFail:
    def test_a_good_signature_passes_with_what_it_says(self) -> None:
        """pass, with d=, s=, i=, a=, the key size and the start of b=."""
        content = signed(identity="joe@example.com")

        result = only(content, {KEY_NAME: record(rsa_key())})

        assert result.result is Outcome.PASS
        assert (result.domain, result.selector, result.identity) == (
            "example.com",
            "s1",
            "joe@example.com",
        )
        assert (result.algorithm, result.key_bits) == ("rsa-sha256", 2048)
        assert len(result.signature_prefix) == 8
        assert content.find(result.signature_prefix.encode()) > 0

    def test_a_changed_body_fails_on_the_body_hash(self) -> None:
        """fail: the body hash does not match."""
        content = signed().replace(b"hungry", b"angry")

        result = only(content, {KEY_NAME: record(rsa_key())})

        assert (result.result, result.reason) == (Outcome.FAIL, "body hash did not verify")

    def test_a_changed_header_fails_on_the_signature(self) -> None:
        """fail: the header hash no longer matches the signature."""
        content = signed(ed_key()).replace(b"Subject: dinner", b"Subject: lunch")

        result = only(content, {KEY_NAME: record(ed_key())})

        assert (result.result, result.reason) == (Outcome.FAIL, "signature did not verify")

    def test_another_key_at_the_selector_fails(self) -> None:
        """A valid key record with the wrong key: the signature does not verify."""
        other = ed25519.Ed25519PrivateKey.generate()

        result = only(signed(ed_key()), {KEY_NAME: record(other)})

        assert result.result is Outcome.FAIL

    def test_every_signature_gets_its_own_result_in_order(self) -> None:
        """Several signatures: each reported, top first, with its index."""
        ours = Signer(domain="example.com", selector="s1", key=ed_key(), clock=lambda: NOW)
        theirs = Signer(domain="example.org", selector="s2", key=rsa_key(), clock=lambda: NOW)
        content = (
            b"DKIM-Signature: v=1; garbage\r\n"
            + theirs.sign(MESSAGE)
            + ours.sign(MESSAGE)
            + MESSAGE
        )
        zone: Zone = {
            KEY_NAME: record(ed_key()),
            "s2._domainkey.example.org": LookupStatus.TIMEOUT,
        }

        found = results(content, zone)

        assert [(r.index, r.result, r.domain) for r in found] == [
            (0, Outcome.PERMERROR, ""),
            (1, Outcome.TEMPERROR, "example.org"),
            (2, Outcome.PASS, "example.com"),
        ]

    def test_all_keys_are_asked_in_one_step_and_each_once(self) -> None:
        """One DNS step for every signature; a shared key is asked once."""
        first = Signer(domain="example.com", selector="s1", key=ed_key(), clock=lambda: NOW)
        other = Signer(domain="example.org", selector="s2", key=ed_key(), clock=lambda: NOW)
        content = first.sign(MESSAGE) + other.sign(MESSAGE) + first.sign(MESSAGE) + MESSAGE
        evaluation = verify(content, now=NOW)

        step = next(evaluation)
        answers = tuple(answering({})(query) for query in step)
        with pytest.raises(StopIteration) as done:
            evaluation.send(answers)

        assert [query.text for query in step] == [KEY_NAME, "s2._domainkey.example.org"]
        assert len(done.value.value) == 3

    def test_a_message_without_signatures_asks_nothing(self) -> None:
        """No DKIM-Signature: an empty list and no DNS step."""
        evaluation = verify(MESSAGE, now=NOW)

        with pytest.raises(StopIteration) as done:
            next(evaluation)

        assert done.value.value == []

    def test_signatures_beyond_the_limit_are_neutral(self) -> None:
        """A message cannot make us fetch any number of keys."""
        field = Signer(domain="example.com", selector="s1", key=ed_key(), clock=lambda: NOW)
        content = b"".join(field.sign(MESSAGE) for _ in range(3)) + MESSAGE

        found = results(content, {KEY_NAME: record(ed_key())}, max_signatures=2)

        assert [r.result for r in found] == [Outcome.PASS, Outcome.PASS, Outcome.NEUTRAL]


class TestTime:
    def test_an_expired_signature_fails(self) -> None:
        """x= in the past: fail (RFC 6376 §6.1.1), with no key lookup needed."""
        content = signed(expire_after=60)

        result = only(content, {}, now=NOW + 61)

        assert (result.result, result.reason) == (
            Outcome.FAIL,
            f"signature expired (x={NOW + 60})",
        )

    def test_a_signature_before_its_expiry_passes(self) -> None:
        """x= in the future is fine."""
        assert only(signed(expire_after=60), {KEY_NAME: record(rsa_key())}, now=NOW + 59).passed

    def test_a_timestamp_too_far_ahead_fails(self) -> None:
        """t= beyond the allowance for clock skew fails."""
        content = signed()

        early = only(content, {}, now=NOW - FUTURE_ALLOWANCE - 10)
        skewed = only(content, {KEY_NAME: record(rsa_key())}, now=NOW - FUTURE_ALLOWANCE + 10)

        assert (early.result, early.reason) == (
            Outcome.FAIL,
            f"t= is {int(FUTURE_ALLOWANCE) + 10} s in the future",
        )
        assert skewed.passed


class TestBodyLength:
    def test_l_lets_appended_content_pass(self) -> None:
        """l= is honoured: octets after it are not covered."""
        content = forge(MESSAGE, ed_key(), extra=(("l", "10"),)) + b"appended\r\n"

        assert only(content, {KEY_NAME: record(ed_key())}).passed

    def test_l_longer_than_the_body_fails(self) -> None:
        """A body shorter than l= cannot be what was signed."""
        content = forge(MESSAGE, ed_key(), extra=(("l", "21"),)).replace(b"yet?", b"")

        result = only(content, {KEY_NAME: record(ed_key())})

        assert result.result is Outcome.FAIL
        assert result.reason.startswith("l=21 but the canonical body has")


class TestRfc8301:
    def test_rsa_sha1_is_policy_and_no_key_is_asked(self) -> None:
        """RFC 8301 §3.1: never valid; we say policy and skip the lookup."""
        content = forge(MESSAGE, rsa_key(), algorithm="rsa-sha1")
        evaluation = verify(content, now=NOW)

        with pytest.raises(StopIteration) as done:
            next(evaluation)

        [result] = done.value.value
        assert (result.result, result.algorithm) == (Outcome.POLICY, "rsa-sha1")
        assert "RFC 8301" in result.reason

    def test_rsa_keys_under_1024_bits_are_policy(self) -> None:
        """RFC 8301 §3.2: a 512-bit key is never trusted, even with a good signature."""
        short = load_private_key(SHORT_RSA_PEM)
        content = forge(MESSAGE, short)

        result = only(content, {KEY_NAME: record(short)})

        assert (result.result, result.key_bits) == (Outcome.POLICY, 512)


class TestKeyRecords:
    @pytest.mark.parametrize(
        ("status", "outcome", "reason"),
        [
            (LookupStatus.TIMEOUT, Outcome.TEMPERROR, f"key {KEY_NAME}: timeout: injected"),
            (LookupStatus.SERVFAIL, Outcome.TEMPERROR, f"key {KEY_NAME}: servfail: injected"),
            (
                LookupStatus.NODATA,
                Outcome.PERMERROR,
                f"no key record: {KEY_NAME} has no TXT record",
            ),
        ],
    )
    def test_lookup_failures(self, status: LookupStatus, outcome: Outcome, reason: str) -> None:
        """Transient DNS failures are temperror; a name without TXT is permerror."""
        result = only(signed(), {KEY_NAME: status})

        assert (result.result, result.reason) == (outcome, reason)

    def test_no_such_name_is_permerror(self) -> None:
        """NXDOMAIN: there is no key, and asking again will not make one."""
        result = only(signed(), {})

        assert (result.result, result.reason) == (
            Outcome.PERMERROR,
            f"no key record: {KEY_NAME} does not exist",
        )

    @pytest.mark.parametrize(
        ("txt", "reason"),
        [
            (b"v=DKIM1: k=rsa; p=AAAA", "v=DKIM1: k=rsa is not DKIM1"),
            (b"k=rsa; p=!!!", "p= is not valid base64"),
            (b"k=rsa; h=sha256", "no p= tag"),
            (b"p=" + b"A" * 9000, "longer than 8192"),
            (b"k=rsa; p=AAAA", "not a DER RSA public key"),
            (b"k=ed25519-sha256; p=AAAA", "unknown key type k=ed25519-sha256"),
            (b"k=ed25519; p=AAAA", "a k=ed25519 key cannot verify rsa-sha256"),
        ],
    )
    def test_bad_key_records_are_permerror(self, txt: bytes, reason: str) -> None:
        """Key record syntax and content errors: permerror with the record's problem."""
        result = only(signed(), {KEY_NAME: [txt]})

        assert result.result is Outcome.PERMERROR
        assert reason in result.reason

    def test_a_revoked_key_fails(self) -> None:
        """RFC 6376 §6.1.2: an empty p= is treated as a failed signature check."""
        result = only(signed(), {KEY_NAME: [b"v=DKIM1; k=rsa; p="]})

        assert (result.result, result.reason) == (
            Outcome.FAIL,
            f"key record {KEY_NAME}: key revoked (empty p=)",
        )

    @pytest.mark.parametrize(
        ("extra", "reason"),
        [("h=sha1", "h= does not allow sha256"), ("s=tlsrpt", "s= does not include email")],
    )
    def test_key_restrictions_are_permerror(self, extra: str, reason: str) -> None:
        """h= and s= of the key record restrict what it verifies."""
        result = only(signed(), {KEY_NAME: record(rsa_key(), extra)})

        assert (result.result, result.reason) == (
            Outcome.PERMERROR,
            f"key record {KEY_NAME}: {reason}",
        )

    def test_strict_keys_refuse_subdomain_identities(self) -> None:
        """t=s: i= must be in d= itself, not below it."""
        zone: Zone = {KEY_NAME: record(rsa_key(), "t=s")}

        below = only(signed(identity="joe@mail.example.com"), zone)
        exact = only(signed(identity="joe@example.com"), zone)

        assert below.result is Outcome.PERMERROR
        assert "t=s" in below.reason
        assert exact.passed

    def test_testing_keys_are_flagged(self) -> None:
        """t=y is reported; it does not change the result."""
        result = only(signed(), {KEY_NAME: record(rsa_key(), "t=y")})

        assert result.passed
        assert result.testing

    def test_the_first_valid_record_of_several_is_used(self) -> None:
        """Several TXT records at the selector: junk is skipped."""
        result = only(signed(), {KEY_NAME: [b"hello world", *record(rsa_key())]})

        assert result.passed


class TestBadSignatures:
    @pytest.mark.parametrize(
        ("headers", "reason"),
        [
            ("to:subject", "h= does not include From"),
            ("from:to:", "h= holds an empty name"),
        ],
    )
    def test_bad_h_lists_are_permerror(self, headers: str, reason: str) -> None:
        """h= must list field names and include From (RFC 6376 §5.4)."""
        result = only(forge(MESSAGE, ed_key(), headers=headers), {KEY_NAME: record(ed_key())})

        assert result.result is Outcome.PERMERROR
        assert reason in result.reason

    def test_an_identity_outside_d_is_permerror(self) -> None:
        """i= must be in d= or below (RFC 6376 §3.5)."""
        content = forge(MESSAGE, ed_key(), extra=(("i", "joe@example.org"),))

        result = only(content, {KEY_NAME: record(ed_key())})

        assert result.result is Outcome.PERMERROR
        assert result.domain == "example.com"

    def test_invalid_base64_is_permerror(self) -> None:
        """A b= that is not base64 cannot be verified."""
        content = signed().replace(b"b=", b"b=*", 1)

        result = only(content, {KEY_NAME: record(rsa_key())})

        assert result.result is Outcome.PERMERROR

    def test_an_unsigned_from_on_top_fails(self) -> None:
        """A From the signature does not cover fails it (RFC 6376 §8.15)."""
        content = forge(MESSAGE, ed_key(), headers="from:to:subject")
        content = b"From: evil@example.org\r\n" + content

        result = only(content, {KEY_NAME: record(ed_key())})

        assert result.result is Outcome.FAIL
        assert "2 From fields, h= covers 1" in result.reason

    def test_bare_lf_messages_verify(self) -> None:
        """A message stored with LF line ends verifies as if it had CRLF."""
        content = signed(ed_key()).replace(b"\r\n", b"\n")

        assert only(content, {KEY_NAME: record(ed_key())}).passed


signature_texts = st.lists(
    st.sampled_from(
        [
            "v=1",
            "a=rsa-sha256",
            "a=ed25519-sha256",
            "a=rsa-sha1",
            "d=example.com",
            "s=s1",
            "h=from",
            "h=from:to",
            "c=relaxed",
            "c=simple/relaxed",
            "l=3",
            "l=99999",
            "t=1",
            "x=5",
            "q=dns/txt",
            "i=@example.com",
            "bh=AAAA",
            "b=AAAA",
            "z=x",
            "b=",
            "junk",
        ]
    ),
    max_size=14,
).map("; ".join)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    signature_texts,
    st.binary(max_size=120),
    st.sampled_from([LookupStatus.TIMEOUT, LookupStatus.NXDOMAIN, LookupStatus.NODATA, None]),
    st.binary(max_size=80),
)
def test_verifying_never_raises(
    text: str, noise: bytes, status: LookupStatus | None, txt: bytes
) -> None:
    """Any signature text, message noise and key answer gives one result per field."""
    content = f"DKIM-Signature: {text}\r\n".encode() + noise + b"\r\n" + MESSAGE
    zone: Zone = {KEY_NAME: status if status is not None else [txt, *record(ed_key())]}

    found = results(content, zone)

    assert len(found) == len(parse_message(content).fields("dkim-signature"))
    assert all(isinstance(result.result, Outcome) and result.reason for result in found)
