"""Where a report may go: the ``rua`` URIs checked, external ones verified (RFC 9990 §4).

Use::

    destinations = await run(check_destinations(policy_domain, rua), resolver)
    destinations = apply_size_limit(destinations, attachment_size)
    recipients = [d.mailbox for d in destinations if d.accepted]

:func:`check_destinations` is a sans-IO evaluator (see
:mod:`mailwright.dns.queries`): it yields the DNS questions it needs and
returns one :class:`Destination` per URI, each with a :class:`Verdict` and
the reason, which the reporter logs. It never logs itself.

The rules, in order, for each published ``rua`` URI:

1. Only ``mailto:`` is supported (RFC 9989 §4.7 asks report senders for
   that one and to ignore schemes they do not know); other schemes, and
   ``mailto:`` URIs that do not name one mailbox, are refused. At most
   :data:`MAX_DESTINATIONS` URIs are used (RFC 9990 §3.5: "up to the
   Receiver's limits"), the rest refused; a mailbox named twice is used once.
2. When the Organizational Domain of the mailbox's domain (the
   destination host) differs from the policy domain's, the destination is
   external, and the Report Consumer must have agreed to take reports about
   the policy domain: a TXT record starting ``v=DMARC1`` at
   ``<policy domain>._report._dmarc.<destination host>``. No such record,
   or a name too long for DNS, refuses the destination; a transient DNS
   failure leaves it :attr:`Verdict.UNKNOWN` (the reporter tries again later,
   as §4 step 5 allows).
3. An agreeing record may carry its own ``rua``, which replaces the
   published URI (§4 step 9), provided every URI in it stays on the same
   destination host; if any points elsewhere, neither the published URI nor
   the replacement is used.

Organizational Domains come from the DNS Tree Walk of RFC 9989 §4.10
(:mod:`mailwright.auth.dmarc.discovery`), for the policy domain and for each
destination host, all walks asked in one step and sharing their answers.
The Public Suffix List (:func:`mailwright.auth.dmarc.psl_organizational_domain`)
would need no queries, but RFC 9990 defines the Organizational Domain by
reference to RFC 9989, which is the walk; the queries are a few per
destination, once a period, and mostly cached. A walk that fails
transiently leaves the destination UNKNOWN.

:func:`apply_size_limit` applies the obsolete ``!size`` suffix: a
destination whose limit the attachment exceeds is refused. XXX(RFC 9989
§4.8): RFC 9989 keeps ``!size`` parseable but asks report senders to ignore
it; we honour it as RFC 7489 §6.2 did, because a Domain Owner who still
publishes a limit is likely to run a mailbox that bounces bigger messages.
The size compared is that of the attachment after compression and base64
encoding, what RFC 7489 §7.1 called the size "after any encoding required
by the particular transport mechanism".
"""

from __future__ import annotations

import enum
import urllib.parse
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from mailwright.auth.dmarc import DEFAULT_LABEL_LIMIT, Record, ReportUri, parse_record, walk_names
from mailwright.auth.dmarc.discovery import RecordLookup, Walk, build_walk, look_up_records
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Answers, Query, Step

#: The most ``rua`` URIs one report is sent to; a record may list more, which are refused.
MAX_DESTINATIONS = 10


class Verdict(enum.StrEnum):
    """Whether a report may go to a destination."""

    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNKNOWN = "unknown"  # a transient DNS failure: ask again later


@dataclass(frozen=True, slots=True)
class Destination:
    """One ``rua`` URI and what was decided about it.

    ``uri`` is the URI as published (with its ``!size`` suffix, if any);
    ``mailbox`` the address reports go to (None when the URI names none);
    ``size_limit`` the ``!size`` limit in octets. ``external`` is True when
    the Report Consumer's agreement had to be checked (§4). ``replaces`` is
    set on a destination that an agreeing record's ``rua`` put in place of
    the published URI it names.
    """

    uri: str
    mailbox: str | None
    verdict: Verdict
    reason: str
    size_limit: int | None = None
    external: bool = False
    replaces: str | None = None

    @property
    def accepted(self) -> bool:
        """True when the report may be sent to :attr:`mailbox`."""
        return self.verdict is Verdict.ACCEPTED


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A mailto: URI that passed the first checks: its mailbox and destination host."""

    uri: ReportUri
    text: str
    mailbox: str
    host: str


Evaluator = Generator[Step, Answers, tuple[Destination, ...]]


def check_destinations(
    policy_domain: str,
    rua: Sequence[str],
    *,
    limit: int = MAX_DESTINATIONS,
    label_limit: int = DEFAULT_LABEL_LIMIT,
) -> Evaluator:
    """Decide, for each published ``rua`` URI of ``policy_domain``, whether reports go there.

    ``rua`` holds one URI per string as the record published it
    (``mailto:a@b.example!10m``). Returns one :class:`Destination` per URI,
    in the published order, with replacements from agreeing records in
    place of the URI they replace. Never raises for bad input: an
    unusable URI or domain is a refused destination.
    """
    domain = _a_label(policy_domain)
    decided: dict[int, tuple[Destination, ...]] = {}
    candidates: dict[int, _Candidate] = {}
    seen: set[str] = set()
    for index, text in enumerate(rua):
        outcome = _candidate(text, seen, len(candidates) >= limit, limit)
        if isinstance(outcome, Destination):
            decided[index] = (outcome,)
        else:
            candidates[index] = outcome

    if domain is None:
        for index, candidate in candidates.items():
            decided[index] = (_refused(candidate, f"policy domain {policy_domain!r} is invalid"),)
        return _in_order(decided)

    internal = {i: c for i, c in candidates.items() if c.host == domain}
    for index, candidate in internal.items():
        decided[index] = (_accepted(candidate, "the policy domain's own mailbox"),)
    others = {i: c for i, c in candidates.items() if i not in internal}
    if not others:
        return _in_order(decided)

    walks = yield from _walk_all([domain, *(c.host for c in others.values())], label_limit)
    policy_org = walks[domain].organizational_domain
    external: dict[int, _Candidate] = {}
    for index, candidate in others.items():
        host_org = walks[candidate.host].organizational_domain
        if policy_org is None or host_org is None:
            failed = walks[domain].failure or walks[candidate.host].failure
            detail = failed.detail if failed is not None else "unknown"
            decided[index] = (_unknown(candidate, f"Organizational Domain unknown: {detail}"),)
        elif host_org == policy_org:
            decided[index] = (_accepted(candidate, f"same Organizational Domain {policy_org}"),)
        else:
            external[index] = candidate

    verified = yield from _verify(domain, external)
    decided.update(verified)
    return _in_order(decided)


def apply_size_limit(destinations: Iterable[Destination], size: int) -> tuple[Destination, ...]:
    """The destinations, with accepted ones whose ``!size`` limit ``size`` exceeds refused.

    ``size`` is the attachment's size in octets after compression and
    base64 encoding (see the module docstring).
    """
    result = []
    for destination in destinations:
        limit = destination.size_limit
        if destination.accepted and limit is not None and size > limit:
            destination = replace(
                destination,
                verdict=Verdict.REFUSED,
                reason=f"the report ({size} octets encoded) exceeds the !size limit of {limit}",
            )
        result.append(destination)
    return tuple(result)


# --- Step 1: the URIs themselves ---------------------------------------------------------


def _candidate(text: str, seen: set[str], full: bool, limit: int) -> _Candidate | Destination:
    uri = parse_report_uri(text)
    if uri is None:
        return Destination(text, None, Verdict.REFUSED, "not a DMARC reporting URI")
    if uri.scheme != "mailto":
        return Destination(
            text, None, Verdict.REFUSED, f"{uri.scheme}: URIs are not supported, only mailto:"
        )
    mailbox = uri.mailbox
    if mailbox is None:
        return Destination(text, None, Verdict.REFUSED, "the mailto: URI names no single mailbox")
    local, _, host = mailbox.rpartition("@")
    ascii_host = _a_label(host)
    if ascii_host is None:
        return Destination(
            text, mailbox, Verdict.REFUSED, f"{host!r} is not a valid domain", uri.size_limit
        )
    address = f"{local}@{ascii_host}"
    if address.lower() in seen:
        return Destination(
            text, address, Verdict.REFUSED, "the same mailbox is listed earlier", uri.size_limit
        )
    if full:
        return Destination(
            text, address, Verdict.REFUSED, f"more than {limit} destinations", uri.size_limit
        )
    seen.add(address.lower())
    return _Candidate(uri, text, address, ascii_host)


def parse_report_uri(text: str) -> ReportUri | None:
    """One published ``rua`` URI (``mailto:a@b.example!10m``), or None when it is not one.

    Parsed by the record parser as the value of a ``rua`` tag, so the rules
    (RFC 9989 §4.8 ``dmarc-uri``, the obsolete ``!size``) live in one place;
    a value holding several URIs is not one URI.
    """
    if ";" in text:
        return None
    record = parse_record(f"v=DMARC1; rua={text.strip()}")
    if not isinstance(record, Record) or len(record.rua) != 1:
        return None
    return record.rua[0]


# --- Step 2: Organizational Domains --------------------------------------------------------


def _walk_all(
    domains: Sequence[str], label_limit: int
) -> Generator[Step, Answers, dict[str, Walk]]:
    """The Tree Walk from each of ``domains``, every name asked in one step."""
    names = {domain: walk_names(domain, label_limit) for domain in dict.fromkeys(domains)}
    known: dict[str, RecordLookup] = {}
    yield from look_up_records((name for walk in names.values() for name in walk), known)
    return {domain: build_walk(domain, walk, known) for domain, walk in names.items()}


# --- Step 3: the Report Consumer's agreement -------------------------------------------------


def _verify(
    policy_domain: str, external: Mapping[int, _Candidate]
) -> Generator[Step, Answers, dict[int, tuple[Destination, ...]]]:
    """Ask for each external destination's agreement record, in one step; read the answers."""
    decided: dict[int, tuple[Destination, ...]] = {}
    asking: list[tuple[int, _Candidate, Query]] = []
    for index, candidate in external.items():
        name = f"{policy_domain}._report._dmarc.{candidate.host}"
        try:
            asking.append((index, candidate, Query.of(name, "TXT")))
        except ValueError:
            decided[index] = (_refused(candidate, f"{name} is too long for DNS", external=True),)
    if not asking:
        return decided

    answers = yield tuple(query for _, _, query in asking)
    for position, (index, candidate, query) in enumerate(asking):
        answer = answers[position] if position < len(answers) else None
        decided[index] = _read_agreement(candidate, query, answer)
    return decided


def _read_agreement(
    candidate: _Candidate, query: Query, answer: Answer | None
) -> tuple[Destination, ...]:
    """What the TXT answer at ``query`` says about ``candidate`` (RFC 9990 §4 steps 5 to 9)."""
    if answer is None or answer.is_transient:
        detail = answer.detail if answer is not None and answer.detail else "no answer"
        return (_unknown(candidate, f"{query.text}: {detail}", external=True),)
    if answer.status is not LookupStatus.ANSWER:
        return (_refused(candidate, f"no agreement record at {query.text}", external=True),)

    records = [r for r in (parse_record(text) for text in answer.records) if isinstance(r, Record)]
    if not records:
        return (_refused(candidate, f"no v=DMARC1 record at {query.text}", external=True),)

    overrides = next((record.rua for record in records if record.rua), ())
    if not overrides:
        return (_accepted(candidate, f"agreed at {query.text}", external=True),)
    return _replaced(candidate, query, overrides)


def _replaced(
    candidate: _Candidate, query: Query, overrides: Sequence[ReportUri]
) -> tuple[Destination, ...]:
    """The agreeing record's own ``rua`` in place of the published URI (§4 step 9)."""
    elsewhere = [uri.to_text() for uri in overrides if _host_of(uri) != candidate.host]
    if elsewhere:
        return (
            _refused(
                candidate,
                f"the agreement at {query.text} sends reports to another host"
                f" ({', '.join(elsewhere)}); neither is used",
                external=True,
            ),
        )

    replaced = []
    for uri in overrides:
        mailbox = uri.mailbox
        if uri.scheme != "mailto" or mailbox is None:
            verdict, reason = Verdict.REFUSED, "only mailto: URIs with one mailbox are supported"
        else:
            verdict, reason = Verdict.ACCEPTED, f"named by the agreement at {query.text}"
        replaced.append(
            Destination(
                uri.to_text(),
                mailbox,
                verdict,
                reason,
                uri.size_limit,
                external=True,
                replaces=candidate.text,
            )
        )
    return tuple(replaced)


# --- Helpers ------------------------------------------------------------------------------------


def _host_of(uri: ReportUri) -> str | None:
    """The destination host of any URI: a mailto: mailbox's domain, else the authority's host."""
    if uri.scheme == "mailto":
        mailbox = uri.mailbox
        return _a_label(mailbox.rpartition("@")[2]) if mailbox else None
    host = urllib.parse.urlsplit(uri.uri).hostname
    return _a_label(host) if host else None


def _a_label(domain: str) -> str | None:
    """``domain`` lower-cased, without a final dot, in A-labels; None when not a domain."""
    name = domain.strip().rstrip(".").lower()
    if not name or any(not label for label in name.split(".")):
        return None
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return None


def _accepted(candidate: _Candidate, reason: str, *, external: bool = False) -> Destination:
    return _decided(candidate, Verdict.ACCEPTED, reason, external)


def _refused(candidate: _Candidate, reason: str, *, external: bool = False) -> Destination:
    return _decided(candidate, Verdict.REFUSED, reason, external)


def _unknown(candidate: _Candidate, reason: str, *, external: bool = False) -> Destination:
    return _decided(candidate, Verdict.UNKNOWN, reason, external)


def _decided(candidate: _Candidate, verdict: Verdict, reason: str, external: bool) -> Destination:
    return Destination(
        candidate.text,
        candidate.mailbox,
        verdict,
        reason,
        candidate.uri.size_limit,
        external=external,
    )


def _in_order(decided: Mapping[int, tuple[Destination, ...]]) -> tuple[Destination, ...]:
    return tuple(destination for index in sorted(decided) for destination in decided[index])
