"""check_host() (RFC 7208 §4 to §6) as a generator of DNS steps.

Theory of operation. check_host() fetches the domain's TXT records, keeps
the one SPF record (§4.4, §4.5), parses it whole (§4.6) and evaluates its
directives from left to right: the first mechanism that matches decides,
with its qualifier, the result (§4.6.2). ``include`` evaluates another
domain and matches when that evaluation passes (§5.2); when nothing matches,
``redirect=`` hands the whole decision to another domain (§6.1), and
without it the result is neutral (§4.7). A ``fail`` gets an explanation:
the text the deciding record's exp= names, expanded, or the receiver's
default (§6.2). The explanation is fetched once, after the result is known,
so its lookup counts against no limit.

The evaluator performs no I/O: it yields the DNS questions it needs (see
:mod:`mailwright.dns.queries`) and is driven by ``run`` against the shared
resolver or by ``run_sync`` against a fixture zone. Questions that do not
depend on each other, the addresses of every exchanger of an ``mx`` term or
of every name a PTR lookup returned, are asked in one step.

Three ways out end the whole evaluation at once, however deep in includes
and redirects they happen: permerror (a syntax error, two records, a
limit of :class:`~mailwright.auth.spf.limits.Limits` exceeded, an include
or redirect target without a record) and temperror (SERVFAIL or a timeout
where §5 says the mechanism cannot be decided). They travel as the private
exception :class:`_Stop`, caught in :func:`check_host`, which is what makes
``yield from`` recursion through includes read like the RFC's prose.

Includes and redirects that loop are stopped by the lookup limit: each of
them spends one of the ten DNS-querying terms (§4.6.4), so no evaluation
recurses more than ten deep or asks more than a bounded number of questions.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Generator, Iterable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import dns.name
import dns.reversename

from mailwright.auth.spf.identity import (
    Address,
    checkable_domain,
    client_address,
    split_sender,
)
from mailwright.auth.spf.limits import DEFAULT_LIMITS, Limits
from mailwright.auth.spf.macros import (
    MacroError,
    MacroString,
    MacroValues,
    expand,
    expand_domain,
    parse_explanation,
)
from mailwright.auth.spf.record import (
    A,
    All,
    Directive,
    Exists,
    Include,
    Ip4,
    Ip6,
    Mx,
    Ptr,
    RecordError,
    parse_record,
    spf_records,
)
from mailwright.auth.spf.result import Result, Scope, SpfResult
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Answers, Evaluation, Query, Step

T = TypeVar("T")
_Gen = Generator[Step, Answers, T]

#: The explanation of a ``fail`` when the domain gives none (§6.2 leaves it to us).
DEFAULT_EXPLANATION = "SPF: %{c} is not allowed to send mail for %{o}"


class _Stop(Exception):
    """Ends the evaluation with permerror or temperror, from any depth."""

    def __init__(self, result: Result, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Verdict:
    """How the evaluation of one domain ended, and the exp= of its deciding record."""

    result: Result
    reason: str
    domain: str
    explanation: MacroString | None = None
    mechanism: str = ""


@dataclass(slots=True)
class _Session:
    """What one check_host() evaluation shares across includes and redirects."""

    ip: Address
    values: MacroValues
    limits: Limits
    lookups: int = 0
    voids: int = 0
    ptr_answer: Answer | None = None
    validated: tuple[dns.name.Name, ...] | None = None

    @property
    def address_type(self) -> str:
        """The address record type that matches the client (§5.3)."""
        return "A" if self.ip.version == 4 else "AAAA"

    def spend_lookup(self, domain: str, term: str) -> None:
        """Count one DNS-querying term; permerror past the limit (§4.6.4 ¶1)."""
        self.lookups += 1
        if self.lookups > self.limits.lookups:
            raise _Stop(
                Result.PERMERROR,
                f"{domain}: {_show(term)} is DNS-querying term {self.lookups}; at most "
                f"{self.limits.lookups} are allowed (RFC 7208 §4.6.4)",
            )

    def settle(self, answer: Answer, domain: str, term: str) -> None:
        """Temperror for a failed lookup (§5); count one that found nothing (§4.6.4 ¶7)."""
        if answer.is_transient:
            raise _Stop(
                Result.TEMPERROR,
                f"{domain}: {_show(term)}: the {answer.query.rdtype} lookup for "
                f"{answer.query.text} failed ({_detail(answer)})",
            )
        if not answer.records:
            self.voids += 1
            if self.voids > self.limits.void_lookups:
                raise _Stop(
                    Result.PERMERROR,
                    f"{domain}: {_show(term)} is void lookup {self.voids}; at most "
                    f"{self.limits.void_lookups} are allowed (RFC 7208 §4.6.4)",
                )


def check_host(
    ip: str | Address,
    domain: str,
    sender: str,
    *,
    helo: str = "",
    identity: Scope = "mailfrom",
    receiver: str = "unknown",
    timestamp: int = 0,
    default_explanation: str = DEFAULT_EXPLANATION,
    limits: Limits = DEFAULT_LIMITS,
) -> Evaluation[SpfResult]:
    """Evaluate SPF for ``ip`` sending as ``sender`` on behalf of ``domain`` (RFC 7208 §4).

    ``helo`` fills ``%{h}``, ``receiver`` ``%{r}`` and ``timestamp`` (seconds
    since the epoch) ``%{t}``; ``identity`` only labels the result.
    ``default_explanation`` is the macro-string explained on a ``fail`` whose
    record has no usable exp=. Never raises: bad records, hostile DNS data
    and a malformed ``ip``, ``domain`` or ``sender`` all end in one of the
    seven results with a reason (an unusable ``ip`` or ``domain`` gives
    ``none``, as there is nothing to check).
    """
    address = client_address(ip)
    name = checkable_domain(domain)
    local_part, sender_domain = split_sender(sender, name or domain)
    full_sender = f"{local_part}@{sender_domain}"

    def finish(
        result: Result,
        reason: str,
        explanation: str = "",
        session: _Session | None = None,
        mechanism: str = "",
    ) -> SpfResult:
        return SpfResult(
            result,
            name or domain,
            full_sender,
            identity,
            str(address) if address is not None else str(ip),
            reason,
            explanation,
            session.lookups if session is not None else 0,
            session.voids if session is not None else 0,
            mechanism,
        )

    if address is None:
        return finish(Result.NONE, f"{_show(str(ip))} is not an IP address")
    if name is None:
        return finish(
            Result.NONE, f"{_show(domain)} is not a domain that can be checked (RFC 7208 §4.3)"
        )

    values = MacroValues(
        sender=full_sender,
        local_part=local_part,
        sender_domain=sender_domain,
        domain=name,
        ip=address,
        helo=helo,
        receiver=receiver,
        timestamp=timestamp,
    )
    session = _Session(address, values, limits)
    try:
        verdict = yield from _check_domain(session, name)
        explanation = ""
        if verdict.result is Result.FAIL:
            explanation = yield from _explain(session, verdict, default_explanation)
    except _Stop as stop:
        return finish(stop.result, stop.reason, session=session)
    return finish(verdict.result, verdict.reason, explanation, session, verdict.mechanism)


def _check_domain(session: _Session, name: str) -> _Gen[_Verdict]:
    """check_host() for one domain: fetch, select, parse, evaluate (§4.4 to §4.7)."""
    query = _query(name, "TXT")
    if query is None:
        return _Verdict(Result.NONE, f"{_show(name)} is not a valid domain name", name)

    [answer] = yield (query,)
    if answer.is_transient:
        raise _Stop(Result.TEMPERROR, f"the TXT lookup for {name} failed ({_detail(answer)})")
    texts = [text for text in answer.records if isinstance(text, bytes)]
    records = spf_records(texts) if answer.found else []
    if not records:
        exists = answer.status is not LookupStatus.NXDOMAIN
        return _Verdict(
            Result.NONE, f"{name} {'has no SPF record' if exists else 'does not exist'}", name
        )
    if len(records) > 1:
        raise _Stop(
            Result.PERMERROR,
            f"{name} has {len(records)} SPF records; only one is allowed (RFC 7208 §4.5)",
        )

    record = parse_record(records[0])
    if isinstance(record, RecordError):
        raise _Stop(Result.PERMERROR, f"the SPF record of {name} is invalid: {record.reason}")

    values = session.values.for_domain(name)
    for directive in record.directives:
        if directive.queries_dns:
            session.spend_lookup(name, directive.text)
        if (yield from _matches(session, directive, values)):
            return _Verdict(
                directive.qualifier,
                f"{name}: {_show(directive.text)} matched",
                name,
                record.explanation,
                directive.text,
            )

    if record.redirect is None:
        return _Verdict(Result.NEUTRAL, f"{name}: no mechanism matched", name, mechanism="default")

    term = f"redirect={record.redirect}"
    session.spend_lookup(name, term)
    target = yield from _target(session, record.redirect, values)
    if target is None:
        raise _Stop(Result.PERMERROR, f"{name}: {_show(term)} names no valid domain (§6.1)")
    verdict = yield from _check_domain(session, target)
    if verdict.result is Result.NONE:
        raise _Stop(Result.PERMERROR, f"{name}: {_show(term)}: {verdict.reason} (RFC 7208 §6.1)")
    return verdict


def _matches(session: _Session, directive: Directive, values: MacroValues) -> _Gen[bool]:
    """Whether one mechanism matches the client (§5)."""
    term = directive.text
    match directive.mechanism:
        case All():
            return True
        case Ip4(network=network) | Ip6(network=network):
            return session.ip in network
        case Include(target=spec):
            return (yield from _match_include(session, spec, values, term))
        case A(target=spec, ip4_prefix=ip4_prefix, ip6_prefix=ip6_prefix):
            name = values.domain if spec is None else (yield from _target(session, spec, values))
            if name is None:
                return False
            [answer] = yield (Query.of(name, session.address_type),)
            session.settle(answer, values.domain, term)
            return _any_within(answer.records, session.ip, ip4_prefix, ip6_prefix)
        case Mx(target=spec, ip4_prefix=ip4_prefix, ip6_prefix=ip6_prefix):
            name = values.domain if spec is None else (yield from _target(session, spec, values))
            if name is None:
                return False
            return (yield from _match_mx(session, name, (ip4_prefix, ip6_prefix), values, term))
        case Ptr(target=spec):
            name = values.domain if spec is None else (yield from _target(session, spec, values))
            return (yield from _match_ptr(session, name, values, term))
        case Exists(target=spec):
            name = yield from _target(session, spec, values)
            if name is None:
                return False
            [answer] = yield (Query.of(name, "A"),)
            session.settle(answer, values.domain, term)
            return bool(answer.records)


def _match_include(
    session: _Session, spec: MacroString, values: MacroValues, term: str
) -> _Gen[bool]:
    """``include``: pass matches; fail, softfail and neutral do not (§5.2).

    Temperror and permerror end the whole evaluation (they are raised from
    the recursive check); a target without an SPF record is a permerror.
    """
    target = yield from _target(session, spec, values)
    if target is None:
        raise _Stop(Result.PERMERROR, f"{values.domain}: {_show(term)} names no valid domain")

    verdict = yield from _check_domain(session, target)
    if verdict.result is Result.NONE:
        raise _Stop(
            Result.PERMERROR, f"{values.domain}: {_show(term)}: {verdict.reason} (RFC 7208 §5.2)"
        )
    return verdict.result is Result.PASS


def _match_mx(
    session: _Session,
    name: str,
    prefixes: tuple[int, int],
    values: MacroValues,
    term: str,
) -> _Gen[bool]:
    """``mx``: the addresses of the target's exchangers (§5.4), at most ten of them.

    No MX record means no match; the target itself is not tried (§5.4). A
    null MX (RFC 7505) names no host. An address that matches wins over a
    lookup that failed for another exchanger; otherwise a failure is temperror.
    """
    [answer] = yield (Query.of(name, "MX"),)
    session.settle(answer, values.domain, term)
    if len(answer.records) > session.limits.mx_names:
        raise _Stop(
            Result.PERMERROR,
            f"{values.domain}: {_show(term)}: {name} has {len(answer.records)} MX records; "
            f"at most {session.limits.mx_names} are allowed (RFC 7208 §4.6.4)",
        )

    hosts = dict.fromkeys(
        exchange
        for _, exchange in answer.records
        if isinstance(exchange, dns.name.Name) and exchange != dns.name.root
    )
    if not hosts:
        return False
    answers = yield tuple(Query.of(host, session.address_type) for host in hosts)

    if any(_any_within(found.records, session.ip, *prefixes) for found in answers):
        return True
    for failed in answers:
        if failed.is_transient:
            raise _Stop(
                Result.TEMPERROR,
                f"{values.domain}: {_show(term)}: the {failed.query.rdtype} lookup for "
                f"{failed.query.text} failed ({_detail(failed)})",
            )
    return False


def _match_ptr(
    session: _Session, target: str | None, values: MacroValues, term: str
) -> _Gen[bool]:
    """``ptr``: a validated name of the client at or under the target (§5.5).

    A failed PTR lookup means no match rather than temperror (§5.5); a PTR
    lookup that found nothing counts as a void lookup.
    """
    validated = yield from _validated_names(session)
    ptr_answer = session.ptr_answer
    if ptr_answer is not None and not ptr_answer.is_transient:
        session.settle(ptr_answer, values.domain, term)

    wanted = _name(target) if target is not None else None
    if wanted is None:
        return False
    return any(name.is_subdomain(wanted) for name in validated)


def _validated_names(session: _Session) -> _Gen[tuple[dns.name.Name, ...]]:
    """The client's validated host names (§5.5), looked up once per evaluation.

    The PTR names (the first ten, §4.6.4 ¶3) are each looked up for the
    client's address type; a name is validated when the client is among its
    addresses. A lookup that fails skips that name; a failed PTR lookup
    leaves no names.
    """
    if session.validated is not None:
        return session.validated

    if session.ptr_answer is None:
        reverse = dns.reversename.from_address(str(session.ip))
        [session.ptr_answer] = yield (Query.of(reverse, "PTR"),)
    answer = session.ptr_answer
    names = [name for name in answer.records if isinstance(name, dns.name.Name)]
    names = names[: session.limits.ptr_names] if answer.found else []

    validated: tuple[dns.name.Name, ...] = ()
    if names:
        answers = yield tuple(Query.of(name, session.address_type) for name in names)
        validated = tuple(
            name
            for name, found in zip(names, answers, strict=True)
            if found.found and session.ip in _addresses(found.records)
        )
    session.validated = validated
    return validated


def _target(session: _Session, spec: MacroString, values: MacroValues) -> _Gen[str | None]:
    """Expand a domain-spec into a name that can be queried, or None (§7.3, §4.8).

    A name DNS cannot carry (an empty label, a label over 63 octets) is taken
    as one that does not exist.
    """
    if spec.uses_ptr:
        values = yield from _with_validated_domain(session, values)
    name = expand_domain(spec, values)
    return name if _query(name, "A") is not None else None


def _with_validated_domain(session: _Session, values: MacroValues) -> _Gen[MacroValues]:
    """``values`` with ``%{p}`` set (§7.3): the domain itself, a name under it, or any."""
    validated = yield from _validated_names(session)
    if not validated:
        return values

    chosen = validated[0]
    wanted = _name(values.domain)
    if wanted is not None:
        under = [name for name in validated if name.is_subdomain(wanted)]
        exact = [name for name in under if name == wanted]
        chosen = (exact or under or [chosen])[0]
    return replace(values, validated_domain=chosen.to_text(omit_final_dot=True))


def _explain(session: _Session, verdict: _Verdict, default: str) -> _Gen[str]:
    """The explanation of a ``fail`` (§6.2): the deciding record's exp=, or ``default``."""
    values = session.values.for_domain(verdict.domain)
    text = None
    if verdict.explanation is not None:
        text = yield from _fetch_explanation(session, verdict.explanation, values)
    if text is None:
        parsed = parse_explanation(default)
        if isinstance(parsed, MacroError):
            text = default
        else:
            text = yield from _expand_text(session, parsed, values)
    return _printable(text)[: session.limits.explanation_length]


def _fetch_explanation(
    session: _Session, spec: MacroString, values: MacroValues
) -> _Gen[str | None]:
    """The expanded exp= text, or None to fall back to the default (§6.2).

    None when the name cannot be built, the lookup fails or finds nothing,
    more than one TXT record comes back, or the text is not ASCII or not a
    valid explain-string.
    """
    name = yield from _target(session, spec, values)
    if name is None:
        return None

    [answer] = yield (Query.of(name, "TXT"),)
    if not answer.found or len(answer.records) != 1:
        return None
    raw = answer.records[0]
    if not isinstance(raw, bytes) or not all(0x20 <= octet <= 0x7E for octet in raw):
        return None
    parsed = parse_explanation(raw.decode("ascii"))
    if isinstance(parsed, MacroError):
        return None
    return (yield from _expand_text(session, parsed, values))


def _expand_text(session: _Session, text: MacroString, values: MacroValues) -> _Gen[str]:
    if text.uses_ptr:
        values = yield from _with_validated_domain(session, values)
    return expand(text, values, limit=session.limits.explanation_length)


def _any_within(records: Iterable[Any], ip: Address, ip4_prefix: int, ip6_prefix: int) -> bool:
    """Whether ``ip`` is in the network of any address record, at the given lengths."""
    prefix = ip4_prefix if ip.version == 4 else ip6_prefix
    for address in _addresses(records):
        if address.version == ip.version:
            network = ipaddress.ip_network((address, prefix), strict=False)
            if ip in network:
                return True
    return False


def _addresses(records: Iterable[Any]) -> list[Address]:
    """The addresses among A or AAAA record texts; anything else is skipped."""
    addresses: list[Address] = []
    for record in records:
        try:
            addresses.append(ipaddress.ip_address(record))
        except ValueError:
            continue
    return addresses


def _query(name: str, rdtype: str) -> Query | None:
    """A query for ``name``, or None when DNS cannot carry it (an empty or long label)."""
    if not name or name.startswith(".") or ".." in name:
        return None
    try:
        return Query.of(name, rdtype)
    except ValueError:
        return None


def _name(text: str) -> dns.name.Name | None:
    """``text`` (one final dot allowed) as a DNS name, or None."""
    query = _query(text[:-1] if text.endswith(".") else text, "A")
    return query.name if query is not None else None


def _printable(text: str) -> str:
    """``text`` with anything but visible ASCII and space replaced by '?' (§6.2)."""
    return "".join(char if " " <= char <= "~" else "?" for char in text)


def _detail(answer: Answer) -> str:
    return answer.detail or answer.status.value


def _show(text: str, limit: int = 60) -> str:
    """``text`` for a reason, shortened when long."""
    return text if len(text) <= limit else text[:limit] + "..."
