"""What an SPF check ends with: one of seven result words, and the facts behind it.

The words are those of RFC 7208 §2.6, spelled as RFC 8601 §2.7.2 writes them
in an Authentication-Results header field (``spf=softfail``), so a result can
be rendered without a translation table. :class:`SpfResult` adds what a
receiver needs to act on the result and to explain it: the identity and
domain checked, a reason for logs and headers, the explanation the domain
asked to be shown on ``fail`` (§6.2), and how many DNS-querying terms and
void lookups were spent (§4.6.4). :meth:`SpfResult.to_method_result` gives
the ``spf=`` entry of an Authentication-Results field (RFC 8601 §2.7.2,
RFC 7208 §9.2).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from mailwright.auth.authres import MethodResult, result

#: The identity checked: the MAIL FROM reverse-path (RFC 7208 §2.4) or the
#: HELO/EHLO domain (§2.3); the ``identity`` values of a Received-SPF field (§9.1).
Scope = Literal["mailfrom", "helo"]


class Result(enum.StrEnum):
    """The result of check_host() (RFC 7208 §2.6, §8)."""

    NONE = "none"  # no SPF record, or no checkable domain (§2.6.1)
    NEUTRAL = "neutral"  # the domain makes no assertion about the client (§2.6.2)
    PASS = "pass"  # the client is authorized (§2.6.3)
    FAIL = "fail"  # the client is not authorized (§2.6.4)
    SOFTFAIL = "softfail"  # probably not authorized; a weak fail (§2.6.5)
    TEMPERROR = "temperror"  # a transient DNS error; try again later (§2.6.6)
    PERMERROR = "permerror"  # the record cannot be interpreted (§2.6.7)


@dataclass(frozen=True, slots=True)
class SpfResult:
    """The outcome of one SPF check, with what led to it.

    ``domain`` is the <domain> check_host() started from (after a redirect the
    decision may come from another domain; ``reason`` says which), ``sender``
    the <sender> used for macros (``postmaster@`` the domain when there was
    no local part), ``identity`` which identity that is. ``explanation`` is
    set for ``fail`` only: the domain's exp= text (§6.2) or the receiver's
    default. ``lookups`` counts the DNS-querying terms evaluated and
    ``void_lookups`` those that found nothing (§4.6.4). ``mechanism`` is the
    term that decided as written (``-all``, ``include:_spf.example.net``,
    ``default`` when nothing matched), empty for none, temperror and
    permerror; it is the ``mechanism`` key of a Received-SPF field (§9.1).
    """

    result: Result
    domain: str
    sender: str
    identity: Scope
    ip: str
    reason: str
    explanation: str = ""
    lookups: int = 0
    void_lookups: int = 0
    mechanism: str = ""

    @property
    def passed(self) -> bool:
        """True for ``pass``."""
        return self.result is Result.PASS

    def to_method_result(self, *, local_part: bool = True) -> MethodResult:
        """The ``spf=`` entry of an Authentication-Results field (RFC 8601 §2.7.2).

        The identity checked is ``smtp.mailfrom`` (the <sender> check_host()
        used, ``postmaster@`` the domain when the path had no local part) or
        ``smtp.helo`` (the HELO name), as RFC 7208 §9.2 asks. With
        ``local_part=False`` only the domain of the sender is written, which
        RFC 8601 §2.2 allows for privacy. The reason goes into ``reason=``
        unless the check passed, as for ``dkim=``.
        """
        if self.identity == "helo":
            prop = ("smtp", "helo", self.domain or None)
        else:
            prop = ("smtp", "mailfrom", self.sender if local_part else self.domain)
        # TODO: the Received-SPF header field (RFC 7208 §9.1) is not written; a receiver
        # that wants it besides Authentication-Results has every key here but helo.
        return result(
            "spf",
            self.result.value,
            [prop],
            reason=None if self.passed else self.reason,
        )
