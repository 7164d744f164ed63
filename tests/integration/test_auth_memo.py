"""Reused evaluations: SPF and DMARC results kept in the resolver's memo, over real DNS.

The second message from the same client and sender is judged without a
single DNS query, with the same results; once the answers' TTL has passed
the checks are made afresh.
"""

from __future__ import annotations

import pytest
from tests.dnsserver import DnsServer

from mailwright.auth.evaluate import authenticate, check_sender
from mailwright.dns.queries import CachingResolver
from mailwright.dns.resolver import make_resolver

pytestmark = pytest.mark.integration

ZONES = {
    "sender.test": [("TXT", "v=spf1 ip4:192.0.2.7 -all", 300)],
    "_dmarc.sender.test": [("TXT", "v=DMARC1; p=reject", 300)],
    "mta.sender.test": [("A", "192.0.2.7", 300), ("TXT", "v=spf1 a -all", 300)],
}


def _message(local: str) -> bytes:
    return f"From: <{local}@sender.test>\r\nSubject: x\r\n\r\nbody\r\n".encode()


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


async def test_repeated_checks_ask_dns_once_until_the_ttl_passes() -> None:
    """Same client, same sender: the second verdict costs no query; after 300 s it does."""
    clock = Clock()
    with DnsServer(ZONES) as server:
        resolver = CachingResolver(
            make_resolver([server.nameserver], timeout=0.5, lifetime=1.0, cache_size=0),
            clock=clock,
        )

        async def judge(local: str) -> tuple[str, str, str]:
            sender = await check_sender(
                resolver, ip="192.0.2.7", helo="mta.sender.test",
                mail_from="bounce@sender.test", check_helo=True,
            )  # fmt: skip
            verdict = await authenticate(
                resolver, _message(local), ip="192.0.2.7", helo="mta.sender.test",
                mail_from="bounce@sender.test", sender=sender,
            )  # fmt: skip
            assert sender.helo is not None
            return sender.spf.result.value, sender.helo.result.value, verdict.dmarc.result.value

        first = await judge("alice")
        asked = len(server.queries)
        assert first == ("pass", "pass", "pass")

        assert await judge("bob") == first  # another From local part: DMARC reused too
        assert len(server.queries) == asked

        clock.now += 301
        assert await judge("carol") == first
        assert len(server.queries) > asked
