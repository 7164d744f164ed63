"""Building ARC chains for unit tests: our sealer, fixed keys, a dict of key records.

:func:`build` seals a message through any number of hops with our own
:class:`~mailwright.auth.arc.ArcSealer`; :func:`validate` runs the sans-IO
validator against :data:`RECORDS` (or records given), with no DNS at all.
Ed25519 keys derived from fixed seeds keep the tests fast and reproducible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from functools import cache

from cryptography.hazmat.primitives.asymmetric import ed25519

from mailwright.auth.arc import ArcResult, ArcSealer, Sealed, verify_chain
from mailwright.auth.dkim import format_key_record
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Query, run_sync

MESSAGE = (
    b"From: Alice <alice@origin.example>\r\n"
    b"To: list@hop1.example\r\n"
    b"Subject: test\r\n"
    b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"\r\n"
    b"Hello.\r\n"
)

NOW = 1_700_000_000.0


@cache
def key(domain: str) -> ed25519.Ed25519PrivateKey:
    """A fixed Ed25519 key per domain."""
    return ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(domain.encode()).digest())


def record(domain: str) -> str:
    return format_key_record(key(domain))


def sealer(domain: str) -> ArcSealer:
    """A sealer for ``domain`` with selector ``s`` and authserv-id ``domain``."""
    return ArcSealer(domain=domain, selector="s", key=key(domain), authserv_id=domain)


def hop_domains(count: int) -> list[str]:
    return [f"hop{number}.example" for number in range(1, count + 1)]


#: Key records of hop1 to hop60.
RECORDS: dict[str, str] = {f"s._domainkey.{d}": record(d) for d in hop_domains(60)}


def answers(
    records: Mapping[str, str] = RECORDS, faults: Mapping[str, LookupStatus] | None = None
) -> Callable[[Query], Answer]:
    """An answer function serving ``records``; names in ``faults`` get that status."""

    def answer(query: Query) -> Answer:
        name = query.text.lower()
        if faults and name in faults:
            return Answer(query, faults[name], detail="injected")
        found = records.get(name)
        if found is None:
            return Answer(query, LookupStatus.NXDOMAIN)
        return Answer(query, LookupStatus.ANSWER, (found.encode(),))

    return answer


def validate(
    message: bytes,
    records: Mapping[str, str] = RECORDS,
    faults: Mapping[str, LookupStatus] | None = None,
) -> ArcResult:
    """The chain status of ``message`` against ``records``, without DNS."""
    return run_sync(verify_chain(message, now=NOW), answers(records, faults))


def seal_once(message: bytes, domain: str) -> bytes:
    """``message`` validated and sealed by ``domain``."""
    sealed = sealer(domain).seal(message, validate(message), timestamp=int(NOW))
    assert isinstance(sealed, Sealed), sealed
    return b"".join(sealed.fields) + message


def build(hops: int, message: bytes = MESSAGE) -> bytes:
    """``message`` sealed by hop1 to hop``hops`` in turn."""
    for domain in hop_domains(hops):
        message = seal_once(message, domain)
    return message
