"""The audit of a sending domain, behind ``mailwright check DOMAIN`` (see docs/check.md).

:func:`audit_domain` runs every check and returns a :class:`Report` of
:class:`Finding` values, each with a stable check id (``spf.lookups``), a
severity, a message and a fix. The DNS checks of each area are sans-IO
evaluators that can be run on their own with
:func:`mailwright.dns.queries.run` or ``run_sync``:

* :func:`audit_spf`: syntax, lookup and void-lookup totals, loops, ``all``;
* :func:`audit_dkim`: the key records of given selectors;
* :func:`audit_dmarc`: the record that applies, its policy and reporting
  addresses, with the external authorisation of RFC 9990;
* :func:`audit_mx`: MX, null MX, exchangers that are aliases or addresses;
* :mod:`.mtasts` and :mod:`.tlsrpt`: MTA-STS (RFC 8461) and TLS-RPT (RFC 8460);
* :mod:`.bulk`: the bulk-sender requirements, on a sample message and the
  sending addresses.
"""

from mailwright.audit.dkim import audit_dkim
from mailwright.audit.dmarc import DmarcAudit, audit_dmarc
from mailwright.audit.domain import AuditOptions, audit_domain
from mailwright.audit.finding import SEVERITIES, Finding, Severity, summarize
from mailwright.audit.mx import MxAudit, audit_mx
from mailwright.audit.report import AREA_TITLES, AREAS, Report
from mailwright.audit.spf import audit_spf

__all__ = [
    "AREAS",
    "AREA_TITLES",
    "SEVERITIES",
    "AuditOptions",
    "DmarcAudit",
    "Finding",
    "MxAudit",
    "Report",
    "Severity",
    "audit_dkim",
    "audit_dmarc",
    "audit_domain",
    "audit_mx",
    "audit_spf",
    "summarize",
]
