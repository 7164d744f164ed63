"""The errors of DNS lookups, as mailwright sees them.

dnspython raises a dozen exception types; callers of :mod:`mailwright.dns`
care about one question: try again later, or give up now? So every lookup
failure is translated once, where the answer is read, into
:class:`TransientDnsError` or :class:`PermanentDnsError`, with the dnspython
exception kept as ``__cause__`` and the SMTP reply that the failure implies
kept as :attr:`DnsError.reply`, ready for a bounce or a deferral.
"""

from __future__ import annotations

from mailwright.errors import MailwrightError
from mailwright.smtp.replies import Reply


class DnsError(MailwrightError):
    """A DNS lookup for ``domain`` failed; :attr:`reply` says what to tell the sender."""

    def __init__(self, domain: str, reply: Reply, detail: str) -> None:
        self.domain = domain
        self.reply = reply
        self.detail = detail
        super().__init__(f"{domain}: {detail} ({reply})")


class TransientDnsError(DnsError):
    """The lookup may succeed later: SERVFAIL, timeout, no reachable nameserver (4xx)."""


class PermanentDnsError(DnsError):
    """The lookup answered for good: no such domain, null MX, mail loop (5xx)."""
