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
it makes every term after it). Each DNS-querying term counts one. With DNS
(the sans-IO steps of :mod:`mailwright.dns.queries`) the walk also fetches
the records of the include and redirect targets, asks whether the names of
``a``, ``mx`` and ``exists`` terms hold anything (a void lookup, §4.6.4 ¶7)
and how many MX records an ``mx`` term meets (more than ten is permerror).
A target already on the path from the top is a loop and is not entered, so
the walk ends even where the evaluator would only stop at the limit; a
domain included from several places is fetched once but counted each time,
as the evaluator counts it. Terms whose target holds macros (``%{i}``,
``%{l}``...) depend on the client and are counted without being followed.

Without DNS (``follow=False``, or :func:`count_static`) only the record
given is counted, each include and redirect as one term: a lower bound.

The walk never raises for bad records or DNS trouble: what would make a
check permerror or temperror when reached is listed in
:attr:`LookupCount.errors`. ``mailwright spf build`` and the domain audit
(``mailwright check``) both report from this count.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

from mailwright.auth.spf.identity import checkable_domain
from mailwright.auth.spf.limits import DEFAULT_LIMITS, Limits
from mailwright.auth.spf.macros import Macro, MacroString
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

_Gen = Generator[Step, Answers, None]


@dataclass(frozen=True, slots=True)
class TermCount:
    """One DNS-querying term met by the count.

    ``domain`` holds the record the term is in (empty for a record given as
    text without a domain), ``depth`` is 0 for that record, 1 for what it
    includes or redirects to, and so on. ``lookups`` is what the term costs
    with everything below it: 1, or for an include or redirect that was
    followed, 1 and the target's terms. ``void`` says its lookup found
    nothing; ``note`` says what else the count learnt (empty when nothing).
    """

    domain: str
    term: str
    depth: int
    lookups: int = 1
    void: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True)
class LookupCount:
    """The worst-case cost of a record against the limits of RFC 7208 §4.6.4.

    ``total`` is the DNS-querying terms a check evaluates when nothing
    matches, ``voids`` the lookups among them that found nothing, ``terms``
    each such term in walk order. ``loops`` describes each include or
    redirect that leads back to a record on its own path (``a.example ->
    b.example -> a.example``); ``errors`` what makes a check permerror or
    temperror when it gets there (a target without a record, a syntax
    error, too many MX records, a failed lookup); ``notes`` what the count
    could not know (terms with macros, terms after ``all``). ``followed`` is
    False for a count without DNS, whose total is a lower bound.
    """

    domain: str
    total: int
    voids: int
    terms: tuple[TermCount, ...] = ()
    loops: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    followed: bool = True
    limits: Limits = DEFAULT_LIMITS

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
        name = (checkable_domain(domain) or domain.lower()) if domain else ""
        if isinstance(parsed, RecordError):
            walk.errors.append(f"the record is invalid: {parsed.reason}")
        else:
            yield from walk.record(parsed, name, 0, (name,) if name else ())
        return walk.result(name)

    name = checkable_domain(text) or ""
    if not name:
        walk.errors.append(f"{text[:80]!r} is not a domain that can be checked (RFC 7208 §4.3)")
    elif not follow:
        walk.notes.append(f"the record of {name} was not fetched (no DNS)")
    else:
        yield from walk.domain(name, 0, (), "")
    return walk.result(name)


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
    total: int = 0
    voids: int = 0
    terms: list[TermCount] = field(default_factory=list)
    loops: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fetched: dict[str, Record | str] = field(default_factory=dict)

    def result(self, name: str) -> LookupCount:
        return LookupCount(
            name,
            self.total,
            self.voids,
            tuple(self.terms),
            tuple(dict.fromkeys(self.loops)),
            tuple(dict.fromkeys(self.errors)),
            tuple(dict.fromkeys(self.notes)),
            self.follow,
            self.limits,
        )

    def domain(self, name: str, depth: int, path: tuple[str, ...], term: str) -> _Gen:
        """Fetch ``name``'s record (once per count) and walk it."""
        if name not in self.fetched:
            if len(self.fetched) >= self.max_records:
                self.errors.append(
                    f"stopped after {self.max_records} records; the real total is higher"
                )
                return
            self.fetched[name] = yield from self._fetch(name, term)

        record = self.fetched[name]
        if isinstance(record, str):
            self.errors.append(record)
            return
        yield from self.record(record, name, depth, (*path, name))

    def _fetch(self, name: str, term: str) -> Generator[Step, Answers, Record | str]:
        """The parsed record of ``name``, or why a check reaching it stops."""
        where = f"{term!r}: " if term else ""
        [answer] = yield (Query.of(name, "TXT"),)
        if answer.is_transient:
            return f"{where}the TXT lookup for {name} failed ({_detail(answer)}): temperror"

        texts = [text for text in answer.records if isinstance(text, bytes)]
        records = spf_records(texts) if answer.found else []
        if not records:
            exists = answer.status is not LookupStatus.NXDOMAIN
            missing = f"{name} {'has no SPF record' if exists else 'does not exist'}"
            if not term:
                return missing
            section = "§6.1" if term.startswith("redirect=") else "§5.2"
            return f"{where}{missing}: permerror (RFC 7208 {section})"
        if len(records) > 1:
            return f"{where}{name} has {len(records)} SPF records: permerror (RFC 7208 §4.5)"

        parsed = parse_record(records[0])
        if isinstance(parsed, RecordError):
            return f"{where}the SPF record of {name} is invalid ({parsed.reason}): permerror"
        return parsed

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
            if isinstance(mechanism, Ip4 | Ip6):
                continue
            yield from self._term(directive.text, mechanism, name, depth, path)

        if record.redirect is not None:
            term = f"redirect={record.redirect}"
            yield from self._follow(term, record.redirect, name, depth, path)

    def _term(
        self,
        term: str,
        mechanism: Include | A | Mx | Ptr | Exists,
        name: str,
        depth: int,
        path: tuple[str, ...],
    ) -> _Gen:
        if isinstance(mechanism, Include):
            yield from self._follow(term, mechanism.target, name, depth, path)
            return

        self.total += 1
        # TODO: "ptr" and %{p} cost depends on the client's reverse zone (up to ten
        # PTR names validated, §4.6.4); the count cannot know it and adds one only.
        if isinstance(mechanism, Ptr):
            self._add(name, term, depth, note="ptr is slow and discouraged (RFC 7208 §5.5)")
            return
        target = _literal(mechanism.target, name)
        if target is None:
            self._add(name, term, depth, note=_unknown_target(mechanism.target))
            return
        if not self.follow:
            self._add(name, term, depth)
            return

        if isinstance(mechanism, Mx):
            [answer] = yield (Query.of(target, "MX"),)
            self._settle(answer, name, term, depth)
            if len(answer.records) > self.limits.mx_names:
                self.errors.append(
                    f"{term!r}: {target} has {len(answer.records)} MX records; at most "
                    f"{self.limits.mx_names} are allowed: permerror (RFC 7208 §4.6.4)"
                )
            return
        # TODO: an "a" term is void here only when its name has neither A nor AAAA
        # records; for clients of the missing family it is void all the same, so a
        # name with addresses of one family only under-counts by one per such term.
        rdtypes = ("A",) if isinstance(mechanism, Exists) else ("A", "AAAA")
        answers = yield tuple(Query.of(target, rdtype) for rdtype in rdtypes)
        failed = [answer for answer in answers if answer.is_transient]
        found = [answer for answer in answers if answer.found]
        self._settle(failed[0] if failed else found[0] if found else answers[0], name, term, depth)

    def _follow(
        self, term: str, spec: MacroString, name: str, depth: int, path: tuple[str, ...]
    ) -> _Gen:
        """An include or redirect: one term, and with DNS the target's terms."""
        self.total += 1
        target = _literal(spec, name)
        if target is None:
            reason = _unknown_target(spec)
            if spec.parts and not any(isinstance(part, Macro) for part in spec.parts):
                self.errors.append(f"{term!r}: {reason}: permerror")
            self._add(name, term, depth, note=reason + "; not followed")
            return
        if target in path:
            self.loops.append(" -> ".join((*path, target)))
            self._add(name, term, depth, note="loop")
            return
        if not self.follow:
            self._add(name, term, depth)
            return

        index = len(self.terms)
        before = self.total
        self._add(name, term, depth)
        yield from self.domain(target, depth + 1, path, term)
        self.terms[index] = TermCount(name, term, depth, 1 + self.total - before)

    def _settle(self, answer: Answer, name: str, term: str, depth: int) -> None:
        """Record one term's lookup: temperror for a failure, a void when it found nothing."""
        if answer.is_transient:
            self.errors.append(
                f"{term!r}: the {answer.query.rdtype} lookup for {answer.query.text} failed "
                f"({_detail(answer)}): temperror"
            )
            self._add(name, term, depth, note="lookup failed")
        elif not answer.records:
            self.voids += 1
            self._add(
                name, term, depth, void=True, note=f"{answer.query.text}: {answer.status.value}"
            )
        else:
            self._add(name, term, depth)

    def _add(
        self, name: str, term: str, depth: int, *, void: bool = False, note: str = ""
    ) -> None:
        self.terms.append(TermCount(name, term, depth, 1, void, note))


def _literal(spec: MacroString | None, name: str) -> str | None:
    """The name a target stands for; None when it holds macros, is invalid or is not given."""
    if spec is None:
        return name or None
    if any(isinstance(part, Macro) for part in spec.parts):
        return None
    return checkable_domain("".join(part for part in spec.parts if isinstance(part, str)))


def _unknown_target(spec: MacroString | None) -> str:
    """Why :func:`_literal` gave no name."""
    if spec is None:
        return "of the domain the record is published at, which was not given"
    if any(isinstance(part, Macro) for part in spec.parts):
        return "depends on the client or sender (macros)"
    return f"{str(spec)[:80]!r} is not a domain that can be queried"


def _detail(answer: Answer) -> str:
    return answer.detail or answer.status.value
