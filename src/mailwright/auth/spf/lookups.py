"""What an SPF record costs a receiver in DNS lookups, counted before it is published.

RFC 7208 §4.6.4 lets one check_host() evaluation spend ten DNS-querying
terms (``include``, ``a``, ``mx``, ``ptr``, ``exists`` and ``redirect=``,
across every include and redirect) and two void lookups; one more of either
is permerror. Which terms a real check evaluates depends on the client (the
first match stops it), so a domain owner wants the worst case: every term
of the record and of everything it includes, as if nothing matched. That is
what :func:`count_lookups` reports, in a :class:`LookupCount`.

Theory of operation. The count walks the record as the evaluator would
when no mechanism matches: left to right, into each ``include`` target and
then into the ``redirect=`` target (which an ``all`` makes unreachable, as
it makes every term after it: neither is counted). Each DNS-querying term
counts one. With DNS (the sans-IO steps of :mod:`mailwright.dns.queries`)
the walk also fetches the records of the include and redirect targets, asks
whether the names of ``a``, ``mx`` and ``exists`` terms hold anything (a
void lookup, §4.6.4 ¶7) and how many MX records an ``mx`` term meets (more
than ten is permerror). A target already on the path from the top is a loop
and is not entered, so the walk ends even where the evaluator would only
stop at the limit; a domain included from several places is fetched once
but counted (and visited) each time, as the evaluator counts it.

Targets are expanded as far as they are known: ``%{d}`` is the domain of
the record being walked and ``%{o}`` the domain at the top (the count is
for mail from that domain). Terms whose target holds other macros
(``%{i}``, ``%{l}``...) depend on the client and are counted without being
followed.

Without DNS (``follow=False``, or :func:`count_static`) only the record
given is counted, each include and redirect as one term: a lower bound.

The walk never raises for bad records or DNS trouble: what would make a
check permerror or temperror when reached is listed in
:attr:`LookupCount.errors` for people, and kept as data in
:attr:`LookupCount.visits` (each record reached) and :attr:`TermCount.problem`
for programs. ``mailwright spf build`` reports the count as it is; the
domain audit (``mailwright check``, :mod:`mailwright.audit.spf`) judges it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Literal

from mailwright.auth.spf.identity import checkable_domain
from mailwright.auth.spf.limits import DEFAULT_LIMITS, Limits
from mailwright.auth.spf.macros import Macro, MacroString, MacroValues, expand_domain
from mailwright.auth.spf.record import (
    A,
    All,
    Exists,
    Include,
    Ip4,
    Ip6,
    Mx,
    Ptr,
    Record,
    RecordError,
    is_spf_record,
    parse_record,
    spf_records,
)
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Answers, Evaluation, Query, Step

#: Records fetched by one count at most: a hostile tree of includes stays bounded.
MAX_RECORDS = 50

#: What stopped a term short of an ordinary lookup (see :class:`TermCount`).
Problem = Literal["", "failed", "macros", "invalid", "loop", "mx"]

_Gen = Generator[Step, Answers, None]
_Fetched = tuple[Answer, tuple[bytes, ...], Record | RecordError | None]


@dataclass(frozen=True, slots=True)
class TermCount:
    """One DNS-querying term met by the count.

    ``domain`` holds the record the term is in (empty for a record given as
    text without a domain), ``depth`` is 0 for that record, 1 for what it
    includes or redirects to, and so on. ``lookups`` is what the term costs
    with everything below it: 1, or for an include or redirect that was
    followed, 1 and the target's terms. ``void`` says its lookup found
    nothing; ``note`` says what else the count learnt (empty when nothing).
    ``problem`` names what stopped the term, for programs: ``failed`` (its
    lookup failed: temperror), ``macros`` (the target depends on the client;
    not followed), ``invalid`` (the target is not a domain that can be
    queried; permerror for an include or redirect), ``loop``, ``mx`` (more
    MX records than allowed: permerror); empty otherwise.
    """

    domain: str
    term: str
    depth: int
    lookups: int = 1
    void: bool = False
    note: str = ""
    problem: Problem = ""


@dataclass(frozen=True, slots=True)
class Visit:
    """One record the count reached: the top one, or an include or redirect target.

    ``path`` runs from the top down to ``domain`` (empty for a record given
    as text without a domain); ``term`` is the include or redirect that led
    here, empty at the top. ``answer`` is the TXT lookup of ``domain`` (None
    for a record given as text, and for a loop, which is not entered),
    ``published`` the SPF records in it, ``record`` the one record parsed
    (None when there is none or more than one). A domain reached from
    several places is visited each time.
    """

    domain: str
    path: tuple[str, ...]
    term: str = ""
    answer: Answer | None = None
    published: tuple[bytes, ...] = ()
    record: Record | RecordError | None = None
    loop: bool = False


@dataclass(frozen=True, slots=True)
class LookupCount:
    """The worst-case cost of a record against the limits of RFC 7208 §4.6.4.

    ``total`` is the DNS-querying terms a check evaluates when nothing
    matches, ``voids`` the lookups among them that found nothing, ``terms``
    each such term and ``visits`` each record reached, in walk order.
    ``errors`` says what makes a check permerror or temperror when it gets
    there (a target without a record, a syntax error, too many MX records, a
    failed lookup); ``notes`` what the count could not know (terms with
    macros, terms after ``all``). ``followed`` is False for a count without
    DNS, whose total is a lower bound, as it is when ``truncated`` (the walk
    stopped at its limit of records).
    """

    domain: str
    total: int
    voids: int
    terms: tuple[TermCount, ...] = ()
    visits: tuple[Visit, ...] = ()
    errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    followed: bool = True
    limits: Limits = DEFAULT_LIMITS
    truncated: bool = False

    @property
    def loops(self) -> tuple[str, ...]:
        """Each include or redirect that leads back onto its own path: ``a -> b -> a``."""
        return tuple(dict.fromkeys(" -> ".join(visit.path) for visit in self.visits if visit.loop))

    @property
    def over_limit(self) -> bool:
        """True when a check that matches nothing ends in permerror for a limit."""
        return self.total > self.limits.lookups or self.voids > self.limits.void_lookups

    @property
    def ok(self) -> bool:
        """True when nothing found would stop a check with permerror or temperror."""
        return not (self.over_limit or self.loops or self.errors)

    def warnings(self) -> tuple[str, ...]:
        """One sentence per problem found, for people: limits, loops, errors."""
        found: list[str] = []
        limit = self.limits.lookups
        if self.total > limit:
            found.append(
                f"{self.total} DNS-querying terms; receivers allow {limit} and give permerror "
                f"past that (RFC 7208 §4.6.4)"
            )
        if self.voids > self.limits.void_lookups:
            found.append(
                f"{self.voids} void lookups; receivers allow {self.limits.void_lookups} and "
                f"give permerror past that (RFC 7208 §4.6.4)"
            )
        found.extend(f"loop: {loop} (a check that gets there is permerror)" for loop in self.loops)
        found.extend(self.errors)
        if not self.followed and any(
            term.term.lower().startswith("include:") for term in self.terms
        ):
            found.append("includes were not followed (no DNS): the real total is higher")
        return tuple(found)


def count_lookups(
    source: str | bytes | Record,
    *,
    domain: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    follow: bool = True,
    max_records: int = MAX_RECORDS,
) -> Evaluation[LookupCount]:
    """Count the DNS lookups of a domain's SPF record, or of a record not yet published.

    ``source`` is a domain name (its record is fetched) or a record, as text
    starting with ``v=spf1`` or parsed; for a record, ``domain`` names where
    it is (or will be) published, so that ``a`` and ``mx`` without a target
    can be checked and an include of that domain is seen as a loop. With
    ``follow=False`` nothing is asked (see :func:`count_static`). Never
    raises: every problem is in the result.
    """
    walk = _Walk(limits, follow, max_records)
    text = source.decode("ascii", "replace") if isinstance(source, bytes) else source

    if isinstance(text, Record) or is_spf_record(text.encode("ascii", "replace")):
        parsed = parse_record(text) if isinstance(text, str) else text
        walk.top = (checkable_domain(domain) or domain.lower()) if domain else ""
        path = (walk.top,) if walk.top else ()
        walk.visits.append(Visit(walk.top, path, record=parsed))
        if isinstance(parsed, RecordError):
            walk.errors.append(f"the record is invalid: {parsed.reason}")
        else:
            yield from walk.record(parsed, walk.top, 0, path)
        return walk.result()

    walk.top = checkable_domain(text) or ""
    if not walk.top:
        walk.errors.append(f"{text[:80]!r} is not a domain that can be checked (RFC 7208 §4.3)")
    elif not follow:
        walk.notes.append(f"the record of {walk.top} was not fetched (no DNS)")
    else:
        yield from walk.domain(walk.top, 0, (), "")
    return walk.result()


def count_static(record: str | bytes | Record, *, domain: str | None = None) -> LookupCount:
    """Count one record's DNS-querying terms without DNS: includes and redirects count one.

    The total is a lower bound whenever the record includes or redirects.
    """
    evaluation = count_lookups(record, domain=domain, follow=False)
    try:
        next(evaluation)
    except StopIteration as done:
        counted: LookupCount = done.value
        return counted
    raise AssertionError("a count without DNS asked a question")  # pragma: no cover


@dataclass(slots=True)
class _Walk:
    """The state of one count: the tally, the records fetched, what was found."""

    limits: Limits
    follow: bool
    max_records: int
    top: str = ""
    total: int = 0
    voids: int = 0
    truncated: bool = False
    terms: list[TermCount] = field(default_factory=list)
    visits: list[Visit] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fetched: dict[str, _Fetched] = field(default_factory=dict)

    def result(self) -> LookupCount:
        return LookupCount(
            self.top,
            self.total,
            self.voids,
            tuple(self.terms),
            tuple(self.visits),
            tuple(dict.fromkeys(self.errors)),
            tuple(dict.fromkeys(self.notes)),
            self.follow,
            self.limits,
            self.truncated,
        )

    def domain(self, name: str, depth: int, path: tuple[str, ...], term: str) -> _Gen:
        """Fetch ``name``'s record (once per count) and walk it."""
        if name not in self.fetched:
            if len(self.fetched) >= self.max_records:
                self.truncated = True
                self.errors.append(
                    f"stopped after {self.max_records} records; the real total is higher"
                )
                return
            [answer] = yield (Query.of(name, "TXT"),)
            texts = [text for text in answer.records if isinstance(text, bytes)]
            published = tuple(spf_records(texts)) if answer.found else ()
            parsed = parse_record(published[0]) if len(published) == 1 else None
            self.fetched[name] = (answer, published, parsed)

        visit = Visit(name, (*path, name), term, *self.fetched[name])
        self.visits.append(visit)
        if isinstance(visit.record, Record):
            yield from self.record(visit.record, name, depth, visit.path)
        else:
            self.errors.append(_stopped(visit))

    def record(self, record: Record, name: str, depth: int, path: tuple[str, ...]) -> _Gen:
        """Count every term of one record that a check matching nothing evaluates."""
        where = name or "the record"
        for index, directive in enumerate(record.directives):
            mechanism = directive.mechanism
            if isinstance(mechanism, All):
                if index < len(record.directives) - 1:
                    self.notes.append(
                        f"{where}: terms after {directive.text!r} are never evaluated"
                    )
                if record.redirect is not None:
                    self.notes.append(f"{where}: redirect= is never used after 'all' (§6.1)")
                return
            if isinstance(mechanism, Include):
                yield from self._follow(directive.text, mechanism.target, name, depth, path)
            elif not isinstance(mechanism, Ip4 | Ip6):
                yield from self._term(directive.text, mechanism, name, depth)

        if record.redirect is not None:
            term = f"redirect={record.redirect}"
            yield from self._follow(term, record.redirect, name, depth, path)

    def _term(self, term: str, mechanism: A | Mx | Ptr | Exists, name: str, depth: int) -> _Gen:
        self.total += 1
        # TODO: "ptr" and %{p} cost depends on the client's reverse zone (up to ten
        # PTR names validated, §4.6.4); the count cannot know it and adds one only.
        if isinstance(mechanism, Ptr):
            self._add(name, term, depth, note="ptr is slow and discouraged (RFC 7208 §5.5)")
            return
        target, problem, note = self._target(mechanism.target, name)
        if not target or not self.follow:
            self._add(name, term, depth, note=note, problem=problem)
            return

        if isinstance(mechanism, Mx):
            [answer] = yield (Query.of(target, "MX"),)
            found = len(answer.records)
            if found <= self.limits.mx_names:
                self._settle(answer, name, term, depth)
                return
            self.errors.append(
                f"{term!r}: {target} has {found} MX records; at most "
                f"{self.limits.mx_names} are allowed: permerror (RFC 7208 §4.6.4)"
            )
            self._add(name, term, depth, note=f"{found} MX records", problem="mx")
            return
        # TODO: an "a" term is void here only when its name has neither A nor AAAA
        # records; for clients of the missing family it is void all the same, so a
        # name with addresses of one family only under-counts by one per such term.
        rdtypes = ("A",) if isinstance(mechanism, Exists) else ("A", "AAAA")
        answers = yield tuple(Query.of(target, rdtype) for rdtype in rdtypes)
        failed = [answer for answer in answers if answer.is_transient]
        found_any = [answer for answer in answers if answer.found]
        self._settle((failed or found_any or answers)[0], name, term, depth)

    def _follow(
        self, term: str, spec: MacroString, name: str, depth: int, path: tuple[str, ...]
    ) -> _Gen:
        """An include or redirect: one term, and with DNS the target's terms."""
        self.total += 1
        target, problem, note = self._target(spec, name)
        if not target:
            if problem == "invalid":
                self.errors.append(f"{term!r}: {note}: permerror")
            self._add(name, term, depth, note=note + "; not followed", problem=problem)
            return
        if target in path:
            self.visits.append(Visit(target, (*path, target), term, loop=True))
            self._add(name, term, depth, note="loop", problem="loop")
            return
        if not self.follow:
            self._add(name, term, depth)
            return

        index = len(self.terms)
        before = self.total
        self._add(name, term, depth)
        yield from self.domain(target, depth + 1, path, term)
        self.terms[index] = TermCount(name, term, depth, 1 + self.total - before)

    def _target(self, spec: MacroString | None, name: str) -> tuple[str, Problem, str]:
        """The name a term looks up, or ``("", problem, why)`` when there is none to ask."""
        if spec is None:
            if name:
                return name, "", ""
            return "", "", "of the domain the record is published at, which was not given"

        known = {"d"} if name else set()
        known |= {"o"} if self.top else set()
        if any(isinstance(part, Macro) and part.letter not in known for part in spec.parts):
            return "", "macros", "depends on the client or sender (macros)"
        values = MacroValues(
            sender=f"postmaster@{self.top}",
            local_part="postmaster",
            sender_domain=self.top,
            domain=name,
            ip=ipaddress.IPv4Address(0),
            helo=self.top,
        )
        target = checkable_domain(expand_domain(spec, values))
        if target is None:
            return "", "invalid", f"{spec.source[:80]!r} is not a domain that can be queried"
        return target, "", ""

    def _settle(self, answer: Answer, name: str, term: str, depth: int) -> None:
        """Record one term's lookup: temperror for a failure, a void when it found nothing."""
        asked = f"the {answer.query.rdtype} lookup for {answer.query.text}"
        if answer.is_transient:
            failure = f"{asked} failed ({_detail(answer)})"
            self.errors.append(f"{term!r}: {failure}: temperror")
            self._add(name, term, depth, note=failure, problem="failed")
        elif not answer.records:
            self.voids += 1
            self._add(
                name, term, depth, void=True, note=f"{answer.query.text}: {answer.status.value}"
            )
        else:
            self._add(name, term, depth)

    def _add(
        self,
        name: str,
        term: str,
        depth: int,
        *,
        void: bool = False,
        note: str = "",
        problem: Problem = "",
    ) -> None:
        self.terms.append(TermCount(name, term, depth, 1, void, note, problem))


def _stopped(visit: Visit) -> str:
    """Why a check reaching a domain without one valid record stops, for people."""
    name, term, answer = visit.domain, visit.term, visit.answer
    where = f"{term!r}: " if term else ""
    if answer is not None and answer.is_transient:
        return f"{where}the TXT lookup for {name} failed ({_detail(answer)}): temperror"
    if isinstance(visit.record, RecordError):
        return f"{where}the SPF record of {name} is invalid ({visit.record.reason}): permerror"
    if len(visit.published) > 1:
        return f"{where}{name} has {len(visit.published)} SPF records: permerror (RFC 7208 §4.5)"

    exists = answer is None or answer.status is not LookupStatus.NXDOMAIN
    missing = f"{name} {'has no SPF record' if exists else 'does not exist'}"
    if not term:
        return missing
    section = "§6.1" if term.startswith("redirect=") else "§5.2"
    return f"{where}{missing}: permerror (RFC 7208 {section})"


def _detail(answer: Answer) -> str:
    return answer.detail or answer.status.value
