"""DNS for sans-IO evaluators: the questions they ask, the answers they get, a TTL cache.

Theory of operation. SPF, DKIM, DMARC and ARC need DNS answers in the middle
of their logic. Rather than calling a resolver (and becoming async, slow to
test and tied to dnspython's exceptions), each evaluator is a generator: it
yields a :data:`Step`, a tuple of :class:`Query` values it needs answered
(several at once are asked concurrently), receives a tuple of
:class:`Answer` values in the same order, and finally returns its result::

    def evaluate(...) -> Evaluation[Result]:
        [answer] = yield (Query.of("_dmarc.example.com", "TXT"),)
        ...
        return result

:func:`run` drives such a generator against a :class:`CachingResolver` (the
shared async resolver plus a cache that honours TTLs and caches negative
answers, RFC 2308); :func:`run_sync` drives it against any function, which is
how unit tests feed it fixture zones. An :class:`Answer` is plain data: a
:class:`~mailwright.dns.mx.LookupStatus` and the records, decoded per type
(TXT: the strings of each record joined, as bytes; A and AAAA: address text;
MX: ``(preference, exchange)``; PTR and CNAME: the target name).

Names are :class:`dns.name.Name` values built from label octets, so labels
may hold spaces, ``%`` or any octet (SPF macros produce such names).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import dns.resolver

from mailwright.dns.mx import LookupStatus

T = TypeVar("T")

#: The record types the evaluators ask for.
RDTYPES = frozenset({"A", "AAAA", "MX", "TXT", "PTR", "CNAME"})


@dataclass(frozen=True, slots=True)
class Query:
    """One DNS question: an absolute name and a record type."""

    name: dns.name.Name
    rdtype: str

    @classmethod
    def of(cls, name: str | bytes | dns.name.Name, rdtype: str) -> Query:
        """A query for ``name`` (text, label octets joined by dots, or a Name).

        Text is taken as octets (UTF-8), not parsed as a zone-file name, so a
        label may hold a space or a backslash as is. Raises :class:`ValueError`
        for an unknown type, an empty label, a label over 63 octets or a name
        over 255.
        """
        if rdtype not in RDTYPES:
            raise ValueError(f"unsupported record type {rdtype!r}")
        if isinstance(name, dns.name.Name):
            return cls(name if name.is_absolute() else name.concatenate(dns.name.root), rdtype)
        raw = name.encode("utf-8") if isinstance(name, str) else name
        labels = raw.rstrip(b".").split(b".") if raw.strip(b".") else []
        if any(not label for label in labels):
            raise ValueError(f"empty label in {raw[:80]!r}")
        try:
            return cls(dns.name.Name([*labels, b""]), rdtype)
        except (dns.name.NameTooLong, dns.name.LabelTooLong) as exc:
            raise ValueError(f"{raw[:80]!r}: {exc}") from exc

    @property
    def text(self) -> str:
        """The name as text without the final dot (for logs and results)."""
        return self.name.to_text(omit_final_dot=True)


@dataclass(frozen=True, slots=True)
class Answer:
    """What DNS said to one :class:`Query`."""

    query: Query
    status: LookupStatus
    records: tuple[Any, ...] = ()
    detail: str = ""
    ttl: float = field(default=0.0, compare=False)

    @property
    def found(self) -> bool:
        """True for a NOERROR answer with records of the asked type."""
        return self.status is LookupStatus.ANSWER

    @property
    def is_transient(self) -> bool:
        """True for SERVFAIL and timeouts: the answer may be different later."""
        return self.status.is_transient


Step = tuple[Query, ...]
Answers = tuple[Answer, ...]
Evaluation = Generator[Step, Answers, T]


async def run(evaluation: Evaluation[T], resolver: CachingResolver) -> T:
    """Drive ``evaluation`` to its result, answering each step from ``resolver``."""
    try:
        step = next(evaluation)
        while True:
            answers = await resolver.resolve_all(step)
            step = evaluation.send(answers)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]  # the generator's return value


def run_sync(evaluation: Evaluation[T], answer: Callable[[Query], Answer]) -> T:
    """Drive ``evaluation`` with a plain function (fixture zones in unit tests)."""
    try:
        step = next(evaluation)
        while True:
            step = evaluation.send(tuple(answer(query) for query in step))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


class CachingResolver:
    """The shared async resolver, with a cache of answers that honours TTLs.

    Positive answers live for their TTL; NXDOMAIN and NODATA for the SOA's
    negative TTL (RFC 2308 §5: the smaller of the SOA's TTL and MINIMUM), or
    :attr:`default_negative_ttl` without an SOA; every lifetime is capped by
    :attr:`max_ttl`. Transient failures are never cached. The cache holds at
    most ``size`` answers, the least recently used going first.
    """

    def __init__(
        self,
        resolver: dns.asyncresolver.Resolver,
        *,
        size: int = 50_000,
        max_ttl: float = 86_400.0,
        default_negative_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.resolver = resolver
        self.size = size
        self.max_ttl = max_ttl
        self.default_negative_ttl = default_negative_ttl
        self.clock = clock
        self._cache: OrderedDict[Query, tuple[float, Answer]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    async def resolve_all(self, queries: Sequence[Query]) -> Answers:
        """Answer every query, concurrently; the answers come in the queries' order."""
        if len(queries) == 1:
            return (await self.resolve(queries[0]),)
        return tuple(await asyncio.gather(*(self.resolve(query) for query in queries)))

    async def resolve(self, query: Query) -> Answer:
        """One answer, from the cache while it is fresh, else from DNS."""
        now = self.clock()
        cached = self._cache.get(query)
        if cached is not None:
            expires, answer = cached
            if expires > now:
                self._cache.move_to_end(query)
                self.hits += 1
                return answer
            del self._cache[query]

        self.misses += 1
        answer = await self._ask(query)
        if not answer.is_transient and self.size > 0:
            self._cache[query] = (now + min(answer.ttl, self.max_ttl), answer)
            if len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return answer

    async def _ask(self, query: Query) -> Answer:
        """Ask DNS; translate dnspython's outcomes into an :class:`Answer`."""
        try:
            result = await self.resolver.resolve(
                query.name, query.rdtype, raise_on_no_answer=False, search=False
            )
        except dns.resolver.NXDOMAIN as exc:
            return Answer(
                query, LookupStatus.NXDOMAIN, detail="no such name", ttl=self._negative(exc)
            )
        except dns.resolver.NoNameservers as exc:
            return Answer(query, LookupStatus.SERVFAIL, detail=f"no nameserver answered: {exc}")
        except dns.exception.Timeout:
            return Answer(query, LookupStatus.TIMEOUT, detail="no answer in time")
        except (dns.exception.DNSException, ValueError) as exc:
            return Answer(query, LookupStatus.SERVFAIL, detail=f"{type(exc).__name__}: {exc}")

        if result.rrset is None:
            return Answer(
                query,
                LookupStatus.NODATA,
                detail="no record of that type",
                ttl=self._negative_of(result.response),
            )
        records = tuple(_decode(query.rdtype, rdata) for rdata in result.rrset)
        return Answer(query, LookupStatus.ANSWER, records, ttl=float(result.rrset.ttl))

    def _negative(self, exc: dns.resolver.NXDOMAIN) -> float:
        try:
            responses = exc.responses()  # type: ignore[no-untyped-call]  # dnspython lacks hints
        except (AttributeError, KeyError):
            return self.default_negative_ttl
        for response in responses.values():
            return self._negative_of(response)
        return self.default_negative_ttl

    def _negative_of(self, response: dns.message.Message | None) -> float:
        if response is None:
            return self.default_negative_ttl
        for rrset in response.authority:
            if rrset.rdtype == dns.rdatatype.SOA:
                return float(min(rrset.ttl, rrset[0].minimum))
        return self.default_negative_ttl

    def statistics(self) -> dict[str, int]:
        """Cache counters, for metrics."""
        return {"size": len(self._cache), "hits": self.hits, "misses": self.misses}


def _decode(rdtype: str, rdata: Any) -> Any:
    if rdtype == "TXT":
        return b"".join(rdata.strings)
    if rdtype in ("A", "AAAA"):
        return str(rdata.address)
    if rdtype == "MX":
        return (int(rdata.preference), rdata.exchange)
    return rdata.target  # PTR, CNAME
