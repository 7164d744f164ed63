"""Auditing a sending domain: every check, run against one resolver, into one report.

:func:`audit_domain` is the asyncio edge of the audit. The DNS checks of
each area are sans-IO evaluators (:mod:`.spf`, :mod:`.dkim`, :mod:`.dmarc`,
:mod:`.mx`, :mod:`.mtasts`); they run concurrently on the shared
:class:`~mailwright.dns.queries.CachingResolver`, so a name several checks
need is asked once. What needs more than DNS follows: the MTA-STS policy
fetch (HTTPS, :mod:`._https`), DKIM verification of a sample message, and
SPF and reverse DNS of sending addresses (:mod:`.bulk`). Checks that need
input the caller did not give say so as info findings.

Failures never escape as exceptions: a DNS timeout or SERVFAIL becomes an
error finding saying what could not be checked, and a policy that cannot
be fetched is a finding too.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

from mailwright.audit import _https, mtasts
from mailwright.audit.bulk import fcrdns, message_findings, spf_finding
from mailwright.audit.dkim import audit_dkim
from mailwright.audit.dmarc import DmarcAudit, audit_dmarc
from mailwright.audit.finding import Finding, error, info, unchecked, warning
from mailwright.audit.mx import MxAudit, audit_mx
from mailwright.audit.report import Report
from mailwright.audit.spf import audit_spf
from mailwright.audit.tlsrpt import tlsrpt_findings
from mailwright.auth.dkim import verify_message
from mailwright.auth.message import parse_message
from mailwright.auth.spf import check_spf
from mailwright.dns.queries import Answer, CachingResolver, run


@dataclass(frozen=True, slots=True)
class AuditOptions:
    """What the caller adds to the domain: selectors, a sample message, sending addresses.

    ``https_port`` and ``ssl_context`` change how the MTA-STS policy is
    fetched (tests serve it from a loopback server with their own CA);
    ``fetch_timeout`` bounds the fetch; ``now`` is the time DKIM signatures
    are judged at (default: the clock).
    """

    selectors: Sequence[str] = ()
    message: bytes | None = None
    mail_from: str | None = None
    ips: Sequence[str] = ()
    https_port: int = 443
    ssl_context: ssl.SSLContext | None = None
    fetch_timeout: float = 10.0
    now: float | None = None


async def audit_domain(
    resolver: CachingResolver, domain: str, options: AuditOptions | None = None
) -> Report:
    """Run every check on ``domain`` (lower case, no final dot) and return the report.

    Never raises for what DNS, the network or the message hold; those
    become findings.
    """
    options = options or AuditOptions()
    spf, dkim, dmarc, mx, sts = await asyncio.gather(
        run(audit_spf(domain), resolver),
        run(audit_dkim(domain, options.selectors), resolver),
        run(audit_dmarc(domain), resolver),
        run(audit_mx(domain), resolver),
        run(mtasts.sts_lookups(domain), resolver),
    )

    findings: list[Finding] = [*spf, *dkim, *dmarc.findings, *mx.findings]
    findings.extend(await _mta_sts(domain, mx, sts, options))
    findings.extend(_tlsrpt(domain, sts.tlsrpt))
    findings.extend(await _bulk(resolver, domain, dmarc, options))
    return Report(domain, tuple(findings))


async def _mta_sts(
    domain: str, mx: MxAudit, sts: mtasts.StsLookups, options: AuditOptions
) -> list[Finding]:
    """The MTA-STS record, and the policy it announces fetched and compared with the MX."""
    if sts.sts.is_transient:
        return [unchecked("mta-sts.dns", "the MTA-STS record", _detail(sts.sts))]
    if mx.null:
        return [info("mta-sts.record", f"MTA-STS does not apply: {domain} receives no mail")]

    findings, announced = mtasts.record_findings(domain, _texts(sts.sts))
    if not announced:
        return findings

    host = f"mta-sts.{domain}"
    failed = [answer for answer in sts.addresses if answer.is_transient]
    if failed:
        findings.append(unchecked("mta-sts.dns", f"the address of {host}", _detail(failed[0])))
        return findings
    addresses = [str(record) for answer in sts.addresses for record in answer.records]
    try:
        response = await _https.fetch_policy(
            host,
            addresses,
            port=options.https_port,
            context=options.ssl_context,
            time_limit=options.fetch_timeout,
        )
    except _https.FetchError as exc:
        findings.append(_unfetchable(domain, str(exc)))
        return findings

    url = f"https://{host}{_https.POLICY_PATH}"
    if response.status != 200:
        moved = (
            " (RFC 8461 §3.3: senders follow no redirect)" if 300 <= response.status < 400 else ""
        )
        findings.append(_unfetchable(domain, f"{url} answered HTTP {response.status}{moved}"))
        return findings
    media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "text/plain":
        findings.append(
            warning(
                "mta-sts.policy",
                f"{url} is served as {media_type or 'no media type'!s}, not text/plain "
                "(RFC 8461 §3.2)",
                "serve the policy file with Content-Type: text/plain",
            )
        )

    policy = mtasts.parse_policy(response.body.decode("utf-8", "replace"))
    if isinstance(policy, str):
        findings.append(
            error(
                "mta-sts.policy",
                f"the MTA-STS policy at {url} is invalid: {policy}; senders ignore it",
                "write the policy as version: STSv1, mode:, max_age: and one mx: line per "
                "MX host pattern (RFC 8461 §3.2)",
                body=response.body[:2000].decode("utf-8", "replace"),
            )
        )
        return findings
    if not mx.checked:
        findings.append(info("mta-sts.mx", "the MX hosts could not be compared with the policy"))
    findings.extend(mtasts.policy_findings(domain, policy, mx.hosts if mx.checked else ()))
    return findings


def _unfetchable(domain: str, reason: str) -> Finding:
    return error(
        "mta-sts.policy",
        f"the MTA-STS policy of {domain} could not be fetched: {reason}; senders without a "
        "cached policy do not use MTA-STS, those with one keep the old policy",
        f"serve the policy at https://mta-sts.{domain}{_https.POLICY_PATH} over HTTPS with a "
        f"certificate valid for mta-sts.{domain}, answering 200 without a redirect",
        reason=reason,
    )


def _tlsrpt(domain: str, answer: Answer) -> list[Finding]:
    if answer.is_transient:
        return [unchecked("tls-rpt.dns", "the TLS reporting record", _detail(answer))]
    return tlsrpt_findings(domain, _texts(answer))


async def _bulk(
    resolver: CachingResolver, domain: str, dmarc: DmarcAudit, options: AuditOptions
) -> list[Finding]:
    """The sample-message and sending-address checks, or why they were not run."""
    findings: list[Finding] = []
    if options.message is None:
        findings.append(
            info(
                "bulk.message",
                "no sample message given: DKIM alignment and one-click unsubscribe were not "
                "checked",
                "run again with --message FILE.eml, a message as your bulk mail is sent",
            )
        )
    else:
        message = parse_message(options.message)
        now = options.now if options.now is not None else time.time()
        results = await verify_message(resolver, message, now=now)
        findings.extend(
            message_findings(
                domain, message, results, mail_from=options.mail_from, record=dmarc.record
            )
        )

    if not options.ips:
        findings.append(
            info(
                "bulk.ip",
                "no sending address given: reverse DNS and SPF of the sending hosts were not "
                "checked",
                "run again with --ip ADDRESS for each address your mail leaves from",
            )
        )
        return findings

    mail_from = options.mail_from or f"postmaster@{domain}"
    for ip in options.ips:
        reverse, name = await run(fcrdns(ip), resolver)
        findings.extend(reverse)
        result = await check_spf(resolver, ip=ip, mail_from=mail_from, helo=name or domain)
        findings.append(spf_finding(ip, mail_from, result))
    return findings


def _texts(answer: Answer) -> list[bytes]:
    if not answer.found:
        return []
    return [text for text in answer.records if isinstance(text, bytes)]


def _detail(answer: Answer) -> str:
    return f"{answer.query.text} {answer.query.rdtype}: {answer.detail or answer.status.value}"
