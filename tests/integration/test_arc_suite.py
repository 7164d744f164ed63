"""The ValiMail ARC test suite, every case, with key records served by a real DNS server.

The suite (``/work/shared/vectors/arc``, MIT, ValiMail 2017) was written
against draft-ietf-dmarc-arc-protocol-18; nothing on the wire changed
before RFC 8617. Each scenario's ``txt-records`` are served by its own
:class:`~tests.dnsserver.DnsServer` and asked for through the production
resolver (:func:`~mailwright.dns.resolver.make_resolver` and
:class:`~mailwright.dns.queries.CachingResolver`).

How the cases are read, and the places where we read them against the RFC:

* ``message`` is YAML text with LF line ends; it is sent as CRLF, as it
  would travel.
* ``cv`` is ``Pass``, ``Fail`` or ``None``. Three validation cases
  (``cv_fail_i1_as_cv_fail``, ``cv_fail_i2_as2_fail``,
  ``cv_fail_i2_as1_fail``) expect an empty cv: the suite's reference
  runner (dkimpy) prints nothing for a chain whose newest seal already says
  cv=fail, calling the chain "terminated". RFC 8617 §5.2 step 2 says such a
  chain's validation status is ``fail``, and there is no fourth word for
  ``arc=`` (§10.1). So we expect ``fail`` with :attr:`ArcResult.terminated`
  set, which is the same verdict under its RFC name.
* Signing cases give the key, t=, h= and authserv-id, and the expected
  ARC-Seal, ARC-Message-Signature and ARC-Authentication-Results. The chain
  status we seal with is our own validation of the message (which agrees
  with the ``arc=`` its Authentication-Results field claims). We compare
  every tag of every field, base64 and h= values without white space, and
  the AAR after relaxed canonicalisation; RSA PKCS#1 v1.5 is
  deterministic, so the b= values must be the suite's exactly. An empty
  expectation (``no_additional_sig``) means no set may be added.
* The suite's expected seals were computed over the ARC-Message-Signature
  with its b= unbroken, not as the YAML prints it folded; our sealer writes
  that b= on one line (see :mod:`mailwright.auth.arc.seal`), so the seals
  match and the sealed messages verify.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.dnsserver import DnsServer
from tests.vectors import VECTORS as SHARED_VECTORS

from mailwright.auth.arc import ArcSealer, ChainStatus, NotSealed, Sealed, check_arc
from mailwright.auth.dkim.canonical import Canonicalization, canonicalize_header
from mailwright.auth.dkim.tags import TagList, parse_tag_list
from mailwright.dns.queries import CachingResolver
from mailwright.dns.resolver import make_resolver

pytestmark = pytest.mark.integration

VECTORS = SHARED_VECTORS / "arc"
VALIDATION = VECTORS / "arc-draft-validation-tests.yml"
SIGNING = VECTORS / "arc-draft-sign-tests.yml"

#: Tags compared without any white space (base64 and colon lists).
COMPACT_TAGS = frozenset({"b", "bh", "h"})


@dataclass(frozen=True)
class Case:
    """One named test of one scenario of a suite file."""

    scenario: int
    name: str
    spec: dict[str, Any]


def load(path: Path) -> tuple[list[dict[str, Any]], list[Case]]:
    """The scenarios of ``path`` and every case in them, in file order."""
    scenarios = list(yaml.safe_load_all(path.read_text("utf-8")))
    cases = [
        Case(index, name, spec)
        for index, scenario in enumerate(scenarios)
        for name, spec in scenario["tests"].items()
    ]
    return scenarios, cases


VALIDATION_SCENARIOS, VALIDATION_CASES = load(VALIDATION)
SIGNING_SCENARIOS, SIGNING_CASES = load(SIGNING)


def wire(text: str) -> bytes:
    """A YAML message as it travels: CRLF line ends."""
    return text.replace("\n", "\r\n").encode("utf-8")


def zones(scenario: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """The scenario's key records as DnsServer zones (YAML line breaks removed)."""
    return {
        name: [("TXT", "".join(value.split("\n")))]
        for name, value in scenario["txt-records"].items()
    }


@pytest.fixture(scope="module")
def resolvers() -> Iterator[Callable[[str, int], CachingResolver]]:
    """A resolver asking the DNS server of a scenario, servers started on first use."""
    started: dict[tuple[str, int], DnsServer] = {}

    def resolver_for(suite: str, index: int) -> CachingResolver:
        if (suite, index) not in started:
            scenarios = VALIDATION_SCENARIOS if suite == "validation" else SIGNING_SCENARIOS
            started[(suite, index)] = DnsServer(zones(scenarios[index])).start()
        server = started[(suite, index)]
        return CachingResolver(make_resolver([server.nameserver], timeout=0.5, lifetime=2.0))

    yield resolver_for
    for server in started.values():
        server.stop()


def expected_status(case: Case) -> ChainStatus:
    """The suite's cv as our status; empty (a terminated chain) is fail, see above."""
    word = str(case.spec.get("cv") or "").strip().lower()
    return ChainStatus(word or "fail")


@pytest.mark.parametrize("case", VALIDATION_CASES, ids=lambda case: case.name)
async def test_every_validation_case_gives_its_expected_cv(
    case: Case, resolvers: Callable[[str, int], CachingResolver]
) -> None:
    """Each validation case gets the chain status the suite expects."""
    resolver = resolvers("validation", case.scenario)

    result = await check_arc(resolver, wire(case.spec["message"]))

    assert result.result is expected_status(case), result.reason
    assert result.reason
    if not str(case.spec.get("cv") or "").strip():
        assert result.terminated


def test_the_suites_hold_the_cases_we_expect() -> None:
    """171 validation cases (as YAML loads them) and 17 signing cases, none lost."""
    assert len(VALIDATION_CASES) == 171
    assert len(SIGNING_CASES) == 17


def tag_values(value: str | bytes) -> dict[str, str]:
    """The tags of a seal or signature, compared modulo folding."""
    text = value.decode("ascii") if isinstance(value, bytes) else value
    parsed = parse_tag_list(" ".join(text.split()))
    assert isinstance(parsed, TagList), parsed
    return {
        tag.name: tag.compact if tag.name in COMPACT_TAGS else " ".join(tag.value.split())
        for tag in parsed
    }


def relaxed(name: str, value: str | bytes) -> bytes:
    raw = value if isinstance(value, bytes) else value.encode("utf-8")
    return canonicalize_header(f"{name}:".encode() + raw, Canonicalization.RELAXED)


@pytest.mark.parametrize("case", SIGNING_CASES, ids=lambda case: case.name)
async def test_every_signing_case_gives_the_expected_set(
    case: Case, resolvers: Callable[[str, int], CachingResolver]
) -> None:
    """We seal each signing case exactly as expected, and the sealed message verifies."""
    scenario = SIGNING_SCENARIOS[case.scenario]
    resolver = resolvers("signing", case.scenario)
    spec = case.spec
    message = wire(spec["message"])
    sealer = ArcSealer(
        domain=scenario["domain"],
        selector=scenario["sel"],
        key=scenario["privatekey"],
        authserv_id=spec["srv-id"],
        headers=spec["sig-headers"].split(":"),
    )

    chain = await check_arc(resolver, message)
    sealed = sealer.seal(message, chain, timestamp=int(spec["t"]))

    if not spec["AS"].strip():
        assert isinstance(sealed, NotSealed)
        assert sealed.fields == ()
        return
    assert isinstance(sealed, Sealed)
    as_value = sealed.seal.split(b":", 1)[1]
    ams_value = sealed.message_signature.split(b":", 1)[1]
    aar_value = sealed.authentication_results.split(b":", 1)[1]
    assert tag_values(as_value) == tag_values(spec["AS"])
    assert tag_values(ams_value) == tag_values(spec["AMS"])
    assert relaxed("a", aar_value) == relaxed("a", " ".join(spec["AAR"].split()))

    after = await check_arc(resolver, b"".join(sealed.fields) + message)
    expected = ChainStatus.PASS if sealed.cv is not ChainStatus.FAIL else ChainStatus.FAIL
    assert after.result is expected, after.reason
    if after.passed:
        assert after.highest_instance == sealed.instance
