"""DMARC policy evaluation (RFC 9989, reading RFC 7489 records too).

The pieces, each a pure module:

* :mod:`.record`: DMARC Policy Records parsed from TXT text and written back;
* :mod:`.from_header`: the Author Domain(s) of a message's From field;
* :mod:`.discovery`: the DNS Tree Walk, the policy domain, Organizational Domains;
* :mod:`.orgdomain`: RFC 7489's Organizational Domain from the Public Suffix List;
* :mod:`.alignment`: strict and relaxed Identifier Alignment;
* :mod:`.evaluate` and :mod:`.result`: the evaluation and its frozen outcome;
* :mod:`.build`: records written from a Domain Owner's options.

:func:`evaluate` is a sans-IO evaluator driven by
:func:`mailwright.dns.queries.run` (or ``run_sync`` in tests);
:func:`check_dmarc` is the one-call async form. See ``docs/dmarc.md``.
"""

from __future__ import annotations

from collections.abc import Iterable

from mailwright.auth.dmarc.alignment import DkimCheck, SpfCheck, is_aligned
from mailwright.auth.dmarc.build import BuildError, BuiltRecord, build_record
from mailwright.auth.dmarc.discovery import (
    DEFAULT_LABEL_LIMIT,
    Presence,
    RecordLookup,
    Walk,
    walk_names,
)
from mailwright.auth.dmarc.evaluate import DEFAULT_MAX_AUTHOR_DOMAINS, Sampler, evaluate
from mailwright.auth.dmarc.from_header import (
    AuthorDomains,
    Mailbox,
    author_domains,
    author_domains_of,
    parse_mailboxes,
)
from mailwright.auth.dmarc.orgdomain import psl_organizational_domain
from mailwright.auth.dmarc.record import (
    AlignmentMode,
    Policy,
    Problem,
    PsdFlag,
    Record,
    RecordError,
    RecordErrorCode,
    ReportUri,
    parse_record,
)
from mailwright.auth.dmarc.result import DmarcResult, Result
from mailwright.auth.message import Message, parse_message
from mailwright.dns.queries import CachingResolver, run

__all__ = [
    "DEFAULT_LABEL_LIMIT",
    "DEFAULT_MAX_AUTHOR_DOMAINS",
    "AlignmentMode",
    "AuthorDomains",
    "BuildError",
    "BuiltRecord",
    "DkimCheck",
    "DmarcResult",
    "Mailbox",
    "Policy",
    "Presence",
    "Problem",
    "PsdFlag",
    "Record",
    "RecordError",
    "RecordErrorCode",
    "RecordLookup",
    "ReportUri",
    "Result",
    "Sampler",
    "SpfCheck",
    "Walk",
    "author_domains",
    "author_domains_of",
    "build_record",
    "check_dmarc",
    "evaluate",
    "is_aligned",
    "parse_mailboxes",
    "parse_record",
    "psl_organizational_domain",
    "walk_names",
]


async def check_dmarc(
    resolver: CachingResolver,
    *,
    from_domain: str | None = None,
    message: Message | bytes | None = None,
    spf: SpfCheck | tuple[str, str] | None = None,
    dkim: Iterable[DkimCheck | tuple[str, str]] = (),
    label_limit: int = DEFAULT_LABEL_LIMIT,
    max_author_domains: int = DEFAULT_MAX_AUTHOR_DOMAINS,
    sample: Sampler | None = None,
) -> DmarcResult:
    """Evaluate DMARC against DNS for one Author Domain or for a whole message.

    Give exactly one of ``from_domain`` (the RFC5322.From domain) and
    ``message`` (parsed, or its raw octets, whose From fields are read);
    the other arguments are those of :func:`evaluate`. Raises
    :class:`ValueError` when both or neither are given; bad input and DNS
    failures never raise, they come back as the result.
    """
    if (from_domain is None) == (message is None):
        raise ValueError("give exactly one of from_domain and message")

    if from_domain is not None:
        authors: AuthorDomains | str = from_domain
    else:
        parsed = parse_message(message) if isinstance(message, bytes) else message
        assert parsed is not None
        authors = author_domains_of(parsed)

    evaluation = evaluate(
        authors,
        spf=spf,
        dkim=dkim,
        label_limit=label_limit,
        max_author_domains=max_author_domains,
        sample=sample,
    )
    return await run(evaluation, resolver)
