"""Auditing a domain's SPF record (RFC 7208): syntax, lookup and void-lookup counts.

Theory of operation. A receiver evaluates SPF for one client address and
stops at the first mechanism that matches, so whether a record exceeds the
limits of §4.6.4 depends on who is asking. An audit has no client; it asks
the question for the worst case instead: it walks the whole tree of the
record, every ``include`` and the ``redirect``, and adds up each
DNS-querying term (``include``, ``a``, ``mx``, ``ptr``, ``exists`` and
``redirect``: at most 10) and each of those lookups that finds nothing (the
void lookups: at most 2). A record whose total passes the limit gives
permerror for every client that reaches its end, which is precisely the
mail that matters: the client that matches nothing.

The walk is a sans-IO evaluator (see :mod:`mailwright.dns.queries`): per
record, the questions of all its terms are asked in one step, then its
includes are followed in order. A domain already on the path from the top
is a loop and is not followed again. Terms whose target holds macros other
than ``%{d}`` and ``%{o}`` depend on the client and cannot be followed; they
count as one lookup and are reported. The walk fetches at most
:data:`MAX_RECORDS` records, which bounds the work a hostile tree can cause.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Generator
from dataclasses import dataclass, field

from mailwright.audit.finding import Finding, error, info, ok, unchecked, warning
from mailwright.auth.spf import DEFAULT_LIMITS, Record, RecordError, Result, parse_record
from mailwright.auth.spf.macros import Macro, MacroString, MacroValues, expand_domain
from mailwright.auth.spf.record import A, All, Exists, Include, Mx, Ptr, spf_records
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Answers, Query, Step

_Gen = Generator[Step, Answers, None]

#: Records fetched per audit at most, includes and redirects together.
MAX_RECORDS = 40

#: Macro letters whose value an audit knows: the current domain and the sender's.
_STATIC_LETTERS = frozenset("do")

_FLATTEN = (
    "cut the number of DNS-querying terms: drop includes of services you no longer use, "
    "replace 'a' and 'mx' with the ip4:/ip6: networks they stand for, or ask a provider "
    "for a narrower include"
)


@dataclass(slots=True)
class _Walk:
    """What the walk over one domain's SPF tree has found so far."""

    top: str
    findings: list[Finding] = field(default_factory=list)
    lookups: int = 0
    voids: int = 0
    records: int = 0
    by_domain: dict[str, int] = field(default_factory=dict)
    void_terms: list[str] = field(default_factory=list)
    unfollowed: list[str] = field(default_factory=list)
    truncated: bool = False


def audit_spf(domain: str) -> Generator[Step, Answers, list[Finding]]:
    """Audit the SPF record of ``domain`` and everything it includes or redirects to.

    Check ids: ``spf.record``, ``spf.multiple``, ``spf.syntax``, ``spf.include``,
    ``spf.loop``, ``spf.lookups``, ``spf.void``, ``spf.ptr``, ``spf.all``,
    ``spf.redirect``, ``spf.macros``, ``spf.dns``. Never raises.
    """
    walk = _Walk(domain)
    [answer] = yield (Query.of(domain, "TXT"),)
    record = _select(walk, domain, answer, included_from=None)
    if record is None:
        return walk.findings

    walk.findings.append(
        ok("spf.record", f"{domain} has one valid SPF record", record=record.text)
    )
    yield from _visit(walk, domain, record, (domain,), policy=True)
    walk.findings.extend(_totals(walk))
    return walk.findings


def _select(walk: _Walk, domain: str, answer: Answer, included_from: str | None) -> Record | None:
    """The one parsed SPF record of ``domain``, or None with findings saying why not."""
    walk.records += 1
    where = f"{domain} (included from {included_from})" if included_from else domain
    if answer.is_transient:
        walk.findings.append(unchecked("spf.dns", f"the SPF record of {where}", _detail(answer)))
        return None

    texts = [text for text in answer.records if isinstance(text, bytes)] if answer.found else []
    records = spf_records(texts)
    if not records:
        walk.findings.append(_missing(domain, answer, included_from))
        return None
    if len(records) > 1:
        walk.findings.append(
            error(
                "spf.multiple",
                f"{where} has {len(records)} SPF records; receivers then give permerror "
                "(RFC 7208 §4.5)",
                f"merge them into one TXT record at {domain} starting 'v=spf1'",
                domain=domain,
                records=[text.decode("ascii", "replace") for text in records],
            )
        )
        return None

    parsed = parse_record(records[0])
    if isinstance(parsed, RecordError):
        walk.findings.append(
            error(
                "spf.syntax",
                f"the SPF record of {where} is invalid: {parsed.reason}; receivers give "
                "permerror (RFC 7208 §4.6)",
                "correct the term named; see RFC 7208 §5 for the mechanisms' syntax",
                domain=domain,
                record=records[0].decode("ascii", "replace"),
            )
        )
        return None
    return parsed


def _missing(domain: str, answer: Answer, included_from: str | None) -> Finding:
    """The finding for a domain without an SPF record: at the top, or included."""
    exists = answer.status is not LookupStatus.NXDOMAIN
    if included_from is None:
        state = "has no SPF record" if exists else "does not exist in DNS"
        return error(
            "spf.record",
            f"{domain} {state}; receivers cannot tell which hosts may send its mail",
            f'publish one TXT record at {domain}, such as "v=spf1 mx -all", listing '
            "every host and service that sends as the domain",
            domain=domain,
        )
    state = "has no SPF record" if exists else "does not exist"
    return error(
        "spf.include",
        f"{included_from} includes or redirects to {domain}, which {state}: "
        "receivers give permerror (RFC 7208 §5.2, §6.1)",
        f"correct the name or remove the term from the record of {included_from}",
        domain=domain,
        included_from=included_from,
    )


def _visit(
    walk: _Walk, domain: str, record: Record, chain: tuple[str, ...], *, policy: bool
) -> _Gen:
    """Count the terms of one record, ask their questions, then follow its includes.

    ``policy`` is true for the top record and redirect targets, whose ``all``
    decides what happens to clients nothing else matches.
    """
    has_all = any(isinstance(d.mechanism, All) for d in record.directives)
    queries: list[tuple[str, Query]] = []
    includes: list[tuple[str, str]] = []
    for directive in record.directives:
        mechanism = directive.mechanism
        if directive.queries_dns:
            walk.lookups += 1
            walk.by_domain[domain] = walk.by_domain.get(domain, 0) + 1
        if isinstance(mechanism, Ptr):
            walk.findings.append(_ptr(domain, directive.text))
        if isinstance(mechanism, All) and directive.qualifier is Result.PASS and not policy:
            walk.findings.append(_plus_all(domain, chain[0]))
        if not isinstance(mechanism, A | Mx | Exists | Include):
            continue

        spec = mechanism.target
        target = domain if spec is None else _static_target(walk, spec, domain, directive.text)
        if target is None:
            continue
        asked = _queries(mechanism, target)
        if asked is None:
            walk.findings.append(_bad_target(domain, directive.text))
            continue
        queries.extend((directive.text, query) for query in asked)
        if isinstance(mechanism, Include):
            includes.append((directive.text, target))

    redirect = _redirect_target(walk, domain, record, has_all)
    if redirect is not None:
        try:
            queries.append((f"redirect={record.redirect}", Query.of(redirect, "TXT")))
        except ValueError:
            walk.findings.append(_bad_target(domain, f"redirect={record.redirect}"))
            redirect = None

    answers = (yield tuple(query for _, query in queries)) if queries else ()
    by_query = {query: answer for (_, query), answer in zip(queries, answers, strict=True)}
    _count_voids(walk, domain, queries, by_query)

    for term, target in includes:
        txt = by_query.get(Query.of(target, "TXT"))
        if txt is not None:
            yield from _follow(walk, domain, term, target, txt, chain, policy=False)
    if redirect is not None:
        yield from _follow(
            walk,
            domain,
            f"redirect={record.redirect}",
            redirect,
            by_query[Query.of(redirect, "TXT")],
            chain,
            policy=True,
        )
    elif policy:
        walk.findings.append(_ending(domain, record))


def _redirect_target(walk: _Walk, domain: str, record: Record, has_all: bool) -> str | None:
    """The name redirect= hands over to, counted as a lookup; None without one."""
    if record.redirect is None:
        return None
    if has_all:
        walk.findings.append(
            warning(
                "spf.redirect",
                f"the record of {domain} has both 'all' and redirect=; receivers ignore "
                "the redirect (RFC 7208 §6.1)",
                "remove one of them: 'all' to hand the decision over, or redirect= to keep it",
                domain=domain,
            )
        )
        return None
    walk.lookups += 1
    walk.by_domain[domain] = walk.by_domain.get(domain, 0) + 1
    term = f"redirect={record.redirect}"
    return _static_target(walk, record.redirect, domain, term)


def _follow(
    walk: _Walk,
    parent: str,
    term: str,
    target: str,
    answer: Answer,
    chain: tuple[str, ...],
    *,
    policy: bool,
) -> _Gen:
    """Walk into the record an include or redirect names, unless that loops."""
    if target in chain:
        walk.findings.append(
            error(
                "spf.loop",
                f"{parent}: {term!r} leads back to {target}: the records include each other, "
                "and receivers give permerror once the lookup limit is reached",
                f"remove the term from the record of {parent}",
                domain=parent,
                term=term,
                path=[*chain, target],
            )
        )
        return
    if walk.records >= MAX_RECORDS:
        walk.truncated = True
        return
    record = _select(walk, target, answer, included_from=parent)
    if record is not None:
        yield from _visit(walk, target, record, (*chain, target), policy=policy)


def _queries(mechanism: A | Mx | Exists | Include, target: str) -> tuple[Query, ...] | None:
    """The questions a term's lookup asks; None for a target that is not a DNS name."""
    try:
        if isinstance(mechanism, A):
            return (Query.of(target, "A"), Query.of(target, "AAAA"))
        if isinstance(mechanism, Mx):
            return (Query.of(target, "MX"),)
        if isinstance(mechanism, Exists):
            return (Query.of(target, "A"),)
        return (Query.of(target, "TXT"),)
    except ValueError:
        return None


def _count_voids(
    walk: _Walk, domain: str, queries: list[tuple[str, Query]], by_query: dict[Query, Answer]
) -> None:
    """Count the terms whose lookups all found nothing; report lookups that failed.

    A term is void when every one of its questions got NXDOMAIN or NODATA.
    XXX(RFC 7208 §4.6.4): an ``a`` term is asked for both address types and is
    void only when both are empty; a receiver asks for one, so an IPv6 client
    can meet a void lookup this audit does not count.
    Include targets are not counted here: one without a record is worse
    than void, and is reported as ``spf.include``.
    """
    answers_of: dict[str, list[Answer]] = {}
    for term, query in queries:
        if query.rdtype != "TXT":
            answers_of.setdefault(term, []).append(by_query[query])
    for term, answers in answers_of.items():
        failed = [answer for answer in answers if answer.is_transient]
        if failed:
            walk.findings.append(
                unchecked("spf.dns", f"{domain}: {term!r}", _detail(failed[0]), domain=domain)
            )
        elif not any(answer.found for answer in answers):
            walk.voids += 1
            walk.void_terms.append(f"{domain}: {term}")


def _static_target(walk: _Walk, spec: MacroString, domain: str, term: str) -> str | None:
    """The name a domain-spec stands for, or None when it depends on the client."""
    if any(isinstance(part, Macro) and part.letter not in _STATIC_LETTERS for part in spec.parts):
        walk.unfollowed.append(f"{domain}: {term}")
        return None
    values = MacroValues(
        sender=f"postmaster@{walk.top}",
        local_part="postmaster",
        sender_domain=walk.top,
        domain=domain,
        ip=ipaddress.IPv4Address(0),
        helo=walk.top,
    )
    return expand_domain(spec, values) or None


def _totals(walk: _Walk) -> list[Finding]:
    """The lookup and void-lookup totals of the whole tree, and what could not be followed."""
    findings: list[Finding] = []
    limit = DEFAULT_LIMITS.lookups
    counted = {"lookups": walk.lookups, "limit": limit, "by_domain": walk.by_domain}
    if walk.lookups > limit:
        findings.append(
            error(
                "spf.lookups",
                f"the SPF record of {walk.top} needs {walk.lookups} DNS-querying terms; "
                f"more than {limit} is permerror (RFC 7208 §4.6.4)",
                _FLATTEN,
                **counted,
            )
        )
    else:
        findings.append(
            ok("spf.lookups", f"{walk.lookups} of at most {limit} DNS-querying terms", **counted)
        )

    void_limit = DEFAULT_LIMITS.void_lookups
    voids = {"void_lookups": walk.voids, "limit": void_limit, "terms": walk.void_terms}
    if walk.voids > void_limit:
        findings.append(
            error(
                "spf.void",
                f"the SPF record of {walk.top} has {walk.voids} terms that look up names "
                f"without records; more than {void_limit} is permerror (RFC 7208 §4.6.4)",
                "remove the terms for hosts and services that are gone: "
                + ", ".join(walk.void_terms),
                **voids,
            )
        )
    elif walk.voids:
        findings.append(
            warning(
                "spf.void",
                f"{walk.voids} term(s) look up names with no records (limit {void_limit}): "
                + ", ".join(walk.void_terms),
                "remove the terms for hosts and services that are gone",
                **voids,
            )
        )
    else:
        findings.append(ok("spf.void", "no void lookups", **voids))

    if walk.unfollowed:
        findings.append(
            info(
                "spf.macros",
                "terms whose target depends on the client were counted but not followed: "
                + ", ".join(walk.unfollowed),
                terms=walk.unfollowed,
            )
        )
    if walk.truncated:
        # TODO: a tree of more than MAX_RECORDS records is cut short, so its
        # counts are lower bounds; report them as such rather than exact.
        findings.append(
            info(
                "spf.lookups",
                f"the walk stopped after {MAX_RECORDS} records; the counts are lower bounds",
            )
        )
    return findings


def _ending(domain: str, record: Record) -> Finding:
    """What the record does with clients nothing matched: its first ``all``, or neutral."""
    ending = next((d for d in record.directives if isinstance(d.mechanism, All)), None)
    if ending is None:
        return warning(
            "spf.all",
            f"the record of {domain} ends without 'all' or redirect=: clients it does not "
            "list get neutral, as if there were no SPF record (RFC 7208 §4.7)",
            "end the record with '-all' (or '~all' while you check that every sender is listed)",
            domain=domain,
        )
    term = ending.text
    if ending.qualifier is Result.PASS:
        return error(
            "spf.all",
            f"the record of {domain} ends with {term!r}: every host on the Internet may send "
            "as the domain",
            "end the record with '-all' (or '~all')",
            domain=domain,
            term=term,
        )
    if ending.qualifier is Result.NEUTRAL:
        return warning(
            "spf.all",
            f"the record of {domain} ends with '?all': unlisted clients get neutral, which "
            "protects nothing",
            "end the record with '-all' (or '~all')",
            domain=domain,
            term=term,
        )
    return ok("spf.all", f"the record of {domain} ends with {term!r}", domain=domain, term=term)


def _plus_all(domain: str, top: str) -> Finding:
    """The finding for '+all' in an included record (the top's own is in :func:`_ending`)."""
    return error(
        "spf.all",
        f"{domain}, included from the record of {top}, matches every client with '+all', so "
        f"every host on the Internet passes SPF for {top}",
        f"remove the include of {domain}, or have its owner end it with '-all' or '~all'",
        domain=domain,
    )


def _ptr(domain: str, term: str) -> Finding:
    return warning(
        "spf.ptr",
        f"the record of {domain} uses {term!r}: slow, unreliable, and receivers may skip it "
        "(RFC 7208 §5.5 says it SHOULD NOT be used)",
        "replace it with the ip4:/ip6: networks or 'a:' names of the sending hosts",
        domain=domain,
        term=term,
    )


def _bad_target(domain: str, term: str) -> Finding:
    return error(
        "spf.syntax",
        f"the record of {domain}: {term!r} names no valid domain",
        "correct the name in the term",
        domain=domain,
        term=term,
    )


def _detail(answer: Answer) -> str:
    return f"{answer.query.text} {answer.query.rdtype}: {answer.detail or answer.status.value}"
