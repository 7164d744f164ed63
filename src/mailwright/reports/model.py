"""An aggregate DMARC report as plain data (RFC 9990 §2, RFC 7489 Appendix C).

Reports we write and reports we receive have one shape: a
:class:`AggregateReport` with its :class:`ReportMetadata`, the
:class:`PolicyPublished` it is about, and one :class:`Row` per group of
messages that shared a source address, identifiers, results and
disposition. Words are kept as the XML spells them (``pass``, ``fail``,
``none``, ``quarantine``, ``reject``, ``mfrom``, ``helo``), so a received
report that uses a word we do not know survives parsing unchanged.

:class:`Evaluation` is what the enforcement policy records for each message
it evaluates: one row with count 1, the applied record and where to report.
Aggregation adds equal rows up (:meth:`Row.key`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

#: The XML namespace of RFC 9990 reports; RFC 7489 reports have none.
NAMESPACE = "urn:ietf:params:xml:ns:dmarc-2.0"

#: RFC 9990 §2.1.1 override reasons (PolicyOverrideType), as the schema spells them.
OVERRIDE_TYPES = (
    "local_policy",
    "mailing_list",
    "other",
    "policy_test_mode",
    "trusted_forwarder",
)


@dataclass(frozen=True, slots=True)
class DkimAuth:
    """One DKIM signature's result (``auth_results/dkim``)."""

    domain: str
    result: str  # none, pass, fail, policy, neutral, temperror, permerror
    selector: str | None = None
    human_result: str | None = None


@dataclass(frozen=True, slots=True)
class SpfAuth:
    """The SPF result (``auth_results/spf``); ``scope`` is ``mfrom`` or ``helo``."""

    domain: str
    result: str  # none, neutral, pass, fail, softfail, temperror, permerror
    scope: str | None = "mfrom"
    human_result: str | None = None


@dataclass(frozen=True, slots=True)
class OverrideReason:
    """Why the applied disposition differs from the policy (``policy_evaluated/reason``)."""

    type: str  # one of OVERRIDE_TYPES (received reports may hold others)
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class PolicyPublished:
    """The DMARC record that applied, as published (``policy_published``).

    ``domain`` is the policy domain (where the record was found). ``testing``
    is ``y`` or ``n``; ``discovery_method`` ``treewalk`` or ``psl``; ``pct``
    only appears in RFC 7489 reports.
    """

    domain: str
    p: str
    sp: str | None = None
    np: str | None = None
    adkim: str | None = None
    aspf: str | None = None
    testing: str | None = None
    discovery_method: str | None = None
    fo: str | None = None
    pct: int | None = None


@dataclass(frozen=True, slots=True)
class Row:
    """One ``record``: messages from one source with the same identifiers and results.

    ``dkim`` and ``spf`` are the aligned DMARC results (``pass`` or
    ``fail``, ``policy_evaluated``); ``dkim_results`` and ``spf_results``
    the raw ones (``auth_results``). ``envelope_to`` is the recipient domain.
    """

    source_ip: str
    count: int
    disposition: str  # none, pass, quarantine, reject (RFC 9990 adds "pass")
    dkim: str
    spf: str
    header_from: str
    envelope_from: str | None = None
    envelope_to: str | None = None
    reasons: tuple[OverrideReason, ...] = ()
    dkim_results: tuple[DkimAuth, ...] = ()
    spf_results: tuple[SpfAuth, ...] = ()

    def key(self) -> tuple[object, ...]:
        """Everything but the count: rows with equal keys are added up."""
        return (
            self.source_ip,
            self.disposition,
            self.dkim,
            self.spf,
            self.header_from,
            self.envelope_from,
            self.envelope_to,
            self.reasons,
            self.dkim_results,
            self.spf_results,
        )

    def with_count(self, count: int) -> Row:
        """This row with another count."""
        return replace(self, count=count)


@dataclass(frozen=True, slots=True)
class ReportMetadata:
    """Who reports, about which period (``report_metadata``); times are Unix seconds."""

    org_name: str
    email: str
    report_id: str
    begin: int
    end: int
    extra_contact_info: str | None = None
    generator: str | None = None
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AggregateReport:
    """One aggregate report.

    ``namespace`` is the XML namespace the report used (:data:`NAMESPACE`
    for RFC 9990, None for RFC 7489); ``version`` the ``version`` element.
    ``problems`` lists what a lenient parse had to skip or repair (a row
    with an invalid address, a missing element), for the operator.
    """

    metadata: ReportMetadata
    policy: PolicyPublished
    rows: tuple[Row, ...]
    version: str | None = "1.0"
    namespace: str | None = NAMESPACE
    problems: tuple[str, ...] = ()

    @property
    def message_count(self) -> int:
        """Messages the report covers: the sum of its rows' counts."""
        return sum(row.count for row in self.rows)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One message's DMARC evaluation at our door, recorded for aggregate reports.

    ``row`` has count 1. ``policy`` is the applied record (its ``domain``
    is the policy domain, the domain reported on); ``rua`` and ``ruf`` are
    its reporting URIs as published (``mailto:a@b.example!10m``).
    ``received_at`` is Unix seconds.
    """

    received_at: float
    policy: PolicyPublished
    row: Row
    rua: tuple[str, ...] = ()
    ruf: tuple[str, ...] = ()
