"""The outcome of a DMARC evaluation, as one frozen value (RFC 9989 §5.3, RFC 8601).

A :class:`DmarcResult` holds what the SMTP door needs to act (the result
word, the disposition), what an Authentication-Results field says
(:meth:`DmarcResult.to_method_result`), and what a row of an aggregate
report needs (RFC 9990): the Author Domain, the policy domain and its
published record, the SPF and DKIM inputs and which of them aligned. It is
built by :mod:`.evaluate` and never changed afterwards.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mailwright.auth.authres import MethodResult, Property
from mailwright.auth.dmarc.alignment import DkimCheck, SpfCheck
from mailwright.auth.dmarc.record import Policy, Record

# Enforcement (mailwright.policy.dmarc) and the reports (mailwright.reports) read a
# DmarcResult; nothing here acts on it.


class Result(enum.StrEnum):
    """The DMARC result words, as RFC 9989 §9.2 registers them for RFC 8601 fields."""

    PASS = "pass"
    FAIL = "fail"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


@dataclass(frozen=True, slots=True)
class DmarcResult:
    """What DMARC concluded for one message (or one of its Author Domains).

    * ``result``: pass, fail, none, temperror or permerror;
    * ``reason``: a sentence for people and logs, naming the DNS names and
      tags involved;
    * ``author_domain``: the RFC5322.From domain (A-labels), None when the
      message has none;
    * ``policy_domain``: where the applied record was found (§3.2.5);
    * ``organizational_domain``: the Author Domain's Organizational Domain
      (§4.10.2) when the evaluation determined it, else None;
    * ``record``: the applied DMARC Policy Record as published;
    * ``policy`` and ``policy_tag``: the requested policy and the tag it came
      from (``p``, ``sp`` or ``np``, §4.10.1); None when no record applies
      or the choice could not be made;
    * ``disposition``: the policy to apply after test mode and legacy
      sampling, ``none`` unless the result is fail (the ``policy.dmarc``
      property of RFC 9989 §9.1);
    * ``test_mode``: the record asked for test mode (``t=y`` or ``pct=0``);
    * ``sampled``: for a legacy ``pct`` between 1 and 99, whether the draw
      applied the policy; None when no sampling took place;
    * ``spf_aligned``, ``dkim_aligned`` and ``aligned_dkim_domains``: which
      authenticated identifiers aligned;
    * ``spf`` and ``dkim``: the inputs, kept for reports;
    * ``queried``: the DNS names asked, in order;
    * ``authors``: with several Author Domains, each one's result (this
      value is then the one that decided, RFC 9989 §11.5).
    """

    result: Result
    reason: str
    author_domain: str | None = None
    policy_domain: str | None = None
    organizational_domain: str | None = None
    record: Record | None = None
    policy: Policy | None = None
    policy_tag: str | None = None
    disposition: Policy = Policy.NONE
    test_mode: bool = False
    sampled: bool | None = None
    spf_aligned: bool = False
    dkim_aligned: bool = False
    aligned_dkim_domains: tuple[str, ...] = ()
    spf: SpfCheck | None = None
    dkim: tuple[DkimCheck, ...] = ()
    queried: tuple[str, ...] = ()
    authors: tuple[DmarcResult, ...] = ()

    def to_method_result(self) -> MethodResult:
        """The ``dmarc=`` entry of an Authentication-Results field (RFC 8601 §2.7.1).

        ``header.from`` names the Author Domain. When a record applied,
        ``polrec.p`` is its published request and ``polrec.domain`` the
        Policy Domain where that differs from the Author Domain, the
        properties DMARCbis registers; a comment says what we concluded for
        people (``p=reject dis=none``), since the disposition is ours, not
        the record's. (An older convention wrote the published policy as
        ``policy.dmarc``; readers of that convention see nothing wrong here.)
        """
        properties: list[Property] = []
        if self.author_domain is not None:
            properties.append(Property("header", "from", self.author_domain))
        comment = None
        if self.policy is not None:
            properties.append(Property("polrec", "p", self.policy.value))
            if self.policy_domain and self.policy_domain != self.author_domain:
                properties.append(Property("polrec", "domain", self.policy_domain))
            comment = f"p={self.policy.value} dis={self.disposition.value}"
            if self.test_mode:
                comment += " t=y"
        return MethodResult("dmarc", self.result.value, tuple(properties), comment=comment)
