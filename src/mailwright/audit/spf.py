"""Auditing a domain's SPF record (RFC 7208): the lookup count, judged.

Theory of operation. A receiver evaluates SPF for one client address and
stops at the first mechanism that matches, so whether a record exceeds the
limits of §4.6.4 depends on who is asking. An audit has no client; it asks
the question for the worst case instead, the client that matches nothing,
whose check reaches the end of every record: precisely the mail that
matters. That is the count :func:`~mailwright.auth.spf.count_lookups`
makes for ``mailwright spf build``, and this module does no walking of its
own: it runs that count and turns what it found into findings, from each
record visited (missing, several, invalid, a loop; ``ptr``, ``+all`` in an
include, ``all`` beside ``redirect=``, the ending of the records that
decide), from each term (a failed lookup, a target that is no domain, a
target built from client macros, too many MX records) and from the totals.

The semantics are therefore the count's, shared by both commands:

* terms after the first ``all``, and a ``redirect=`` beside ``all``, are
  never evaluated and not counted; ``ptr`` and ``+all`` are judged wherever
  they are written;
* an ``a`` term is void only when its name has neither A nor AAAA records
  (an under-count for clients of the missing family; a TODO in the count);
* ``%{d}`` (the record's own domain) and ``%{o}`` (the audited domain as
  the sender's) are expanded; targets with other macros count one and are
  not followed;
* a domain included from several places is counted, and judged, each time;
* the walk fetches at most :data:`~mailwright.auth.spf.lookups.MAX_RECORDS`
  records, which bounds the work a hostile tree can cause.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator

from mailwright.audit.finding import Finding, error, info, ok, unchecked, warning
from mailwright.auth.spf import Record, RecordError, Result
from mailwright.auth.spf.lookups import MAX_RECORDS, LookupCount, Visit, count_lookups
from mailwright.auth.spf.record import All, Directive, Ptr
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Answers, Step

_FLATTEN = (
    "cut the number of DNS-querying terms: drop includes of services you no longer use, "
    "replace 'a' and 'mx' with the ip4:/ip6: networks they stand for, or ask a provider "
    "for a narrower include"
)


def audit_spf(domain: str) -> Generator[Step, Answers, list[Finding]]:
    """Audit the SPF record of ``domain`` and everything it includes or redirects to.

    Check ids: ``spf.record``, ``spf.multiple``, ``spf.syntax``, ``spf.include``,
    ``spf.loop``, ``spf.lookups``, ``spf.void``, ``spf.ptr``, ``spf.all``,
    ``spf.redirect``, ``spf.macros``, ``spf.dns``. Never raises.
    """
    count = yield from count_lookups(domain)
    if not count.visits:
        return [error("spf.record", count.errors[0], "check the name given", domain=domain)]
    top = count.visits[0]
    if not isinstance(top.record, Record):
        return [_unusable(top)]

    findings = [ok("spf.record", f"{domain} has one valid SPF record", record=top.record.text)]
    for visit in count.visits:
        findings.extend(_judge(visit, domain))
    for term in count.terms:
        if term.problem == "failed":
            where = f"{term.domain}: {term.term!r}"
            findings.append(unchecked("spf.dns", where, term.note, domain=term.domain))
        elif term.problem == "invalid":
            findings.append(_bad_target(term.domain, term.term))
        elif term.problem == "mx":
            findings.append(_too_many_mx(term.domain, term.term, count.limits.mx_names))
    findings.extend(_totals(count))
    return findings


def _judge(visit: Visit, top: str) -> list[Finding]:
    """The findings of one record reached: why it is unusable, or what is weak in it.

    The top record and redirect targets decide what happens to clients nothing
    else matches, so their ending is judged; ``+all`` in an include is an error.
    """
    if visit.loop:
        parent = visit.path[-2]
        return [
            error(
                "spf.loop",
                f"{parent}: {visit.term!r} leads back to {visit.domain}: the records include "
                "each other, and receivers give permerror once the lookup limit is reached",
                f"remove the term from the record of {parent}",
                domain=parent,
                term=visit.term,
                path=list(visit.path),
            )
        ]
    record = visit.record
    if not isinstance(record, Record):
        return [_unusable(visit)]

    domain = visit.domain
    findings = [_ptr(domain, d.text) for d in record.directives if isinstance(d.mechanism, Ptr)]
    endings = [d for d in record.directives if isinstance(d.mechanism, All)]
    policy = not visit.term or visit.term.startswith("redirect=")
    if not policy and any(d.qualifier is Result.PASS for d in endings):
        findings.append(_plus_all(domain, top))
    if record.redirect is not None and endings:
        findings.append(
            warning(
                "spf.redirect",
                f"the record of {domain} has both 'all' and redirect=; receivers ignore "
                "the redirect (RFC 7208 §6.1)",
                "remove one of them: 'all' to hand the decision over, or redirect= to keep it",
                domain=domain,
            )
        )
    if policy and (endings or record.redirect is None):
        findings.append(_ending(domain, endings[0] if endings else None))
    return findings


def _unusable(visit: Visit) -> Finding:
    """The finding for a domain without one valid SPF record: at the top, or included."""
    domain, answer = visit.domain, visit.answer
    parent = visit.path[-2] if visit.term else None
    where = f"{domain} (included from {parent})" if parent else domain
    if answer is not None and answer.is_transient:
        return unchecked("spf.dns", f"the SPF record of {where}", _detail(answer))
    if len(visit.published) > 1:
        return error(
            "spf.multiple",
            f"{where} has {len(visit.published)} SPF records; receivers then give permerror "
            "(RFC 7208 §4.5)",
            f"merge them into one TXT record at {domain} starting 'v=spf1'",
            domain=domain,
            records=[text.decode("ascii", "replace") for text in visit.published],
        )
    if isinstance(visit.record, RecordError):
        return error(
            "spf.syntax",
            f"the SPF record of {where} is invalid: {visit.record.reason}; receivers give "
            "permerror (RFC 7208 §4.6)",
            "correct the term named; see RFC 7208 §5 for the mechanisms' syntax",
            domain=domain,
            record=visit.published[0].decode("ascii", "replace") if visit.published else "",
        )

    exists = answer is None or answer.status is not LookupStatus.NXDOMAIN
    if parent is None:
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
        f"{parent} includes or redirects to {domain}, which {state}: "
        "receivers give permerror (RFC 7208 §5.2, §6.1)",
        f"correct the name or remove the term from the record of {parent}",
        domain=domain,
        included_from=parent,
    )


def _totals(count: LookupCount) -> list[Finding]:
    """The lookup and void-lookup totals of the whole tree, and what could not be followed."""
    findings: list[Finding] = []
    limit = count.limits.lookups
    by_domain = dict(Counter(term.domain for term in count.terms))
    counted = {"lookups": count.total, "limit": limit, "by_domain": by_domain}
    if count.total > limit:
        findings.append(
            error(
                "spf.lookups",
                f"the SPF record of {count.domain} needs {count.total} DNS-querying terms; "
                f"more than {limit} is permerror (RFC 7208 §4.6.4)",
                _FLATTEN,
                **counted,
            )
        )
    else:
        findings.append(
            ok("spf.lookups", f"{count.total} of at most {limit} DNS-querying terms", **counted)
        )

    void_limit = count.limits.void_lookups
    void_terms = [f"{term.domain}: {term.term}" for term in count.terms if term.void]
    voids = {"void_lookups": count.voids, "limit": void_limit, "terms": void_terms}
    if count.voids > void_limit:
        findings.append(
            error(
                "spf.void",
                f"the SPF record of {count.domain} has {count.voids} terms that look up names "
                f"without records; more than {void_limit} is permerror (RFC 7208 §4.6.4)",
                "remove the terms for hosts and services that are gone: " + ", ".join(void_terms),
                **voids,
            )
        )
    elif count.voids:
        findings.append(
            warning(
                "spf.void",
                f"{count.voids} term(s) look up names with no records (limit {void_limit}): "
                + ", ".join(void_terms),
                "remove the terms for hosts and services that are gone",
                **voids,
            )
        )
    else:
        findings.append(ok("spf.void", "no void lookups", **voids))

    unfollowed = [
        f"{term.domain}: {term.term}" for term in count.terms if term.problem == "macros"
    ]
    if unfollowed:
        findings.append(
            info(
                "spf.macros",
                "terms whose target depends on the client were counted but not followed: "
                + ", ".join(unfollowed),
                terms=unfollowed,
            )
        )
    if count.truncated:
        # TODO: a tree of more than MAX_RECORDS records is cut short, so its
        # counts are lower bounds; report them as such rather than exact.
        findings.append(
            info(
                "spf.lookups",
                f"the walk stopped after {MAX_RECORDS} records; the counts are lower bounds",
            )
        )
    return findings


def _ending(domain: str, ending: Directive | None) -> Finding:
    """What the record does with clients nothing matched: its first ``all``, or neutral."""
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


def _too_many_mx(domain: str, term: str, limit: int) -> Finding:
    return error(
        "spf.lookups",
        f"the record of {domain}: {term!r} meets more than {limit} MX records, which is "
        "permerror (RFC 7208 §4.6.4)",
        "list the sending hosts with ip4:/ip6: or 'a:' instead of 'mx'",
        domain=domain,
        term=term,
    )


def _detail(answer: Answer) -> str:
    return f"{answer.query.text} {answer.query.rdtype}: {answer.detail or answer.status.value}"
