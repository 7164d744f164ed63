"""Aggregate reports written as RFC 9990 XML: :func:`to_xml`.

The document is built as an :mod:`xml.etree.ElementTree` tree and
serialised by it, so every value is escaped by the library (``<``, ``&``,
quotes); nothing is pasted into markup by hand. Elements come in the order
the schema and RFC 9990 §3.1.1 lists them, in the namespace
``urn:ietf:params:xml:ns:dmarc-2.0``, after a UTF-8 XML declaration, with
``<version>1.0</version>`` first.

What the model holds and the schema does not allow is mapped, never dropped
silently:

* ``policy_published``: RFC 9990 §3.1.1 asks for the discovered *or default*
  value of each tag, so ``sp`` defaults to ``p``, ``np`` to ``sp``,
  ``adkim`` and ``aspf`` to ``r`` and ``testing`` to ``n`` (``y`` for a
  legacy ``pct=0``, which asked for test mode, RFC 9989 Appendix A.6);
  ``pct`` itself is not part of RFC 9990 and is left out;
* an override reason whose type the schema does not know (RFC 7489's
  ``forwarded`` and ``sampled_out``) becomes ``other``, its comment
  prefixed with the original type;
* the schema allows one ``error`` and one ``spf`` result: several errors
  are joined with ``"; "``, and only the first SPF result is written;
  an SPF scope other than ``mfrom`` is left out (RFC 9990 §3.1.1 knows no
  other);
* a DKIM result without a selector gets an empty ``selector`` element,
  which the schema requires;
* characters XML 1.0 cannot carry (NUL and the other C0 controls but tab,
  LF and CR; lone surrogates) become U+FFFD.

Words the schema enumerates (dispositions, results, alignment modes) are
checked: a value outside the schema is a bug upstream, and
:class:`ReportFormatError` names it rather than writing an invalid report.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from mailwright.reports.model import (
    NAMESPACE,
    OVERRIDE_TYPES,
    AggregateReport,
    DkimAuth,
    OverrideReason,
    PolicyPublished,
    ReportMetadata,
    Row,
    SpfAuth,
)

_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'

_POLICIES = frozenset({"none", "quarantine", "reject"})
_DISPOSITIONS = frozenset({"none", "pass", "quarantine", "reject"})
_ALIGNED = frozenset({"pass", "fail"})
_ALIGNMENT_MODES = frozenset({"r", "s"})
_FLAGS = frozenset({"y", "n"})
_DISCOVERY = frozenset({"psl", "treewalk"})
_DKIM_RESULTS = frozenset({"none", "pass", "fail", "policy", "neutral", "temperror", "permerror"})
_SPF_RESULTS = frozenset({"none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"})

# Characters outside XML 1.0's Char production (W3C XML 1.0 §2.2).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class ReportFormatError(ValueError):
    """A report holds a value the RFC 9990 schema does not allow (named in the message)."""


def to_xml(report: AggregateReport) -> bytes:
    """The report as an RFC 9990 XML document, UTF-8 encoded, declaration included.

    Raises :class:`ReportFormatError` when a report has no rows (the schema
    requires one ``record`` at least) or an enumerated word is not one the
    schema lists.
    """
    if not report.rows:
        raise ReportFormatError(f"report {report.metadata.report_id!r} has no rows")

    root = ET.Element(_tag("feedback"))
    _text(root, "version", "1.0")
    _metadata(root, report.metadata)
    _policy(root, report.policy)
    for row in report.rows:
        _record(root, row)

    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode", default_namespace=NAMESPACE)
    return _DECLARATION + body.encode("utf-8") + b"\n"


def _metadata(parent: ET.Element, metadata: ReportMetadata) -> None:
    element = _child(parent, "report_metadata")
    _text(element, "org_name", metadata.org_name)
    _text(element, "email", metadata.email)
    _text(element, "extra_contact_info", metadata.extra_contact_info)
    _text(element, "report_id", metadata.report_id)
    date_range = _child(element, "date_range")
    _text(date_range, "begin", str(metadata.begin))
    _text(date_range, "end", str(metadata.end))
    _text(element, "error", "; ".join(metadata.errors) if metadata.errors else None)
    _text(element, "generator", metadata.generator)


def _policy(parent: ET.Element, policy: PolicyPublished) -> None:
    p = _word("policy_published/p", policy.p, _POLICIES)
    sp = _word("policy_published/sp", policy.sp or p, _POLICIES)
    np = _word("policy_published/np", policy.np or sp, _POLICIES)
    testing = policy.testing or ("y" if policy.pct == 0 else "n")

    element = _child(parent, "policy_published")
    _text(element, "domain", policy.domain)
    if policy.discovery_method is not None:
        _text(
            element,
            "discovery_method",
            _word("policy_published/discovery_method", policy.discovery_method, _DISCOVERY),
        )
    _text(element, "p", p)
    _text(element, "sp", sp)
    _text(element, "np", np)
    _text(element, "fo", policy.fo)
    _text(element, "adkim", _word("policy_published/adkim", policy.adkim or "r", _ALIGNMENT_MODES))
    _text(element, "aspf", _word("policy_published/aspf", policy.aspf or "r", _ALIGNMENT_MODES))
    _text(element, "testing", _word("policy_published/testing", testing, _FLAGS))


def _record(parent: ET.Element, row: Row) -> None:
    if row.count < 0:
        raise ReportFormatError(f"row from {row.source_ip}: negative count {row.count}")
    record = _child(parent, "record")

    row_element = _child(record, "row")
    _text(row_element, "source_ip", row.source_ip)
    _text(row_element, "count", str(row.count))
    evaluated = _child(row_element, "policy_evaluated")
    _text(evaluated, "disposition", _word("disposition", row.disposition, _DISPOSITIONS))
    _text(evaluated, "dkim", _word("policy_evaluated/dkim", row.dkim, _ALIGNED))
    _text(evaluated, "spf", _word("policy_evaluated/spf", row.spf, _ALIGNED))
    _reasons(evaluated, row.reasons)

    identifiers = _child(record, "identifiers")
    _text(identifiers, "header_from", row.header_from)
    _text(identifiers, "envelope_from", row.envelope_from)
    _text(identifiers, "envelope_to", row.envelope_to)

    auth = _child(record, "auth_results")
    for dkim in row.dkim_results:
        _dkim(auth, dkim)
    if row.spf_results:
        _spf(auth, row.spf_results[0])


def _reasons(parent: ET.Element, reasons: Iterable[OverrideReason]) -> None:
    for reason in reasons:
        kind, comment = reason.type, reason.comment
        if kind not in OVERRIDE_TYPES:
            comment = f"{kind}: {comment}" if comment else kind
            kind = "other"
        element = _child(parent, "reason")
        _text(element, "type", kind)
        _text(element, "comment", comment)


def _dkim(parent: ET.Element, dkim: DkimAuth) -> None:
    element = _child(parent, "dkim")
    _text(element, "domain", dkim.domain)
    _text(element, "selector", dkim.selector or "")
    _text(element, "result", _word("auth_results/dkim/result", dkim.result, _DKIM_RESULTS))
    _text(element, "human_result", dkim.human_result)


def _spf(parent: ET.Element, spf: SpfAuth) -> None:
    element = _child(parent, "spf")
    _text(element, "domain", spf.domain)
    _text(element, "scope", "mfrom" if spf.scope == "mfrom" else None)
    _text(element, "result", _word("auth_results/spf/result", spf.result, _SPF_RESULTS))
    _text(element, "human_result", spf.human_result)


# --- Small helpers ----------------------------------------------------------------


def _tag(name: str) -> str:
    return f"{{{NAMESPACE}}}{name}"


def _child(parent: ET.Element, name: str) -> ET.Element:
    return ET.SubElement(parent, _tag(name))


def _text(parent: ET.Element, name: str, value: str | None) -> None:
    """Add ``<name>value</name>``; nothing when ``value`` is None (an optional element)."""
    if value is None:
        return
    _child(parent, name).text = _NOT_XML.sub("\ufffd", value)


def _word(where: str, value: str, allowed: frozenset[str]) -> str:
    """``value`` when the schema lists it for ``where``; :class:`ReportFormatError` if not."""
    if value not in allowed:
        raise ReportFormatError(
            f"{where}: {value!r} is not one of {', '.join(sorted(allowed))} (RFC 9990 schema)"
        )
    return value
