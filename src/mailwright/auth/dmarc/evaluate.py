"""DMARC evaluation of a message: result, applicable policy and disposition (RFC 9989 §5.3).

Theory of operation. :func:`evaluate` is a sans-IO evaluator (see
:mod:`mailwright.dns.queries`): it yields DNS questions and returns a
:class:`~.result.DmarcResult`. For each Author Domain it

1. asks for the Author Domain's own record, then, without one, walks up the
   tree in one step to find the Organizational Domain's or the Public
   Suffix Domain's record (§4.10.1; :mod:`.discovery`); no record means
   ``none``, a DNS failure on the way ``temperror``;
2. treats a record with an invalid ``p``, ``sp`` or ``np`` as ``p=none`` if
   it names a valid ``rua`` URI, and otherwise applies no DMARC processing,
   which we report as ``permerror`` (§4.10.1);
3. takes the SPF-authenticated MAIL FROM domain and the ``d=`` of each
   passing DKIM signature, and checks each for alignment (:mod:`.alignment`),
   walking up from any name whose Organizational Domain relaxed mode needs,
   all such walks in one step (§4.10.2);
4. passes if any identifier aligned, fails if none did, and gives
   ``temperror`` when a DNS failure left some alignment unknown and none
   aligned (§5.3.5, §5.3.6);
5. picks the policy: ``p`` for the Author Domain's own record, otherwise
   ``sp``, or ``np`` when the Author Domain does not exist (NXDOMAIN,
   §3.2.13); existence is asked only when ``np`` would change the answer;
6. derives the disposition for a failing message: test mode (``t=y``, or
   RFC 7489's ``pct=0``, Appendix A.6) applies the policy one level milder;
   a legacy ``pct`` between 1 and 99 is sampled only when the caller passes
   a ``sample`` function (RFC 7489 §6.6.4), so evaluations stay
   deterministic and RFC 9989's default, the full policy, holds otherwise.

Messages without exactly one Author Domain. RFC 9989 §5.3.1 says DMARC
cannot proceed with zero domains or several, and allows a receiver to go on
with several; §11.5 recommends, when it does, to evaluate each and apply the
strictest failing policy, because an extra From address is the cheapest way
to dodge a policy. We do that for up to ``max_author_domains`` domains. No
domain at all, or more than the limit, gives ``permerror``: the
evaluation cannot be completed and would not complete later.

What the result word does not decide. RFC 9989 §5.4 and §7.4 leave the final
handling to the receiver (no rejection on ``p=reject`` alone, overrides for
known forwarders, 4xx on temperror); that is the enforcement layer's job,
which reads ``result``, ``disposition`` and ``reason`` from the value here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from mailwright.auth.dmarc._domains import normalize_domain, normalize_identifier
from mailwright.auth.dmarc.alignment import (
    DkimCheck,
    SpfCheck,
    is_aligned,
    needs_organizational_domains,
)
from mailwright.auth.dmarc.discovery import (
    DEFAULT_LABEL_LIMIT,
    Presence,
    RecordLookup,
    Walk,
    build_walk,
    look_up_records,
    walk_names,
)
from mailwright.auth.dmarc.from_header import AuthorDomains
from mailwright.auth.dmarc.record import Policy, Record, describe_problems
from mailwright.auth.dmarc.result import DmarcResult, Result
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Evaluation, Query

#: Author Domains evaluated at most for one message (RFC 9989 §11.5 asks for a limit).
DEFAULT_MAX_AUTHOR_DOMAINS = 5

#: Returns a number drawn uniformly from [0, 1): the legacy ``pct`` sampling draw.
Sampler = Callable[[], float]

#: How results rank when several Author Domains are combined: the first decides.
_RANK = {Result.FAIL: 0, Result.TEMPERROR: 1, Result.PERMERROR: 2, Result.NONE: 3, Result.PASS: 4}


@dataclass(slots=True)
class _Session:
    """What one evaluation has learnt so far: lookups by name, and every name asked."""

    spf: SpfCheck | None
    dkim: tuple[DkimCheck, ...]
    label_limit: int
    sample: Sampler | None
    known: dict[str, RecordLookup] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def look_up(
        self, names: Iterable[str], extra: tuple[Query, ...] = ()
    ) -> Evaluation[tuple[Answer, ...]]:
        """Ask, in one step, for the ``_dmarc`` records not yet known and for ``extra``."""
        return (yield from look_up_records(names, self.known, extra, self.asked))

    def result(self, result: Result, reason: str, **fields: object) -> DmarcResult:
        """A result carrying the inputs and the names asked so far."""
        return DmarcResult(
            result,
            reason,
            spf=self.spf,
            dkim=self.dkim,
            queried=tuple(self.asked),
            **fields,  # type: ignore[arg-type]  # DmarcResult's own keyword fields
        )


def evaluate(
    authors: AuthorDomains | str,
    *,
    spf: SpfCheck | tuple[str, str] | None = None,
    dkim: Iterable[DkimCheck | tuple[str, str]] = (),
    label_limit: int = DEFAULT_LABEL_LIMIT,
    max_author_domains: int = DEFAULT_MAX_AUTHOR_DOMAINS,
    sample: Sampler | None = None,
) -> Evaluation[DmarcResult]:
    """Evaluate DMARC for a message whose From field names ``authors``; never raises on input.

    ``authors`` is what :func:`~.from_header.author_domains` found, or one
    Author Domain as text. ``spf`` is the SPF result word and the MAIL FROM
    domain it was checked for; ``dkim`` the ``(d=, result word)`` of each
    signature. ``label_limit`` bounds each DNS Tree Walk (RFC 9989 §4.10);
    ``sample`` enables RFC 7489 ``pct`` sampling (see the module notes).
    """
    session = _Session(
        SpfCheck(*spf) if spf is not None else None,
        tuple(DkimCheck(*check) for check in dkim),
        max(1, label_limit),
        sample,
    )
    if isinstance(authors, str):
        authors = _single_author(authors)

    domains = authors.domains
    if not domains:
        problems = "; ".join(authors.problems) or "no address"
        return session.result(Result.PERMERROR, f"no Author Domain in From: {problems}")
    if len(domains) > max_author_domains:
        return session.result(
            Result.PERMERROR,
            f"{len(domains)} Author Domains in From; at most {max_author_domains} are "
            "evaluated (RFC 9989 §11.5)",
        )

    results: list[DmarcResult] = []
    for domain in domains:
        mark = len(session.asked)
        outcome = yield from _evaluate_domain(domain, session)
        queried = tuple(session.asked[mark:])
        results.append(
            outcome if outcome.queried == queried else replace(outcome, queried=queried)
        )
    if len(results) == 1:
        return results[0]
    return _combine(results, session)


def _combine(results: list[DmarcResult], session: _Session) -> DmarcResult:
    """The result that decides for several Author Domains: the strictest failure (§11.5).

    Failures first, the strictest disposition among them; then temperror,
    permerror and none; pass only when every domain passed.
    """

    def rank(result: DmarcResult) -> tuple[int, int, int]:
        policy = result.policy.strictness if result.policy is not None else -1
        return (_RANK[result.result], -result.disposition.strictness, -policy)

    decisive = min(results, key=rank)
    names = ", ".join(result.author_domain or "?" for result in results)
    return replace(
        decisive,
        reason=f"{len(results)} Author Domains ({names}); "
        f"{decisive.author_domain}: {decisive.reason}",
        queried=tuple(session.asked),
        authors=tuple(results),
    )


def _single_author(text: str) -> AuthorDomains:
    domain = normalize_domain(text)
    if domain is None:
        return AuthorDomains((), problems=(f"{text[:80]!r} is not a usable domain name",))
    return AuthorDomains((domain,))


def _evaluate_domain(author: str, session: _Session) -> Evaluation[DmarcResult]:
    """Steps 1 to 6 of the module notes for one Author Domain."""
    names = walk_names(author, session.label_limit)
    yield from session.look_up(names[:1])
    own = session.known[author]
    if own.presence is Presence.FAILED:
        return session.result(
            Result.TEMPERROR, f"DNS failure finding the policy: {own.detail}", author_domain=author
        )

    policy_walk: Walk | None = None
    chosen: RecordLookup | None = own
    if own.presence is not Presence.RECORD:
        yield from session.look_up(names[1:])
        policy_walk = build_walk(author, names, session.known)
        if not policy_walk.complete:
            failure = policy_walk.failure
            detail = failure.detail if failure else "DNS failure"
            return session.result(
                Result.TEMPERROR, f"DNS failure in the tree walk: {detail}", author_domain=author
            )
        chosen = policy_walk.policy_record()
    if chosen is None or chosen.record is None:
        return session.result(
            Result.NONE,
            f"no DMARC Policy Record at _dmarc.{author} or above it (RFC 9989 §4.10.1)",
            author_domain=author,
            organizational_domain=policy_walk.organizational_domain if policy_walk else None,
        )
    return (yield from _apply_record(author, chosen, own, session))


def _apply_record(
    author: str, chosen: RecordLookup, own: RecordLookup, session: _Session
) -> Evaluation[DmarcResult]:
    """Steps 2 to 6: the record found for ``author`` meets the authenticated identifiers."""
    record = chosen.record
    assert record is not None
    where = f"_dmarc.{chosen.domain}"
    found: dict[str, object] = {
        "author_domain": author,
        "policy_domain": chosen.domain,
        "record": record,
    }

    acts_as_none = record.has_invalid_policy
    if acts_as_none and not record.rua:
        problems = describe_problems(p for p in record.problems if p.tag in ("p", "sp", "np"))
        return session.result(
            Result.PERMERROR,
            f"{where} has an invalid policy and no valid rua, so DMARC does not apply "
            f"(RFC 9989 §4.10.1): {problems}",
            **found,
        )

    existence = _existence_query(author, chosen, own, acts_as_none)
    alignment, existence_answer = yield from _align(author, record, own, session, existence)
    aligned_dkim = alignment.aligned_dkim
    outcome = alignment.result
    found.update(
        organizational_domain=alignment.organizational_domain,
        spf_aligned=alignment.spf is True,
        dkim_aligned=bool(aligned_dkim),
        aligned_dkim_domains=aligned_dkim,
    )
    if outcome is Result.TEMPERROR:
        return session.result(
            Result.TEMPERROR,
            "no identifier aligned and DNS failures left alignment unknown: "
            + "; ".join(alignment.failures),
            **found,
        )

    exists = _author_exists(own, existence_answer)
    policy, tag = _requested_policy(author, chosen, record, acts_as_none, exists)
    if policy is None and outcome is Result.FAIL:
        return session.result(
            Result.TEMPERROR,
            f"could not tell whether {author} exists, which decides between sp and np of "
            f"{where} (RFC 9989 §4.10.1)",
            **found,
        )
    return _finish(outcome, record, where, policy, tag, found, session)


@dataclass(frozen=True, slots=True)
class _Alignment:
    """Which authenticated identifiers aligned; None where a DNS failure left it unknown."""

    spf: bool | None
    dkim: dict[str, bool | None]
    organizational_domain: str | None
    failures: tuple[str, ...]

    @property
    def aligned_dkim(self) -> tuple[str, ...]:
        return tuple(domain for domain, verdict in self.dkim.items() if verdict is True)

    @property
    def result(self) -> Result:
        """pass if anything aligned, else temperror if anything was unknown, else fail."""
        if self.spf is True or self.aligned_dkim:
            return Result.PASS
        if self.spf is None or None in self.dkim.values():
            return Result.TEMPERROR
        return Result.FAIL


def _align(
    author: str, record: Record, own: RecordLookup, session: _Session, extra: Query | None
) -> Evaluation[tuple[_Alignment, Answer | None]]:
    """Check each authenticated identifier for alignment (RFC 9989 §5.3.4, §4.10.2).

    Walks for every name whose Organizational Domain relaxed mode needs go in
    one step, together with ``extra`` (the existence query), whose answer is
    returned alongside.
    """
    spf_id = _spf_identifier(session.spf)
    dkim_ids = _dkim_identifiers(session.dkim)
    candidates = [(spf_id, record.spf_alignment)] + [(d, record.dkim_alignment) for d in dkim_ids]
    relaxed = [
        identifier
        for identifier, mode in candidates
        if identifier is not None and needs_organizational_domains(author, identifier, mode)
    ]

    # The Author Domain's walk is needed for relaxed alignment; without its own
    # record it was done already and still names the Organizational Domain.
    starts = list(dict.fromkeys([author, *relaxed]))
    if not relaxed and own.presence is Presence.RECORD:
        starts = []
    pending = [name for start in starts for name in _unread(start, session)]
    answers = yield from session.look_up(pending, (extra,) if extra is not None else ())
    walks = {
        start: build_walk(start, walk_names(start, session.label_limit), session.known)
        for start in starts
    }

    def organizational(domain: str) -> str | None:
        walk = walks.get(domain)
        return walk.organizational_domain if walk else None

    alignment = _Alignment(
        spf=is_aligned(author, spf_id, record.spf_alignment, organizational) if spf_id else False,
        dkim={
            domain: is_aligned(author, domain, record.dkim_alignment, organizational)
            for domain in dkim_ids
        },
        organizational_domain=_organizational_for_result(author, own, walks, spf_id, dkim_ids),
        failures=tuple(walk.failure.detail for walk in walks.values() if walk.failure),
    )
    return alignment, answers[0] if answers else None


def _finish(
    result: Result,
    record: Record,
    where: str,
    policy: Policy | None,
    tag: str | None,
    found: dict[str, object],
    session: _Session,
) -> DmarcResult:
    """Disposition and reason for a pass or a fail (step 6 of the module notes)."""
    disposition = Policy.NONE
    sampled: bool | None = None
    notes: list[str] = []

    if result is Result.FAIL and policy is not None:
        disposition = policy
        percent = record.sampling_percent
        if record.test_mode:
            disposition = policy.one_level_down()
            notes.append("test mode asks for one level milder (RFC 9989 §4.7 t=y)")
        elif percent is not None and session.sample is not None:
            sampled = session.sample() * 100 < percent
            if not sampled:
                disposition = policy.one_level_down()
            notes.append(
                f"legacy pct={percent} sampling {'applied' if sampled else 'spared'} "
                "this message (RFC 7489 §6.6.4)"
            )
    if record.has_invalid_policy:
        notes.append(f"{where} has an invalid policy tag and is read as p=none")

    if result is Result.PASS:
        reason = "aligned " + _aligned_text(found)
    else:
        reason = f"no aligned SPF or DKIM pass; {tag}={policy} from {where}"
    if notes:
        reason += "; " + "; ".join(notes)
    return session.result(
        result,
        reason,
        policy=policy,
        policy_tag=tag,
        disposition=disposition,
        test_mode=record.test_mode,
        sampled=sampled,
        **found,
    )


def _aligned_text(found: dict[str, object]) -> str:
    parts = []
    if found.get("spf_aligned"):
        parts.append("SPF")
    domains = found.get("aligned_dkim_domains")
    if isinstance(domains, tuple) and domains:
        parts.append("DKIM d=" + ",".join(str(domain) for domain in domains))
    return " and ".join(parts) + f" with {found['author_domain']}"


def _spf_identifier(check: SpfCheck | None) -> str | None:
    """The SPF-Authenticated Identifier: the MAIL FROM domain, when SPF passed (§4.4.2)."""
    if check is None or not check.passed:
        return None
    return normalize_identifier(check.domain)


def _dkim_identifiers(checks: Iterable[DkimCheck]) -> tuple[str, ...]:
    """The DKIM-Authenticated Identifiers: each passing ``d=``, once, in order (§4.4.1)."""
    names = (normalize_identifier(check.domain) for check in checks if check.passed)
    return tuple(dict.fromkeys(name for name in names if name is not None))


def _unread(start: str, session: _Session) -> list[str]:
    """The names of the walk from ``start`` that known answers do not yet settle."""
    names = walk_names(start, session.label_limit)
    for index, name in enumerate(names):
        lookup = session.known.get(name)
        if lookup is None:
            return list(names[index:])
        if lookup.presence is Presence.FAILED or lookup.psd_stops:
            return []
    return []


def _existence_query(
    author: str, chosen: RecordLookup, own: RecordLookup, acts_as_none: bool
) -> Query | None:
    """The query telling whether ``author`` exists, when ``np`` would change the policy.

    A CNAME query: its answer does not follow aliases, so a name that is only
    an alias to a missing target still counts as existing (RFC 9989 A.4).
    """
    record = chosen.record
    if record is None or acts_as_none or chosen.domain == author or own.name_exists:
        return None
    if record.np is None or record.np == record.subdomain_policy:
        return None
    return Query.of(author, "CNAME")


def _author_exists(own: RecordLookup, answer: Answer | None) -> bool | None:
    """True, False or None (unknown) for the existence of the Author Domain (§3.2.13)."""
    if own.name_exists:
        return True
    if answer is None or answer.is_transient:
        return None
    return answer.status is not LookupStatus.NXDOMAIN


def _requested_policy(
    author: str, chosen: RecordLookup, record: Record, acts_as_none: bool, exists: bool | None
) -> tuple[Policy | None, str | None]:
    """The policy requested for ``author`` and its tag; (None, None) when unknowable.

    RFC 9989 §4.10.1: ``p`` for the Author Domain's own record; for an
    inherited one ``np`` if the Author Domain does not exist, else ``sp``,
    each falling back to ``p``.
    """
    if acts_as_none:
        return Policy.NONE, "p"
    if chosen.domain == author:
        return record.policy, "p"

    fallback = (record.sp, "sp") if record.sp is not None else (record.policy, "p")
    if record.np is not None and exists is False:
        return record.np, "np"
    if record.np is not None and record.np != fallback[0] and exists is None:
        return None, None
    return fallback


def _organizational_for_result(
    author: str,
    own: RecordLookup,
    walks: dict[str, Walk],
    spf_id: str | None,
    dkim_ids: tuple[str, ...],
) -> str | None:
    """The Author Domain's Organizational Domain, when the evaluation determined it."""
    if author in walks:
        return walks[author].organizational_domain
    if own.psd_stops:
        return author
    identifiers = [name for name in (spf_id, *dkim_ids) if name is not None]
    if identifiers and all(name == author for name in identifiers):
        return author  # §4.10.2: a common domain with its own record is its own
    return None
