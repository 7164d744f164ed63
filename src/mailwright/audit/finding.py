"""What an audit reports: findings, each with a severity, a message and a fix.

A :class:`Finding` is one observation about a sending domain, named by a
stable dotted check id (``spf.lookups``, ``dmarc.external``) whose first
part is the area it belongs to. The id is what scripts match on and what
docs/check.md documents; the message and fix are for people and may change
wording between releases. ``details`` holds the facts behind the finding
(counts, record text, names) as JSON-ready values.

Severities, from worst:

* ``error``: mail from the domain fails, or will fail, authentication or a
  mailbox provider's requirement; fix it;
* ``warning``: works today, but is fragile, weak or below what large
  receivers ask for;
* ``info``: worth knowing, or a check that could not run for want of input;
* ``ok``: the check ran and found nothing wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning", "info", "ok"]

#: Severities from worst to best; also the keys of a summary.
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info", "ok")


@dataclass(frozen=True, slots=True)
class Finding:
    """One result of one check: what was found and, unless all is well, how to fix it."""

    check: str
    severity: Severity
    message: str
    fix: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def area(self) -> str:
        """The part of the check id before the first dot (``spf``, ``mta-sts``)."""
        return self.check.split(".", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        """The finding as the JSON output shows it."""
        return {
            "check": self.check,
            "severity": self.severity,
            "message": self.message,
            "fix": self.fix,
            "details": self.details,
        }


def ok(check: str, message: str, **details: Any) -> Finding:
    """A finding that says the check passed."""
    return Finding(check, "ok", message, None, details)


def info(check: str, message: str, fix: str | None = None, **details: Any) -> Finding:
    """An informational finding."""
    return Finding(check, "info", message, fix, details)


def warning(check: str, message: str, fix: str, **details: Any) -> Finding:
    """A finding about something fragile or weak."""
    return Finding(check, "warning", message, fix, details)


def error(check: str, message: str, fix: str, **details: Any) -> Finding:
    """A finding about something broken."""
    return Finding(check, "error", message, fix, details)


def unchecked(check: str, what: str, detail: str, **details: Any) -> Finding:
    """An error for a lookup that failed for a transient reason (SERVFAIL, timeout)."""
    return Finding(
        check,
        "error",
        f"{what} could not be checked: {detail}",
        "make sure the domain's name servers answer, then run the check again",
        {"error": detail, **details},
    )


def summarize(findings: Iterable[Finding]) -> dict[str, int]:
    """How many findings there are of each severity (every severity present, maybe 0)."""
    counts: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
    for finding in findings:
        counts[finding.severity] += 1
    return counts
