"""Helpers shared by the tests of DMARC aggregate reports out (mailwright.reports).

* :func:`evaluation` builds an :class:`Evaluation` with test defaults;
* :func:`validate` checks a document against the RFC 9990 schema kept in
  ``tests/data/dmarc/rfc9990.xsd`` (xmlschema);
* :func:`parse_back` reads it with parsedmarc, an independent parser;
* :func:`zone_answers` answers sans-IO DNS queries from a dict of TXT records;
* :class:`Clock` is a virtual clock whose ``sleep`` moves it forward.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import parsedmarc
import xmlschema

from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Query
from mailwright.reports.model import (
    DkimAuth,
    Evaluation,
    OverrideReason,
    PolicyPublished,
    Row,
    SpfAuth,
)

# TODO: replace this schema with the one RFC 9990 published (it types comments and
# human_result as langAttrString, with an optional lang attribute); the library held
# only the drafts' dmarc-xml-0.2.xsd. Our reports, without lang, are valid under both.
SCHEMA_PATH = Path(__file__).parent / "data" / "dmarc" / "rfc9990.xsd"

#: 2026-03-02 00:00:00 UTC, a day boundary.
DAY0 = 1772409600.0
DAY = 86400.0


@functools.cache
def schema() -> xmlschema.XMLSchema:
    """The RFC 9990 schema, loaded once."""
    return xmlschema.XMLSchema(str(SCHEMA_PATH))


def validate(xml: bytes) -> None:
    """Raise xmlschema's validation error unless ``xml`` is a valid RFC 9990 report."""
    schema().validate(xml.decode("utf-8"))


def parse_back(xml: bytes) -> dict[str, Any]:
    """``xml`` as parsedmarc reads it (offline: no DNS, no geolocation)."""
    logging.getLogger("parsedmarc").setLevel(logging.ERROR)
    return dict(parsedmarc.parse_aggregate_report_xml(xml.decode("utf-8"), offline=True))


def policy(domain: str = "example.com", p: str = "reject", **tags: Any) -> PolicyPublished:
    """A published policy for ``domain``."""
    return PolicyPublished(domain=domain, p=p, **tags)


def row(
    source_ip: str = "192.0.2.1",
    *,
    disposition: str = "none",
    dkim: str = "pass",
    spf: str = "pass",
    header_from: str = "example.com",
    envelope_from: str | None = "example.com",
    envelope_to: str | None = "mx.example.net",
    reasons: Sequence[OverrideReason] = (),
    dkim_results: Sequence[DkimAuth] | None = None,
    spf_results: Sequence[SpfAuth] | None = None,
) -> Row:
    """A row of count 1; by default aligned DKIM and SPF passes for example.com."""
    return Row(
        source_ip=source_ip,
        count=1,
        disposition=disposition,
        dkim=dkim,
        spf=spf,
        header_from=header_from,
        envelope_from=envelope_from,
        envelope_to=envelope_to,
        reasons=tuple(reasons),
        dkim_results=tuple(
            dkim_results
            if dkim_results is not None
            else (DkimAuth(header_from, "pass" if dkim == "pass" else "fail", "s1"),)
        ),
        spf_results=tuple(
            spf_results
            if spf_results is not None
            else (SpfAuth(envelope_from or header_from, "pass" if spf == "pass" else "fail"),)
        ),
    )


def evaluation(
    received_at: float,
    the_row: Row | None = None,
    *,
    published: PolicyPublished | None = None,
    rua: Sequence[str] = ("mailto:dmarc@example.com",),
) -> Evaluation:
    """One evaluation received at ``received_at``."""
    return Evaluation(
        received_at=received_at,
        policy=published or policy(),
        row=the_row or row(),
        rua=tuple(rua),
    )


def zone_answers(
    txt: Mapping[str, Sequence[str]], failing: Sequence[str] = ()
) -> Callable[[Query], Answer]:
    """An answer function for ``run_sync``: TXT records by name, SERVFAIL for ``failing``.

    Names not listed get NXDOMAIN.
    """
    records = {name.lower().rstrip("."): values for name, values in txt.items()}
    broken = {name.lower().rstrip(".") for name in failing}

    def answer(query: Query) -> Answer:
        name = query.text.lower()
        if name in broken:
            return Answer(query, LookupStatus.SERVFAIL, detail="server failure")
        if name in records:
            values = tuple(value.encode() for value in records[name])
            return Answer(query, LookupStatus.ANSWER, values, ttl=300)
        return Answer(query, LookupStatus.NXDOMAIN, detail="no such name", ttl=300)

    return answer


class Clock:
    """A virtual clock: ``sleep`` moves it forward and yields to the event loop once.

    With ``stop_at``, a sleep that would go past it parks for good instead
    (the ``parked`` event is set), so a test can look at the state there and cancel.
    """

    def __init__(self, now: float, *, stop_at: float | None = None) -> None:
        self.now = now
        self.stop_at = stop_at
        self.sleeps: list[float] = []
        self.parked = asyncio.Event()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if self.stop_at is not None and self.now + seconds > self.stop_at:
            self.parked.set()
            await asyncio.Event().wait()
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)

    async def until_parked(self) -> None:
        """Wait (ten real seconds at most) until a sleep parked at ``stop_at``."""
        async with asyncio.timeout(10):
            await self.parked.wait()


def records_of(parsed: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The records of a parsedmarc report."""
    yield from parsed["records"]
