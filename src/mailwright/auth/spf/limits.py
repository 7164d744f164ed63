"""The processing limits of one SPF evaluation (RFC 7208 §4.6.4, §6.2).

SPF lets a domain make the receiver ask DNS on its behalf, and lets whoever
controls a client's reverse zone do the same through ``ptr`` and ``%{p}``.
The limits bound that work so that a record cannot turn a receiver into an
amplifier or keep it busy: every number below is the RFC's own (or its
recommended default), and :class:`Limits` exists so tests and operators can
see them in one place, not so they can be loosened casually.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """How much one check_host() evaluation may ask of DNS.

    ``lookups``: the "include", "a", "mx", "ptr" and "exists" mechanisms and
    the "redirect" modifier evaluated, across includes and redirects; one
    more is permerror (§4.6.4 ¶1).
    ``void_lookups``: such terms whose lookup found nothing (NODATA or
    NXDOMAIN); one more is permerror (§4.6.4 ¶7, recommended default 2).
    ``mx_names``: MX records one "mx" term may return; more is permerror
    (§4.6.4 ¶2).
    ``ptr_names``: PTR names validated for "ptr" or ``%{p}``; the rest are
    ignored (§4.6.4 ¶3).
    ``explanation_length``: characters of an explanation kept (§6.2 allows a
    limit; an SMTP reply line holds 512 octets, RFC 5321 §4.5.3.1.5).
    """

    lookups: int = 10
    void_lookups: int = 2
    mx_names: int = 10
    ptr_names: int = 10
    explanation_length: int = 400


#: The RFC's limits.
DEFAULT_LIMITS = Limits()
