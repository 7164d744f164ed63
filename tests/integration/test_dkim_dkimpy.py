"""Cross-checks with dkimpy as an oracle: we sign and it verifies, it signs and we verify.

Messages come from a Hypothesis corpus built to stress canonicalisation:
folded header fields, runs of spaces and tabs, white space at line ends,
empty lines inside and at the end of the body, lines starting with dots or
"From ", long lines, 8-bit octets, bare CR inside body lines, and whole
messages with LF line ends. Every case runs for both algorithms and all four
c= combinations, in both directions.

dkimpy does Ed25519 through PyNaCl (a test dependency), so the oracle's
primitive is independent of ours (``cryptography``).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from functools import cache

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwright.auth.dkim import Canonicalization, Outcome, Signer, format_key_record, verify
from mailwright.auth.dkim.algorithms import PrivateKey
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Query, run_sync

pytestmark = pytest.mark.integration

#: Generated messages per algorithm, c= combination and direction.
EXAMPLES = 20

DOMAIN, SELECTOR = "example.com", "s1"
KEY_NAME = f"{SELECTOR}._domainkey.{DOMAIN}"
CANONS = [(h, b) for h in Canonicalization for b in Canonicalization]
ALGORITHMS = ["rsa-sha256", "ed25519-sha256"]
RELAXED_STRATEGY = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@cache
def private_key(algorithm: str) -> PrivateKey:
    """One generated key per algorithm: RSA 2048 or Ed25519."""
    if algorithm == "rsa-sha256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ed25519.Ed25519PrivateKey.generate()


def dkimpy_private_key(algorithm: str) -> bytes:
    """The key as dkimpy takes it: PKCS#1 PEM, or the base64 Ed25519 seed."""
    key = private_key(algorithm)
    none = serialization.NoEncryption()
    if isinstance(key, rsa.RSAPrivateKey):
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, none
        )
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, none)
    return base64.b64encode(seed)


def key_record(algorithm: str) -> bytes:
    return format_key_record(private_key(algorithm)).encode("ascii")


def dkimpy_dns(algorithm: str) -> Callable[..., bytes | None]:
    """dkimpy's dnsfunc: the key record at our selector, nothing elsewhere."""

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return key_record(algorithm) if name.rstrip(b".") == KEY_NAME.encode() else None

    return lookup


def our_verdict(content: bytes, algorithm: str) -> tuple[Outcome, str]:
    """Our verifier's result word and reason for the top signature of ``content``."""

    def answer(query: Query) -> Answer:
        if query.text == KEY_NAME:
            return Answer(query, LookupStatus.ANSWER, (key_record(algorithm),))
        return Answer(query, LookupStatus.NXDOMAIN)

    results = run_sync(verify(content, now=time.time()), answer)
    return results[0].result, results[0].reason


@pytest.fixture(scope="module", autouse=True)
def dkimpy_with_ed25519() -> None:
    """dkimpy does Ed25519 through PyNaCl, a test dependency: check it is really there."""
    assert hasattr(dkim, "nacl"), "dkimpy found no PyNaCl: install the test extras"


# -- the corpus ----------------------------------------------------------------------------

#: Header value characters: visible ASCII, space, tab and 8-bit octets. No CR, LF,
#: VT or FF, which are not field content (dkimpy strips VT and FF as white space).
_VALUE_CHARS = st.characters(codec="latin-1", exclude_categories=["Cc"], include_characters=" \t")
_BODY_FRAGMENTS = st.text(
    st.characters(codec="latin-1", exclude_characters="\n"), max_size=40
) | st.sampled_from([" ", "\t", ".", "  ", "From ", " \t ", "\r"])

_NAMES = [
    "To",
    "Cc",
    "Subject",
    "subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "X-Mailer",
    "Received",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
    "X-Empty",
]


@st.composite
def header_fields(draw: st.DrawFn) -> bytes:
    """One field: a name, a value with odd white space, maybe folded over several lines."""
    name = draw(st.sampled_from(_NAMES))
    pieces = draw(st.lists(st.text(_VALUE_CHARS, max_size=60), min_size=1, max_size=4))
    folds = draw(st.lists(st.sampled_from(["\r\n ", "\r\n\t", "\r\n   "]), min_size=3, max_size=3))
    value = pieces[0] + "".join(
        fold + piece for fold, piece in zip(folds, pieces[1:], strict=False)
    )
    lead = draw(st.sampled_from(["", " ", "  ", "\t"]))
    return f"{name}:{lead}{value}\r\n".encode("latin-1")


@st.composite
def body_lines(draw: st.DrawFn) -> bytes:
    """One body line: short, long, empty or all white space, with its CRLF."""
    kind = draw(st.sampled_from(["text", "text", "long", "empty", "space"]))
    if kind == "empty":
        return b"\r\n"
    if kind == "space":
        return draw(st.sampled_from([b" \r\n", b"\t \r\n", b"  \t  \r\n"]))
    if kind == "long":
        return draw(st.sampled_from(["x", ". ", "\xe9"])).encode("latin-1") * 1000 + b"\r\n"
    fragments = draw(st.lists(_BODY_FRAGMENTS, max_size=6))
    return "".join(fragments).encode("latin-1") + b"\r\n"


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A whole message: one From among other fields, a body, CRLF or LF line ends."""
    fields = draw(st.lists(header_fields(), max_size=8))
    position = draw(st.integers(min_value=0, max_value=len(fields)))
    sender = draw(st.sampled_from([b"From: a@example.com\r\n", b"from:\t A <a@example.com> \r\n"]))
    fields.insert(position, sender)
    body = b"".join(draw(st.lists(body_lines(), max_size=12)))
    content = b"".join(fields) + b"\r\n" + body
    if draw(st.booleans()) and b"\r" not in content.replace(b"\r\n", b""):
        content = content.replace(b"\r\n", b"\n")
    return content


# -- the cross-checks ----------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(("header_canon", "body_canon"), CANONS, ids=lambda c: c.value)
@RELAXED_STRATEGY
@given(content=messages())
def test_what_we_sign_dkimpy_verifies(
    algorithm: str,
    header_canon: Canonicalization,
    body_canon: Canonicalization,
    content: bytes,
) -> None:
    """Our signature on any corpus message verifies in dkimpy (and in our verifier)."""
    signer = Signer(
        domain=DOMAIN,
        selector=SELECTOR,
        key=private_key(algorithm),
        header_canon=header_canon,
        body_canon=body_canon,
    )

    signed = signer.sign(content) + content

    assert dkim.verify(signed, dnsfunc=dkimpy_dns(algorithm)) is True
    assert our_verdict(signed, algorithm) == (Outcome.PASS, "good signature")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(("header_canon", "body_canon"), CANONS, ids=lambda c: c.value)
@RELAXED_STRATEGY
@given(content=messages())
def test_what_dkimpy_signs_we_verify(
    algorithm: str,
    header_canon: Canonicalization,
    body_canon: Canonicalization,
    content: bytes,
) -> None:
    """dkimpy's signature on any corpus message passes our verifier."""
    field = dkim.sign(
        content,
        SELECTOR.encode(),
        DOMAIN.encode(),
        dkimpy_private_key(algorithm),
        canonicalize=(header_canon.value.encode(), body_canon.value.encode()),
        signature_algorithm=algorithm.encode(),
    )

    assert our_verdict(field + content, algorithm) == (Outcome.PASS, "good signature")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=10, deadline=None)
@given(content=messages(), extra=st.sampled_from([b"x", b"\r\nmore\r\n", b"\xe9\r\n"]))
def test_dkimpy_and_we_agree_a_changed_body_fails(
    algorithm: str, content: bytes, extra: bytes
) -> None:
    """Text added to the body of a dkimpy-signed message fails both verifiers."""
    field = dkim.sign(
        content,
        SELECTOR.encode(),
        DOMAIN.encode(),
        dkimpy_private_key(algorithm),
        canonicalize=(b"relaxed", b"simple"),
        signature_algorithm=algorithm.encode(),
    )
    tampered = field + content + extra

    assert dkim.verify(tampered, dnsfunc=dkimpy_dns(algorithm)) is False
    assert our_verdict(tampered, algorithm) == (Outcome.FAIL, "body hash did not verify")
