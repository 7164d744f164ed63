"""The outcome of auditing one domain: its findings in check order, and their summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailwright.audit.finding import Finding, summarize

#: The areas in the order a report presents them; each is a check-id prefix.
AREAS = ("spf", "dkim", "dmarc", "mx", "mta-sts", "tls-rpt", "bulk")

#: Headings of the areas for people.
AREA_TITLES = {
    "spf": "SPF",
    "dkim": "DKIM",
    "dmarc": "DMARC",
    "mx": "MX",
    "mta-sts": "MTA-STS",
    "tls-rpt": "TLS reporting",
    "bulk": "Bulk-sender requirements",
}


@dataclass(frozen=True, slots=True)
class Report:
    """Every finding about ``domain``, grouped by area in :data:`AREAS` order."""

    domain: str
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def summary(self) -> dict[str, int]:
        """Finding counts per severity."""
        return summarize(self.findings)

    @property
    def has_errors(self) -> bool:
        """True when any finding is an error (the command then exits 1)."""
        return any(finding.severity == "error" for finding in self.findings)

    def by_area(self) -> list[tuple[str, list[Finding]]]:
        """The findings of each area that has any, in :data:`AREAS` order."""
        groups: dict[str, list[Finding]] = {}
        for finding in self.findings:
            groups.setdefault(finding.area, []).append(finding)
        order = [area for area in AREAS if area in groups]
        order += [area for area in groups if area not in AREAS]
        return [(area, groups[area]) for area in order]

    def to_dict(self) -> dict[str, Any]:
        """The report as ``mailwright check --json`` prints it."""
        return {
            "domain": self.domain,
            "findings": [finding.to_dict() for finding in self.findings],
            "summary": self.summary,
        }
