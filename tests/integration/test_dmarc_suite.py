"""mailwright's DMARC suite (tests/data/dmarc/*.yml) against a real DNS server on loopback.

Each scenario's ``zonedata`` is served by its own :class:`DnsServer`; each test
of the suite is one pytest case, run through :func:`check_dmarc` with a fresh
resolver. The format is described in ``tests/data/dmarc/README.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.dnsserver import DnsServer

from mailwright.auth.authres import RESULT_WORDS
from mailwright.auth.dmarc import DmarcResult, check_dmarc
from mailwright.dns.queries import CachingResolver
from mailwright.dns.resolver import make_resolver

pytestmark = pytest.mark.integration

SUITE = Path(__file__).parent.parent / "data" / "dmarc"

#: Zonedata markers and the DnsServer fault each stands for.
FAULTS = {"SERVFAIL": "servfail", "TIMEOUT": "drop"}


@dataclass(frozen=True)
class Case:
    """One named test of one scenario."""

    scenario: str
    name: str
    spec: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.scenario.split('#')[0]}/{self.name}"


def load_suite() -> tuple[dict[str, dict[str, Any]], list[Case]]:
    """Every scenario by key (``file#index``) and every test case, in file order."""
    scenarios: dict[str, dict[str, Any]] = {}
    cases: list[Case] = []
    for path in sorted(SUITE.glob("*.yml")):
        for index, scenario in enumerate(yaml.safe_load_all(path.read_text("utf-8"))):
            key = f"{path.stem}#{index}"
            scenarios[key] = scenario
            cases.extend(Case(key, name, spec) for name, spec in scenario["tests"].items())
    return scenarios, cases


SCENARIOS, CASES = load_suite()


def serve(zonedata: dict[str, list[Any]]) -> DnsServer:
    """A started DnsServer holding ``zonedata`` (see the suite's README)."""
    server = DnsServer()
    for name, entries in zonedata.items():
        for entry in entries:
            if isinstance(entry, str):
                server.fail(name, FAULTS[entry])
                continue
            [(rtype, value)] = entry.items()
            if rtype == "TXT" and isinstance(value, dict):
                value = value["prefix"] + value["repeat"] * value["times"]
            server.add(name, rtype, value)
    return server.start()


@pytest.fixture(scope="module")
def servers() -> Iterator[Callable[[str], DnsServer]]:
    """One DNS server per scenario, started when a test first needs it."""
    started: dict[str, DnsServer] = {}

    def server_for(key: str) -> DnsServer:
        if key not in started:
            started[key] = serve(SCENARIOS[key].get("zonedata") or {})
        return started[key]

    yield server_for
    for server in started.values():
        server.stop()


def message_with(from_fields: list[str]) -> bytes:
    """A small message with one From field per value."""
    head = "".join(f"From: {value}\r\n" for value in from_fields)
    return (head + "To: rcpt@example.test\r\nSubject: suite\r\n\r\nbody\r\n").encode("utf-8")


async def evaluate_case(case: Case, server: DnsServer) -> DmarcResult:
    """Run one case's inputs through check_dmarc against ``server``."""
    spec = case.spec
    resolver = CachingResolver(
        make_resolver([server.nameserver], timeout=0.3, lifetime=0.6, cache_size=0)
    )
    options = dict(spec.get("options") or {})
    draw = options.pop("sample", None)
    spf = spec.get("spf")
    dkim = [(signature["d"], signature["result"]) for signature in spec.get("dkim") or []]

    source: dict[str, Any]
    if "from_domain" in spec:
        source = {"from_domain": spec["from_domain"]}
    else:
        fields = spec["from_fields"] if "from_fields" in spec else [spec["from"]]
        source = {"message": message_with(fields)}

    return await check_dmarc(
        resolver,
        **source,
        spf=(spf["result"], spf["domain"]) if spf else None,
        dkim=dkim,
        sample=(lambda: draw) if draw is not None else None,
        **options,
    )


def observed(result: DmarcResult) -> dict[str, Any]:
    """The result in the suite's vocabulary."""
    return {
        "result": result.result.value,
        "policy": result.policy.value if result.policy else None,
        "policy_tag": result.policy_tag,
        "disposition": result.disposition.value,
        "author_domain": result.author_domain,
        "policy_domain": result.policy_domain,
        "org_domain": result.organizational_domain,
        "spf_aligned": result.spf_aligned,
        "dkim_aligned": result.dkim_aligned,
        "aligned_dkim": list(result.aligned_dkim_domains),
        "test_mode": result.test_mode,
        "sampled": result.sampled,
        "queried": list(result.queried),
    }


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_suite_case(case: Case, servers: Callable[[str], DnsServer]) -> None:
    """The evaluation gives every value the suite case expects."""
    server = servers(case.scenario)

    result = await evaluate_case(case, server)

    got = observed(result)
    wanted = {key: case.spec[key] for key in got if key in case.spec}
    assert {key: got[key] for key in wanted} == wanted, result.reason
    if "reason" in case.spec:
        assert case.spec["reason"] in result.reason
    for name in case.spec.get("queried", ()):
        assert server.queries_for(name), f"{name} never reached the DNS server"


def test_suite_cases_are_documented() -> None:
    """Every case names its RFC 9989 section and says what it checks."""
    undocumented = [case.id for case in CASES if not case.spec.get("spec")]
    undescribed = [case.id for case in CASES if not case.spec.get("description")]

    assert undocumented == []
    assert undescribed == []


def test_suite_covers_every_result_word() -> None:
    """The suite expects each DMARC result word RFC 8601 knows at least once."""
    expected = {case.spec["result"] for case in CASES}

    assert expected == RESULT_WORDS["dmarc"]
