"""The DNS Tree Walk: DMARC Policy Records, the policy domain and Organizational Domains.

RFC 9989 replaced RFC 7489's public suffix list with a walk up the DNS
(§4.10). From a starting domain, ask for ``_dmarc.<name>`` TXT, then for
each parent in turn up to the top-level domain; a name whose answer holds
exactly one record starting ``v=DMARC1`` has a DMARC Policy Record, any
other answer (nothing, non-DMARC text, two DMARC records) counts as none
(step 2). A record with ``psd=y`` or ``psd=n`` ends the walk. To stop an
Author Domain of a hundred labels costing a hundred queries, the walk jumps
from a long name straight to its last seven labels: at most eight queries
(steps 3 to 7). :data:`DEFAULT_LABEL_LIMIT` is that eight.

The same walk answers two questions.

* **Which record applies** (§4.10.1): the Author Domain's own, else its
  Organizational Domain's, else its Public Suffix Domain's (``psd=y``).
* **What is the Organizational Domain** (§4.10.2), for relaxed alignment:
  among the records found, longest name first, a ``psd=n`` record's domain;
  else one label below a ``psd=y`` record (not the starting one); else the
  record with the fewest labels; with no record at all, the starting
  domain itself.

Alternatives weighed. RFC 7489 implementations (OpenDMARC, most milters)
look the Organizational Domain up in a copy of the Public Suffix List; that
needs no queries but disagrees with RFC 9989 wherever the list and the
DNS do, and every receiver's copy ages differently. Our PSL variant lives
in :mod:`.orgdomain` for reports and comparisons only. A walk could ask one
name per round trip and stop early; we ask every remaining name of a walk in
one step (the eight-query bound holds either way) and read the answers in
walk order, so a ``psd`` flag still ends the walk where the RFC says and a
failure past that point changes nothing. The price is a few queries a
sequential walk might have skipped; the gain is one round trip instead of up
to seven.

A transient failure (SERVFAIL, timeout) before the walk has its answer
leaves the answer unknown: the caller reports temperror (§5.3.6). This
module only reads answers; :mod:`.evaluate` decides what they mean for a
message.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Generator, Iterable, Mapping, MutableMapping
from dataclasses import dataclass

from mailwright.auth.dmarc._domains import label_count, last_labels
from mailwright.auth.dmarc.record import PsdFlag, Record, RecordError, parse_record
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Answers, Query, Step

#: The most queries one walk makes (RFC 9989 §4.10 step 4): longer names are cut.
DEFAULT_LABEL_LIMIT = 8


class Presence(enum.Enum):
    """What one ``_dmarc`` name holds, as far as DMARC is concerned."""

    RECORD = "record"
    NO_RECORD = "no record"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RecordLookup:
    """The outcome of asking ``_dmarc.<domain>`` for TXT records.

    ``name_exists`` says what the answer shows about ``_dmarc.<domain>``
    itself: True for records or NODATA (so ``domain`` exists too, RFC 8020),
    False for NXDOMAIN, None when unknown.
    """

    domain: str
    presence: Presence
    record: Record | None = None
    detail: str = ""
    name_exists: bool | None = None

    @property
    def psd_stops(self) -> bool:
        """True when this is a record with ``psd=y`` or ``psd=n``: the walk ends here."""
        return self.record is not None and self.record.psd_flag is not PsdFlag.UNKNOWN


@dataclass(frozen=True, slots=True)
class Walk:
    """One DNS Tree Walk from ``start``: the lookups in walk order, up to where it ended.

    ``complete`` is False when a lookup failed before the walk could end; the
    last lookup is then the failure, and neither the Organizational Domain nor
    an inherited policy can be known.
    """

    start: str
    lookups: tuple[RecordLookup, ...]
    complete: bool

    @property
    def records(self) -> tuple[RecordLookup, ...]:
        """The lookups that found a DMARC Policy Record, longest name first."""
        return tuple(lookup for lookup in self.lookups if lookup.presence is Presence.RECORD)

    @property
    def failure(self) -> RecordLookup | None:
        """The failed lookup that left the walk incomplete, if any."""
        return None if self.complete else self.lookups[-1]

    @property
    def organizational_domain(self) -> str | None:
        """The Organizational Domain of :attr:`start` (RFC 9989 §4.10.2), None if unknown."""
        if not self.complete:
            return None
        records = self.records
        if not records:
            return self.start
        last = records[-1]
        assert last.record is not None
        if last.record.psd_flag is PsdFlag.YES and last.domain != self.start:
            return last_labels(self.start, label_count(last.domain) + 1)
        return last.domain

    @property
    def public_suffix_record(self) -> RecordLookup | None:
        """The ``psd=y`` record the walk ended on, if any."""
        records = self.records
        if records and records[-1].record and records[-1].record.psd_flag is PsdFlag.YES:
            return records[-1]
        return None

    def policy_record(self) -> RecordLookup | None:
        """The record that applies to :attr:`start` (RFC 9989 §4.10.1), None if none does.

        The starting domain's own record first, then the Organizational
        Domain's, then the Public Suffix Domain's. An incomplete walk gives
        the starting domain's record if it has one, else None.
        """
        if self.lookups and self.lookups[0].presence is Presence.RECORD:
            return self.lookups[0]
        organizational = self.organizational_domain
        if organizational is None:
            return None
        for lookup in self.records:
            if lookup.domain == organizational:
                return lookup
        return self.public_suffix_record


def walk_names(domain: str, label_limit: int = DEFAULT_LABEL_LIMIT) -> tuple[str, ...]:
    """The names a walk from ``domain`` asks about, in order (RFC 9989 §4.10).

    ``domain`` first; then, for a name of more than ``label_limit`` labels,
    its last ``label_limit - 1`` labels; then each parent, up to the
    top-level domain. Never more than ``label_limit`` names. Walks from
    names of a plausible length are kept: a message asks for the same few
    several times (its Author Domain and each identifier to align).
    """
    if len(domain) > _KEPT_LENGTH:
        return _walk_names(domain, label_limit)
    return _walk_names_kept(domain, label_limit)


#: Domains longer than this get their walk computed each time (DNS names are at most 253).
_KEPT_LENGTH = 512


def _walk_names(domain: str, label_limit: int) -> tuple[str, ...]:
    """:func:`walk_names`, computed."""
    labels = domain.split(".")
    names = [domain]
    for count in range(min(len(labels) - 1, label_limit - 1), 0, -1):
        names.append(".".join(labels[-count:]))
    return tuple(names)


_walk_names_kept = functools.lru_cache(maxsize=4096)(_walk_names)


def build_walk(start: str, names: Iterable[str], lookups: Mapping[str, RecordLookup]) -> Walk:
    """The walk over ``names`` (from :func:`walk_names`) read from ``lookups``.

    Reading stops at the first record with a ``psd`` flag (the walk ends) or
    the first failure (the walk is incomplete). Every name read must be in
    ``lookups``.
    """
    taken: list[RecordLookup] = []
    for name in names:
        lookup = lookups[name]
        taken.append(lookup)
        if lookup.presence is Presence.FAILED:
            return Walk(start, tuple(taken), complete=False)
        if lookup.psd_stops:
            break
    return Walk(start, tuple(taken), complete=True)


def read_answer(domain: str, answer: Answer) -> RecordLookup:
    """What the TXT answer for ``_dmarc.<domain>`` says (RFC 9989 §4.10 steps 2 and 6)."""
    status = answer.status
    if answer.is_transient:
        detail = answer.detail or status.value
        return RecordLookup(domain, Presence.FAILED, detail=f"_dmarc.{domain}: {detail}")
    if status is LookupStatus.NXDOMAIN:
        return RecordLookup(domain, Presence.NO_RECORD, detail="no such name", name_exists=False)
    if status is not LookupStatus.ANSWER:
        return RecordLookup(domain, Presence.NO_RECORD, detail="no TXT record", name_exists=True)

    parsed = [parse_record(text) for text in answer.records]
    records = [record for record in parsed if isinstance(record, Record)]
    if len(records) == 1:
        return RecordLookup(domain, Presence.RECORD, records[0], name_exists=True)
    if records:
        detail = f"{len(records)} DMARC records at _dmarc.{domain}; all discarded"
    else:
        reasons = sorted({str(error) for error in parsed if isinstance(error, RecordError)})
        detail = "no DMARC record among the TXT records (" + "; ".join(reasons[:3]) + ")"
    return RecordLookup(domain, Presence.NO_RECORD, detail=detail, name_exists=True)


def look_up_records(
    names: Iterable[str],
    known: MutableMapping[str, RecordLookup],
    extra: tuple[Query, ...] = (),
    asked: list[str] | None = None,
) -> Generator[Step, Answers, tuple[Answer, ...]]:
    """Ask, in one step, for ``_dmarc.<name>`` of each name not yet in ``known``.

    Answers are read into ``known``. ``extra`` queries ride along in the same
    step; their answers are returned. The text of every query sent is added
    to ``asked``. A name too long to carry the ``_dmarc`` label cannot exist
    and is recorded as having no record, without a query.
    """
    queries: list[Query] = []
    looked_up: list[str] = []
    for name in dict.fromkeys(names):
        if name in known:
            continue
        try:
            queries.append(Query.of(f"_dmarc.{name}", "TXT"))
        except ValueError:
            known[name] = RecordLookup(name, Presence.NO_RECORD, detail="name too long for DNS")
            continue
        looked_up.append(name)

    if not queries and not extra:
        return ()
    if asked is not None:
        asked.extend(query.text for query in (*queries, *extra))
    answers = yield (*queries, *extra)

    for index, name in enumerate(looked_up):
        if index < len(answers):
            known[name] = read_answer(name, answers[index])
        else:
            known[name] = RecordLookup(name, Presence.FAILED, detail=f"_dmarc.{name}: no answer")
    return tuple(answers[len(queries) :])
