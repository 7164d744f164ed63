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
how unit tests feed it fixture zones. A step whose every answer is in the
cache is answered on the spot, without awaiting: with a warm cache a whole
evaluation runs as plain function calls. :class:`Progress` holds one
evaluation part-way, and :func:`run_all` drives several independent ones
(SPF, DKIM and ARC of one message) from the cache first, then concurrently
for whatever the cache lacked. An :class:`Answer` is plain data: a
:class:`~mailwright.dns.mx.LookupStatus` and the records, decoded per type
(TXT: the strings of each record joined, as bytes; A and AAAA: address text;
MX: ``(preference, exchange)``; PTR and CNAME: the target name).

Names are :class:`dns.name.Name` values built from label octets, so labels
may hold spaces, ``%`` or any octet (SPF macros produce such names).
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

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
    """One DNS question: an absolute name and a record type.

    The hash is computed once, at construction: a query is a cache key that
    is hashed on every lookup, and hashing a :class:`dns.name.Name` folds the
    case of every label each time.
    """

    name: dns.name.Name
    rdtype: str
    _hash: int = field(init=False, repr=False, compare=False)
    _text: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.name, self.rdtype)))

    def __hash__(self) -> int:
        return self._hash

    @classmethod
    def of(cls, name: str | bytes | dns.name.Name, rdtype: str) -> Query:
        """A query for ``name`` (text, label octets joined by dots, or a Name).

        Text is taken as octets (UTF-8), not parsed as a zone-file name, so a
        label may hold a space or a backslash as is. Raises :class:`ValueError`
        for an unknown type, an empty label, a label over 63 octets or a name
        over 255. Queries for text are kept (they are immutable), so asking
        for the same name again returns the same object.
        """
        if isinstance(name, dns.name.Name):
            if rdtype not in RDTYPES:
                raise ValueError(f"unsupported record type {rdtype!r}")
            return cls(name if name.is_absolute() else name.concatenate(dns.name.root), rdtype)
        return _query_of_text(name, rdtype)

    @property
    def text(self) -> str:
        """The name as text without the final dot (for logs and results)."""
        if not self._text:
            object.__setattr__(self, "_text", self.name.to_text(omit_final_dot=True))
        return self._text


@functools.lru_cache(maxsize=4096)
def _query_of_text(name: str | bytes, rdtype: str) -> Query:
    """:meth:`Query.of` for text; errors are raised, not kept."""
    if rdtype not in RDTYPES:
        raise ValueError(f"unsupported record type {rdtype!r}")
    raw = name.encode("utf-8") if isinstance(name, str) else name
    labels = raw.rstrip(b".").split(b".") if raw.strip(b".") else []
    if any(not label for label in labels):
        raise ValueError(f"empty label in {raw[:80]!r}")
    try:
        return Query(dns.name.Name([*labels, b""]), rdtype)
    except (dns.name.NameTooLong, dns.name.LabelTooLong) as exc:
        raise ValueError(f"{raw[:80]!r}: {exc}") from exc


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


class Progress(Generic[T]):
    """One evaluation part-way through: the step it waits for, or its result.

    Constructing it runs the evaluation to its first step. :meth:`from_cache`
    answers steps from a resolver's cache for as long as the cache holds every
    answer, without awaiting anything; :meth:`finish` drives it to its result,
    asking DNS for what the cache lacks. With ``time_limit``, :meth:`finish`
    gives up after that many seconds of waiting for DNS, closes the
    evaluation and takes ``expired()`` as its result (the SPF check's bound,
    RFC 7208 §4.6.4); answers from the cache take no time to wait for.
    Exceptions the evaluation raises propagate.
    """

    __slots__ = ("_result", "done", "evaluation", "expired", "step", "time_limit")

    def __init__(
        self,
        evaluation: Evaluation[T],
        *,
        time_limit: float | None = None,
        expired: Callable[[], T] | None = None,
    ) -> None:
        if (time_limit is None) != (expired is None):
            raise ValueError("give both time_limit and expired, or neither")
        self.evaluation = evaluation
        self.time_limit = time_limit
        self.expired = expired
        self.done = False
        self.step: Step = ()
        self._result: T | None = None
        try:
            self.step = next(evaluation)
        except StopIteration as stop:
            self._end(stop.value)

    @property
    def result(self) -> T:
        """The evaluation's result; :class:`RuntimeError` while it is not done."""
        if not self.done:
            raise RuntimeError("the evaluation has not finished")
        return self._result  # type: ignore[return-value]  # T itself may include None

    def send(self, answers: Answers) -> None:
        """Answer the current step; the evaluation moves to its next step or its result."""
        try:
            self.step = self.evaluation.send(answers)
        except StopIteration as stop:
            self._end(stop.value)

    def from_cache(self, resolver: CachingResolver) -> bool:
        """Answer steps from ``resolver``'s cache while it can; True once done."""
        while not self.done:
            answers = resolver.cached(self.step)
            if answers is None:
                return False
            self.send(answers)
        return True

    async def finish(self, resolver: CachingResolver) -> T:
        """Drive the evaluation to its result, answering each step from ``resolver``."""
        if self.time_limit is None:
            await self._drive(resolver)
            return self.result
        if self.from_cache(resolver):
            return self.result

        try:
            async with asyncio.timeout(self.time_limit):
                await self._drive(resolver)
        except TimeoutError:
            self.evaluation.close()
            assert self.expired is not None
            self._end(self.expired())
        return self.result

    async def _drive(self, resolver: CachingResolver) -> None:
        while not self.done:
            answers = resolver.cached(self.step)
            if answers is None:
                answers = await resolver.resolve_all(self.step)
            self.send(answers)

    def _end(self, result: T) -> None:
        self.done = True
        self.step = ()
        self._result = result


async def run(evaluation: Evaluation[T], resolver: CachingResolver) -> T:
    """Drive ``evaluation`` to its result, answering each step from ``resolver``.

    Steps the cache answers whole are answered at once, without awaiting.
    """
    return await Progress(evaluation).finish(resolver)


T1 = TypeVar("T1")
T2 = TypeVar("T2")
T3 = TypeVar("T3")


@overload
async def run_all(resolver: CachingResolver, first: Progress[T1], /) -> tuple[T1]: ...


@overload
async def run_all(
    resolver: CachingResolver, first: Progress[T1], second: Progress[T2], /
) -> tuple[T1, T2]: ...


@overload
async def run_all(
    resolver: CachingResolver, first: Progress[T1], second: Progress[T2], third: Progress[T3], /
) -> tuple[T1, T2, T3]: ...


@overload
async def run_all(resolver: CachingResolver, /, *runs: Progress[Any]) -> tuple[Any, ...]: ...


async def run_all(resolver: CachingResolver, /, *runs: Progress[Any]) -> tuple[Any, ...]:
    """Drive independent evaluations to their results; the results in the same order.

    Each is first answered from the cache as far as the cache goes, one after
    the other and without awaiting (a warm cache creates no task at all); the
    ones still waiting then go on concurrently, each at its own pace and
    within its own time limit, as :func:`asyncio.gather` of :meth:`Progress.finish`.
    """
    waiting = [progress for progress in runs if not progress.from_cache(resolver)]
    if len(waiting) == 1:
        await waiting[0].finish(resolver)
    elif waiting:
        await asyncio.gather(*(progress.finish(resolver) for progress in waiting))
    return tuple(progress.result for progress in runs)


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
        self.results = ResultMemo(self)

    def expiry(self, queries: Iterable[Query]) -> float | None:
        """When the first of the cached answers to ``queries`` expires; None if any is missing."""
        cache = self._cache
        first = math.inf
        for query in queries:
            entry = cache.get(query)
            if entry is None:
                return None
            first = min(first, entry[0])
        return first

    def cached(self, queries: Sequence[Query]) -> Answers | None:
        """Every query's answer from the cache, or None when any is missing or stale.

        Counts hits only when it answers; a stale entry is left for
        :meth:`resolve` to replace.
        """
        now = self.clock()
        cache = self._cache
        answers = []
        for query in queries:
            entry = cache.get(query)
            if entry is None or entry[0] <= now:
                return None
            answers.append(entry[1])
        for query in queries:
            cache.move_to_end(query)
        self.hits += len(answers)
        return tuple(answers)

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


class ResultMemo:
    """Results of evaluations, kept for as long as the cached answers they read.

    An evaluation (SPF's check_host, a DMARC evaluation) is a pure function
    of its inputs and the DNS answers it reads. With its inputs as ``key``,
    its result can be reused until the first of those answers expires from
    the resolver's cache, which is exactly when asking again could give
    another answer. A result that read an answer the cache does not hold (a
    transient failure, which is never cached) is not kept; neither is one
    ``keep`` refuses (a random draw). At most ``size`` results are kept, the
    oldest going first.

    :meth:`evaluation` wraps an evaluation so that its result is kept when
    it completes; :meth:`get` finds a kept one.
    """

    def __init__(self, resolver: CachingResolver, size: int = 20_000) -> None:
        self.resolver = resolver
        self.size = size
        self._kept: dict[Hashable, tuple[float, Any]] = {}
        self.hits = 0

    def get(self, key: Hashable) -> Any | None:
        """The result kept for ``key`` while it is fresh, else None."""
        entry = self._kept.get(key)
        if entry is None:
            return None
        if entry[0] <= self.resolver.clock():
            del self._kept[key]
            return None
        self.hits += 1
        return entry[1]

    def evaluation(
        self,
        key: Hashable,
        evaluation: Evaluation[T],
        keep: Callable[[T], bool] | None = None,
    ) -> Evaluation[T]:
        """``evaluation``, keeping its result under ``key`` when it completes."""
        asked: list[Query] = []
        result = yield from _recorded(evaluation, asked)
        if keep is None or keep(result):
            self._keep(key, result, asked)
        return result

    def _keep(self, key: Hashable, result: Any, asked: Sequence[Query]) -> None:
        expires = self.resolver.expiry(asked)
        if expires is None:
            return
        if not asked:  # nothing read: valid as long as any answer would be
            expires = self.resolver.clock() + self.resolver.default_negative_ttl
        kept = self._kept
        if len(kept) >= self.size:
            del kept[next(iter(kept))]
        kept[key] = (expires, result)


def _recorded(evaluation: Evaluation[T], asked: list[Query]) -> Evaluation[T]:
    """``evaluation`` as is, noting every query it asks in ``asked``."""
    try:
        step = next(evaluation)
        while True:
            asked.extend(step)
            answers = yield step
            step = evaluation.send(answers)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def _decode(rdtype: str, rdata: Any) -> Any:
    if rdtype == "TXT":
        return b"".join(rdata.strings)
    if rdtype in ("A", "AAAA"):
        return str(rdata.address)
    if rdtype == "MX":
        return (int(rdata.preference), rdata.exchange)
    return rdata.target  # PTR, CNAME
