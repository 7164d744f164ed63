"""The bulk-sender requirements of the large mailbox providers, checked on a sample.

Gmail and Yahoo ask senders of bulk mail (thousands of messages a day) for
more than authentication that merely passes:

* SPF and DKIM both pass, and at least one is aligned with the From domain
  so that DMARC passes (RFC 9989 §4.4);
* one-click unsubscribe (RFC 8058): a ``List-Unsubscribe`` field with an
  https URI, ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``, and a
  DKIM signature that covers both (§3.1, §4);
* sending IP addresses with forward-confirmed reverse DNS (a PTR name whose
  A or AAAA records include the address) that SPF authorises.

Those facts are properties of a message and of the sending hosts, not of
the domain's DNS alone, so they are checked on a sample message
(``--message``) and on the addresses given (``--ip``). The message checks
here are pure over the message and its DKIM results; forward-confirmed
reverse DNS is a sans-IO evaluator; SPF for an address runs the receiver's
own check.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Generator, Sequence

import dns.name
import dns.reversename

from mailwright.audit.finding import Finding, error, info, ok, unchecked, warning
from mailwright.auth.dkim import DkimResult, Signature, parse_signature
from mailwright.auth.dmarc import (
    AlignmentMode,
    Record,
    author_domains_of,
    is_aligned,
    psl_organizational_domain,
)
from mailwright.auth.message import Message
from mailwright.auth.spf import Result as SpfWord
from mailwright.auth.spf import SpfResult
from mailwright.dns.queries import Answers, Query, Step

#: The only List-Unsubscribe-Post value RFC 8058 §3.1 defines.
ONE_CLICK = "List-Unsubscribe=One-Click"
#: PTR names whose addresses are looked up at most.
MAX_PTR_NAMES = 10

_URI = re.compile(r"<([^>]*)>")


def message_findings(
    domain: str,
    message: Message,
    dkim: Sequence[DkimResult],
    *,
    mail_from: str | None,
    record: Record | None,
) -> list[Finding]:
    """Check one sample message against the bulk-sender requirements; never raises.

    ``dkim`` holds the verification results of the message's signatures;
    ``mail_from`` is the envelope sender (``--mail-from``), else the
    message's Return-Path is used; ``record`` is the DMARC record that
    applies (its alignment modes; relaxed without one).
    Check ids: ``bulk.from``, ``bulk.dkim``, ``bulk.dkim-aligned``,
    ``bulk.spf-aligned``, ``bulk.list-unsubscribe``, ``bulk.one-click``,
    ``bulk.unsubscribe-signed``.
    """
    findings: list[Finding] = []
    authors = author_domains_of(message)
    author = authors.single
    if author is None or author != domain.lower():
        shown = ", ".join(authors.domains) or "no usable domain"
        findings.append(
            error(
                "bulk.from",
                f"the message's From names {shown}, not {domain}: the audit of {domain} "
                "says nothing about it",
                f"check a message sent with a From address in {domain}",
                authors=list(authors.domains),
            )
        )
        author = authors.single or domain
    else:
        findings.append(ok("bulk.from", f"the message is from {domain}"))

    dkim_mode = record.dkim_alignment if record is not None else AlignmentMode.RELAXED
    spf_mode = record.spf_alignment if record is not None else AlignmentMode.RELAXED
    aligned = _dkim_findings(findings, author, dkim, dkim_mode)
    findings.append(
        _spf_alignment(author, _envelope_domain(message, mail_from), spf_mode, aligned)
    )
    findings.extend(_unsubscribe(message, dkim, aligned))
    return findings


def _dkim_findings(
    findings: list[Finding], author: str, dkim: Sequence[DkimResult], mode: AlignmentMode
) -> list[DkimResult]:
    """Add the DKIM findings; return the passing signatures aligned with ``author``."""
    if not dkim:
        findings.append(
            error(
                "bulk.dkim",
                "the message has no DKIM signature; Gmail and Yahoo require bulk mail to be "
                "signed",
                f"sign outgoing mail with a key published under {author} ([[signing]] in "
                "mailwright.toml)",
            )
        )
        return []
    passing = [result for result in dkim if result.passed]
    if not passing:
        reasons = "; ".join(f"d={r.domain} s={r.selector}: {r.reason}" for r in dkim)
        findings.append(
            error(
                "bulk.dkim",
                f"no DKIM signature of the message verifies ({reasons})",
                "check that the published key matches the signing key and that nothing "
                "changes the message after signing",
                results=[_result_details(r) for r in dkim],
            )
        )
        return []
    findings.append(
        ok(
            "bulk.dkim",
            f"{len(passing)} DKIM signature(s) verify",
            results=[_result_details(r) for r in dkim],
        )
    )

    aligned = [r for r in passing if is_aligned(author, r.domain, mode, _org) is True]
    if aligned:
        findings.append(
            ok(
                "bulk.dkim-aligned",
                f"a valid signature by d={aligned[0].domain} is aligned with {author}",
            )
        )
    else:
        signers = ", ".join(sorted({r.domain for r in passing}))
        findings.append(
            error(
                "bulk.dkim-aligned",
                f"the valid signatures are by {signers}, none aligned with the From domain "
                f"{author} ({'strict' if mode is AlignmentMode.STRICT else 'relaxed'} "
                "alignment): they do not count for DMARC",
                f"sign with d={author} (or, for relaxed alignment, a domain under the same "
                "organizational domain)",
                signers=sorted({r.domain for r in passing}),
            )
        )
    return aligned


def _spf_alignment(
    author: str, envelope: str | None, mode: AlignmentMode, dkim_aligned: list[DkimResult]
) -> Finding:
    if envelope is None:
        return info(
            "bulk.spf-aligned",
            "the message has no Return-Path, so SPF alignment was not checked",
            "pass --mail-from ADDRESS, the envelope sender bulk mail is sent with",
        )
    if is_aligned(author, envelope, mode, _org) is True:
        return ok("bulk.spf-aligned", f"the MAIL FROM domain {envelope} is aligned with {author}")
    message = (
        f"the MAIL FROM domain {envelope} is not aligned with the From domain {author}: "
        "DMARC can pass through DKIM only"
    )
    fix = f"send with a MAIL FROM (bounce) address in {author} or one of its subdomains"
    if dkim_aligned:
        return warning("bulk.spf-aligned", message, fix, mail_from_domain=envelope)
    return error(
        "bulk.spf-aligned",
        message + ", and no aligned signature verifies",
        fix,
        mail_from_domain=envelope,
    )


def _unsubscribe(
    message: Message, dkim: Sequence[DkimResult], aligned: list[DkimResult]
) -> list[Finding]:
    """The one-click unsubscribe checks of RFC 8058."""
    findings: list[Finding] = []
    fields = message.fields("List-Unsubscribe")
    uris = [uri.strip() for field in fields for uri in _URI.findall(field.unfolded)]
    https = [uri for uri in uris if uri.lower().startswith("https://")]
    if not fields:
        findings.append(
            error(
                "bulk.list-unsubscribe",
                "the message has no List-Unsubscribe field; Gmail and Yahoo require one-click "
                "unsubscribe in bulk mail",
                "add List-Unsubscribe: <https://.../unsubscribe?id=...> (RFC 2369, RFC 8058)",
            )
        )
    elif not https:
        findings.append(
            error(
                "bulk.list-unsubscribe",
                "List-Unsubscribe has no https URI; one-click unsubscribe needs one "
                "(RFC 8058 §3.1)",
                "add an https URI that unsubscribes on a POST, next to any mailto: URI",
                uris=uris,
            )
        )
    else:
        findings.append(
            ok("bulk.list-unsubscribe", "List-Unsubscribe has an https URI", uris=uris)
        )

    posts = [field.unfolded for field in message.fields("List-Unsubscribe-Post")]
    if ONE_CLICK not in posts:
        findings.append(
            error(
                "bulk.one-click",
                "the message lacks List-Unsubscribe-Post: List-Unsubscribe=One-Click, so "
                "receivers cannot offer one-click unsubscribe (RFC 8058 §3.1)",
                f"add the field List-Unsubscribe-Post: {ONE_CLICK}",
                found=posts,
            )
        )
    else:
        findings.append(ok("bulk.one-click", "List-Unsubscribe-Post asks for one-click"))

    if fields and posts:
        covered = [r for r in aligned if _covers(message, r)]
        if covered:
            findings.append(
                ok(
                    "bulk.unsubscribe-signed",
                    f"the signature by d={covered[0].domain} covers both unsubscribe fields",
                )
            )
        else:
            findings.append(
                error(
                    "bulk.unsubscribe-signed",
                    "no valid aligned DKIM signature covers both List-Unsubscribe and "
                    "List-Unsubscribe-Post; receivers ignore unsigned ones (RFC 8058 §4)",
                    "add list-unsubscribe and list-unsubscribe-post to the signed header "
                    "fields (h=)",
                    signatures=len(dkim),
                )
            )
    return findings


def _covers(message: Message, result: DkimResult) -> bool:
    """Whether the signature behind ``result`` lists both unsubscribe fields in h=."""
    fields = message.fields("DKIM-Signature")
    if result.index >= len(fields):
        return False
    signature = parse_signature(fields[result.index].value)
    if not isinstance(signature, Signature):
        return False
    return {"list-unsubscribe", "list-unsubscribe-post"} <= set(signature.headers)


def _envelope_domain(message: Message, mail_from: str | None) -> str | None:
    """The domain of ``mail_from``, else of the message's Return-Path; None without one."""
    if mail_from is None:
        paths = message.fields("Return-Path")
        if not paths:
            return None
        mail_from = paths[0].unfolded
    path = mail_from.strip().strip("<>").strip()
    domain = path.rpartition("@")[2].rstrip(".").lower()
    return domain or None


def _org(domain: str) -> str | None:
    # TODO: RFC 9989 receivers find Organizational Domains with the DNS Tree Walk;
    # the Public Suffix List used here can disagree where a domain publishes psd=.
    return psl_organizational_domain(domain)


def _result_details(result: DkimResult) -> dict[str, object]:
    return {
        "domain": result.domain,
        "selector": result.selector,
        "result": result.result.value,
        "reason": result.reason,
    }


def fcrdns(ip: str) -> Generator[Step, Answers, tuple[list[Finding], str | None]]:
    """Forward-confirmed reverse DNS for ``ip``: findings and the confirmed name, if any.

    The PTR names of the address are looked up, and each name's A or AAAA
    records must include the address again. Check id ``bulk.fcrdns``.
    """
    address = ipaddress.ip_address(ip)
    reverse = dns.reversename.from_address(str(address))
    [answer] = yield (Query.of(reverse, "PTR"),)
    if answer.is_transient:
        return [unchecked("bulk.fcrdns", f"the PTR record of {ip}", answer.detail, ip=ip)], None
    names = [
        name.to_text(omit_final_dot=True)
        for name in answer.records[:MAX_PTR_NAMES]
        if isinstance(name, dns.name.Name)
    ]
    if not names:
        return [
            error(
                "bulk.fcrdns",
                f"{ip} has no PTR record; large receivers refuse or junk mail from "
                "addresses without reverse DNS",
                f"ask whoever runs the address block of {ip} to set its PTR record to the "
                "host's name, and give that name an A/AAAA record with the address",
                ip=ip,
            )
        ], None

    rdtype = "A" if address.version == 4 else "AAAA"
    queries = []
    for name in names:
        try:
            queries.append(Query.of(name, rdtype))
        except ValueError:
            continue
    forward = (yield tuple(queries)) if queries else ()
    for query, found in zip(queries, forward, strict=True):
        if any(_same(address, record) for record in found.records):
            return [
                ok(
                    "bulk.fcrdns",
                    f"{ip} has reverse DNS {query.text}, which points back",
                    ip=ip,
                    name=query.text,
                )
            ], query.text
    return [
        error(
            "bulk.fcrdns",
            f"{ip} has the PTR name(s) {', '.join(names)}, but none has an {rdtype} record "
            f"holding {ip} (reverse DNS is not forward-confirmed)",
            f"add an {rdtype} record for {names[0]} with the address {ip}, or change the PTR",
            ip=ip,
            names=names,
        )
    ], None


def spf_finding(ip: str, mail_from: str, result: SpfResult) -> Finding:
    """Whether SPF authorises ``ip`` to send with ``mail_from``. Check id ``bulk.spf-ip``."""
    details = {
        "ip": ip,
        "mail_from": mail_from,
        "result": result.result.value,
        "reason": result.reason,
    }
    if result.result is SpfWord.PASS:
        return ok("bulk.spf-ip", f"SPF authorises {ip} for {result.domain}", **details)
    if result.result is SpfWord.TEMPERROR:
        return unchecked("bulk.spf-ip", f"SPF for {ip}", result.reason, **details)
    return error(
        "bulk.spf-ip",
        f"SPF gives {result.result} for {ip} sending as {mail_from}: {result.reason}",
        f"add ip4:/ip6:{ip} (or an include of your provider) to the SPF record of {result.domain}",
        **details,
    )


def _same(address: ipaddress.IPv4Address | ipaddress.IPv6Address, record: object) -> bool:
    try:
        return ipaddress.ip_address(str(record)) == address
    except ValueError:
        return False
