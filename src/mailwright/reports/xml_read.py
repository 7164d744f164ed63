"""Reading the aggregate reports others send us (RFC 9990 §2, RFC 7489 Appendix C), leniently.

Reports come from hundreds of receivers, and many of them do not follow
either schema: RFC 7489 reports carry no namespace, RFC 9990 ones carry
``urn:ietf:params:xml:ns:dmarc-2.0`` (as a default namespace or behind a
prefix), old drafts use ``http://dmarc.org/dmarc-xml/0.1`` on the root
alone, some write ``Pass`` or ``None``, leave a disposition empty, report
an address such as ``108r.166.27.220``, or send XML that is not well
formed at all (an unescaped ``<`` in a value). Validating against a schema
would refuse a good share of real reports, and expat-based readers refuse
the broken ones outright. A receiver of reports is better served by
reading what can be read and saying what could not:

* elements are found by their local name, in any namespace or none, and
  regardless of case;
* lxml's recovering parser rebuilds a tree from damaged XML; a value whose
  element the recovery had to split (``<header_from>bad<xml.net``) is
  damaged, so it is left empty rather than guessed;
* words (results, dispositions, policies) are lower-cased, domains too;
* a record that cannot be used (an invalid ``source_ip`` or ``count``) is
  skipped, and every skip or repair is written to
  :attr:`AggregateReport.problems` for the operator.

Only a document that is not a ``<feedback>`` report at all, or that lacks
``report_metadata`` or ``policy_published`` entirely, raises
:class:`~mailwright.errors.ReportError`. The parser resolves no entities,
fetches nothing from the network and keeps lxml's limits on text size and
depth (``huge_tree=False``), so a hostile document costs no more than its
size.
"""

from __future__ import annotations

import io
import ipaddress
from typing import Any

from lxml import etree

from mailwright.errors import ReportError
from mailwright.reports.model import (
    AggregateReport,
    DkimAuth,
    OverrideReason,
    PolicyPublished,
    ReportMetadata,
    Row,
    SpfAuth,
)

#: An lxml element; lxml ships no type information.
Element = Any

#: At most this many problems are listed; the rest are counted in one last line.
MAX_PROBLEMS = 50

#: Times beyond this (about the year 36812) are not Unix times a report can mean.
MAX_TIME = 1 << 40

#: Counts beyond this are refused: no receiver sees that many messages in a day.
MAX_COUNT = 1 << 48


def parse_aggregate(xml: bytes) -> AggregateReport:
    """The aggregate report in ``xml``, with what had to be skipped in ``problems``.

    Raises :class:`~mailwright.errors.ReportError`, naming what is missing,
    when ``xml`` holds no XML that can be recovered, when its root is not
    ``feedback``, or when it has no ``report_metadata`` or no
    ``policy_published``. Any other defect is repaired or skipped and noted.

    Records are read as the parser finishes each one and then dropped from
    the tree, so memory is bounded by the metadata and one record, not by
    the size of the report (a report of tens of megabytes arrives from the
    largest receivers).
    """
    notes = _Notes()
    root, rows, damage = _parse_records(xml, notes)

    feedback = _Node(root)
    metadata_node = feedback.first("report_metadata")
    policy_node = feedback.first("policy_published")
    missing = [
        f"<{name}>"
        for name, node in (("report_metadata", metadata_node), ("policy_published", policy_node))
        if node.element is None
    ]
    if missing:
        raise ReportError(
            f"not a complete aggregate report: <feedback> has no {' and no '.join(missing)}"
        )

    notes.first(f"the XML is not well formed ({damage}); what could be recovered was kept", damage)
    if len(feedback.all("policy_published")) > 1:
        notes.add("the report has several <policy_published>; the first was used")

    version = _value(feedback, "version", "", notes)
    metadata = _read_metadata(metadata_node, notes)
    policy = _read_policy(policy_node, notes)
    return AggregateReport(
        metadata=metadata,
        policy=policy,
        rows=tuple(rows),
        version=version,
        namespace=_namespace(root),
        problems=notes.finish(),
    )


# -- the tree ------------------------------------------------------------------------------


def _parse_records(xml: bytes, notes: _Notes) -> tuple[Element, list[Row], str]:
    """Parse ``xml`` incrementally: the root (records removed), the rows, the damage.

    The damage is the parser's first complaints ("" when none). Each
    ``record`` child of the root is read when it ends and then removed, with
    the records before it, so the tree never holds more than one.
    """
    if not xml.strip():
        raise ReportError("not a DMARC aggregate report: the document is empty")
    context = etree.iterparse(
        io.BytesIO(xml),
        events=("end",),
        recover=True,
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
    )
    rows: list[Row] = []
    number = 0
    try:
        for _event, element in context:
            parent = element.getparent()
            if parent is None or parent.getparent() is not None:
                continue  # the root itself, or deeper than a record
            if _local_name(element) != "record":
                continue
            if number == 0 and _local_name(parent) != "feedback":
                break  # not a report: said below, without reading the rest
            number += 1
            row = _read_record(_Node(element), number, notes)
            if row is not None:
                rows.append(row)
            element.clear()
            while (previous := element.getprevious()) is not None and (
                _local_name(previous) == "record"
            ):
                parent.remove(previous)
    except (etree.LxmlError, ValueError) as exc:  # an unknown encoding, for one
        if getattr(context, "root", None) is None:
            raise ReportError(f"not a DMARC aggregate report: not XML ({exc})") from exc

    root: Element | None = getattr(context, "root", None)
    errors = [f"line {entry.line}: {entry.message}" for entry in list(context.error_log)[:3]]
    if root is None:
        reason = errors[0] if errors else "no element"
        raise ReportError(f"not a DMARC aggregate report: not XML ({reason})")
    if _local_name(root) != "feedback":
        raise ReportError(
            f"not a DMARC aggregate report: the root element is <{_local_name(root)}>,"
            " not <feedback>"
        )
    return root, rows, "; ".join(errors)


def _local_name(element: Element) -> str:
    """The element's name without namespace or prefix, lower-cased ("" for comments)."""
    tag = element.tag
    if not isinstance(tag, str):  # comments, processing instructions, entities
        return ""
    # "{urn:...}name" with a declared namespace; "ns1:name" when recovery met an
    # undeclared prefix.
    return tag.rpartition("}")[2].rpartition(":")[2].lower()


def _namespace(root: Element) -> str | None:
    tag = str(root.tag)
    return tag[1:].partition("}")[0] if tag.startswith("{") else None


class _Node:
    """An element, or its absence, with its element children indexed by local name.

    Each element's children are named once, however many fields are read
    from it: a report of tens of thousands of records reads in seconds.
    """

    __slots__ = ("_index", "element")

    def __init__(self, element: Element | None) -> None:
        self.element = element
        self._index: dict[str, list[Element]] | None = None

    def all(self, name: str) -> list[Element]:
        """The child elements called ``name``, in document order."""
        if self._index is None:
            self._index = {}
            for child in () if self.element is None else self.element:
                self._index.setdefault(_local_name(child), []).append(child)
        return self._index.get(name, [])

    def first(self, name: str) -> _Node:
        """The first child element called ``name`` (an absent node when there is none)."""
        found = self.all(name)
        return _Node(found[0] if found else None)


class _Notes:
    """The problems of one parse, capped at :data:`MAX_PROBLEMS` lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.dropped = 0

    @property
    def count(self) -> int:
        """Problems noted so far (to tell "missing" from "damaged, already noted")."""
        return len(self.lines) + self.dropped

    def add(self, line: str) -> None:
        if len(self.lines) < MAX_PROBLEMS:
            self.lines.append(line)
        else:
            self.dropped += 1

    def first(self, line: str, when: object) -> None:
        """Put ``line`` before the others when ``when`` is true (the parser's own complaint)."""
        if not when:
            return
        self.lines.insert(0, line)
        if len(self.lines) > MAX_PROBLEMS:
            self.lines.pop()
            self.dropped += 1

    def finish(self) -> tuple[str, ...]:
        if self.dropped:
            return (*self.lines, f"… and {self.dropped} more problems")
        return tuple(self.lines)


def _shown(value: str) -> str:
    """A value quoted for a problem line, cut short when long."""
    return repr(value if len(value) <= 60 else value[:57] + "...")


# -- values --------------------------------------------------------------------------------


def _text(element: Element | None, where: str, notes: _Notes) -> str | None:
    """The stripped text of ``element``; None when absent, empty or damaged.

    An element with child elements where a value belongs is what recovery
    makes of markup inside a value; its text is not trustworthy.
    """
    if element is None:
        return None
    if any(isinstance(child.tag, str) for child in element):
        notes.add(f"{where} is damaged XML and was left empty")
        return None
    # Unresolved entities, comments and processing instructions are children
    # too; the text between them is in their tails.
    parts = [element.text or "", *(child.tail or "" for child in element)]
    text = "".join(str(part) for part in parts).strip()
    return text or None


def _value(parent: _Node, name: str, where: str, notes: _Notes) -> str | None:
    return _text(parent.first(name).element, f"{where}{name}", notes)


def _word(parent: _Node, name: str, where: str, notes: _Notes) -> str | None:
    """A keyword (a result, a disposition, a policy) in lower case."""
    text = _value(parent, name, where, notes)
    return text.lower() if text is not None else None


def _required_word(parent: _Node, name: str, where: str, notes: _Notes) -> str:
    """A keyword the schema requires: "" (and a problem) when it is missing or empty."""
    mark = notes.count
    word = _word(parent, name, where, notes)
    if word is None and notes.count == mark:
        notes.add(f"{where}{name} is missing or empty")
    return word or ""


def _domain(parent: _Node, name: str, where: str, notes: _Notes) -> str | None:
    text = _value(parent, name, where, notes)
    if text is None:
        return None
    return text.lower().rstrip(".") or None


def _integer(text: str | None, limit: int) -> int | None:
    """``text`` as a whole number in [0, limit]; ``1337270400.0`` is accepted, as sent."""
    if text is None:
        return None
    try:
        number = int(text)
    except ValueError:
        try:
            real = float(text)
        except ValueError:
            return None
        if not real.is_integer():  # also false for nan and infinities
            return None
        number = int(real)
    return number if 0 <= number <= limit else None


# -- the parts of a report -----------------------------------------------------------------


def _read_metadata(element: _Node, notes: _Notes) -> ReportMetadata:
    """``report_metadata``: a missing field is left empty (or 0) and noted."""
    where = "report_metadata/"

    def required(name: str) -> str:
        mark = notes.count
        text = _value(element, name, where, notes)
        if text is None and notes.count == mark:
            notes.add(f"{where}{name} is missing or empty")
        return text or ""

    org_name, email, report_id = required("org_name"), required("email"), required("report_id")

    date_range = element.first("date_range")
    if date_range.element is None:
        notes.add(f"{where}date_range is missing")
    times = []
    for name in ("begin", "end"):
        text = _value(date_range, name, f"{where}date_range/", notes)
        seconds = _integer(text, MAX_TIME)
        if seconds is None and date_range.element is not None:
            shown = "missing" if text is None else f"{_shown(text)}, not a Unix time"
            notes.add(f"{where}date_range/{name} is {shown}")
        times.append(seconds or 0)

    errors = tuple(
        text
        for error in element.all("error")
        if (text := _text(error, f"{where}error", notes)) is not None
    )
    return ReportMetadata(
        org_name=org_name,
        email=email,
        report_id=report_id,
        begin=times[0],
        end=times[1],
        extra_contact_info=_value(element, "extra_contact_info", where, notes),
        generator=_value(element, "generator", where, notes),
        errors=errors,
    )


def _read_policy(element: _Node, notes: _Notes) -> PolicyPublished:
    """``policy_published``: words lower-cased; a missing domain or p is left empty."""
    where = "policy_published/"
    mark = notes.count
    domain = _domain(element, "domain", where, notes)
    if domain is None and notes.count == mark:
        notes.add(f"{where}domain is missing or empty")

    pct_text = _value(element, "pct", where, notes)
    pct = _integer(pct_text, 100)
    if pct_text is not None and pct is None:
        notes.add(f"{where}pct {_shown(pct_text)} is not a percentage; it was left out")

    def word(name: str) -> str | None:
        return _word(element, name, where, notes)

    return PolicyPublished(
        domain=domain or "",
        p=_required_word(element, "p", where, notes),
        sp=word("sp"),
        np=word("np"),
        adkim=word("adkim"),
        aspf=word("aspf"),
        testing=word("testing"),
        discovery_method=word("discovery_method"),
        fo=word("fo"),
        pct=pct,
    )


def _read_record(record: _Node, number: int, notes: _Notes) -> Row | None:
    """One ``record`` as a :class:`Row`, or None (and a problem) when it cannot be used."""
    where = f"record {number}: "
    row = record.first("row")
    if row.element is None:
        notes.add(f"{where}no <row>; the record was skipped")
        return None

    count_text = _value(row, "count", where, notes)
    count = _integer(count_text, MAX_COUNT)
    if count is None:
        shown = "missing" if count_text is None else f"{_shown(count_text)}, not a count"
        notes.add(f"{where}count is {shown}; the record was skipped")
        return None

    ip_text = _value(row, "source_ip", where, notes)
    try:
        source_ip = str(ipaddress.ip_address(ip_text or ""))
    except ValueError:
        shown = "missing" if ip_text is None else f"{_shown(ip_text)}, not an IP address"
        notes.add(f"{where}source_ip is {shown}; the record ({count} messages) was skipped")
        return None

    evaluated = row.first("policy_evaluated")
    if evaluated.element is None:
        notes.add(f"{where}policy_evaluated is missing")
    evaluated_where = f"{where}policy_evaluated/"

    # Old drafts call identifiers "identities"; some put them (or the
    # auth_results) inside the row.
    identifiers = _first_present(
        record.first("identifiers"), record.first("identities"), row.first("identifiers")
    )
    mark = notes.count
    header_from = _domain(identifiers, "header_from", f"{where}identifiers/", notes)
    if header_from is None and notes.count == mark:
        notes.add(f"{where}identifiers/header_from is missing or empty")
    auth = _first_present(record.first("auth_results"), row.first("auth_results"))

    return Row(
        source_ip=source_ip,
        count=count,
        disposition=_required_word(evaluated, "disposition", evaluated_where, notes),
        dkim=_required_word(evaluated, "dkim", evaluated_where, notes),
        spf=_required_word(evaluated, "spf", evaluated_where, notes),
        header_from=header_from or "",
        envelope_from=_domain(identifiers, "envelope_from", where, notes),
        envelope_to=_domain(identifiers, "envelope_to", where, notes),
        reasons=tuple(_read_reasons(evaluated, evaluated_where, notes)),
        dkim_results=tuple(_read_dkim(auth, where, notes)),
        spf_results=tuple(_read_spf(auth, where, notes)),
    )


def _first_present(*nodes: _Node) -> _Node:
    return next((node for node in nodes if node.element is not None), nodes[-1])


def _read_reasons(evaluated: _Node, where: str, notes: _Notes) -> list[OverrideReason]:
    """``reason`` elements; an empty one (``<type></type>``, as some send) is dropped."""
    reasons = []
    for element in evaluated.all("reason"):
        reason = _Node(element)
        kind = _word(reason, "type", f"{where}reason/", notes)
        comment = _value(reason, "comment", f"{where}reason/", notes)
        if kind is not None or comment is not None:
            reasons.append(OverrideReason(type=kind or "", comment=comment))
    return reasons


def _auth_domain(node: _Node, at: str, method: str, notes: _Notes) -> str | None:
    """The domain of one DKIM or SPF result; None (and a problem) skips that result."""
    mark = notes.count
    domain = _domain(node, "domain", at, notes)
    if domain is None:
        missing = "is missing or empty; " if notes.count == mark else "was unusable, so "
        notes.add(f"{at}domain {missing}that {method} result was skipped")
    return domain


def _read_dkim(auth: _Node, where: str, notes: _Notes) -> list[DkimAuth]:
    results = []
    for number, element in enumerate(auth.all("dkim"), start=1):
        node, at = _Node(element), f"{where}auth_results/dkim[{number}]/"
        domain = _auth_domain(node, at, "DKIM", notes)
        if domain is not None:
            results.append(
                DkimAuth(
                    domain=domain,
                    result=_required_word(node, "result", at, notes),
                    selector=_value(node, "selector", at, notes),
                    human_result=_value(node, "human_result", at, notes),
                )
            )
    return results


def _read_spf(auth: _Node, where: str, notes: _Notes) -> list[SpfAuth]:
    results = []
    for number, element in enumerate(auth.all("spf"), start=1):
        node, at = _Node(element), f"{where}auth_results/spf[{number}]/"
        domain = _auth_domain(node, at, "SPF", notes)
        if domain is not None:
            results.append(
                SpfAuth(
                    domain=domain,
                    result=_required_word(node, "result", at, notes),
                    scope=_word(node, "scope", at, notes),
                    human_result=_value(node, "human_result", at, notes),
                )
            )
    return results
