"""DNS for mailwright: the shared async resolver and next-hop (MX) selection.

:func:`make_resolver` builds the one resolver every lookup uses (MX here,
later SPF, DKIM and DMARC); :func:`resolve_next_hops` finds where to deliver
mail for a domain (RFC 5321 §5, RFC 7505). Lookup failures surface as
:class:`DnsError` subclasses carrying the SMTP reply they imply.
"""

from mailwright.dns.errors import DnsError, PermanentDnsError, TransientDnsError
from mailwright.dns.mx import (
    Lookup,
    LookupStatus,
    MxRecord,
    NextHop,
    normalize_domain,
    order_exchangers,
    plan_exchangers,
    plan_next_hops,
    resolve_next_hops,
)
from mailwright.dns.resolver import make_resolver, parse_nameserver

__all__ = [
    "DnsError",
    "Lookup",
    "LookupStatus",
    "MxRecord",
    "NextHop",
    "PermanentDnsError",
    "TransientDnsError",
    "make_resolver",
    "normalize_domain",
    "order_exchangers",
    "parse_nameserver",
    "plan_exchangers",
    "plan_next_hops",
    "resolve_next_hops",
]
