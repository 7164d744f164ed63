"""Auditing a domain's MX records (RFC 5321 §5.1, RFC 7505, RFC 2181 §10.3).

A sending domain also receives: bounces go to its MAIL FROM domain and
replies to its From domain, so its MX records matter to deliverability.
The checks: the domain has MX records (without them, senders fall back to
its address records, the "implicit MX"); a null MX (``0 .``, RFC 7505)
stands alone; each exchanger is a host name, not an address written as a
name nor an alias (an MX target must not be a CNAME, RFC 2181 §10.3), and
has an A or AAAA record. :class:`MxAudit` also carries the exchanger names,
which the MTA-STS check compares with the policy's patterns.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Generator
from dataclasses import dataclass, field

import dns.name

from mailwright.audit.finding import Finding, error, info, ok, unchecked, warning
from mailwright.dns.mx import DEFAULT_MAX_HOSTS, LookupStatus
from mailwright.dns.queries import Answer, Answers, Query, Step


@dataclass(frozen=True, slots=True)
class MxAudit:
    """The findings, the exchanger names in preference order, and whether MX is null."""

    findings: list[Finding] = field(default_factory=list)
    hosts: tuple[str, ...] = ()
    null: bool = False
    checked: bool = True


def audit_mx(domain: str) -> Generator[Step, Answers, MxAudit]:
    """Audit the MX records of ``domain`` and the exchangers they name; never raises.

    Check ids: ``mx.records``, ``mx.null``, ``mx.literal``, ``mx.cname``,
    ``mx.address``, ``mx.dns``.
    """
    [answer] = yield (Query.of(domain, "MX"),)
    if answer.is_transient:
        return MxAudit(
            [unchecked("mx.dns", f"the MX records of {domain}", _detail(answer))], checked=False
        )
    if answer.status is LookupStatus.NXDOMAIN:
        return MxAudit(
            [
                error(
                    "mx.records",
                    f"{domain} does not exist in DNS: mail from it bounces at most receivers",
                    f"create the zone of {domain} with MX, SPF and DMARC records",
                )
            ]
        )
    if not answer.found:
        return MxAudit(
            [
                warning(
                    "mx.records",
                    f"{domain} has no MX record: bounces and replies go to its address "
                    "records (the implicit MX of RFC 5321 §5.1), if it has any",
                    f"publish MX records for the hosts that receive mail for {domain}, or a "
                    'null MX ("0 .") if it receives none',
                )
            ]
        )

    records = sorted(
        (preference, exchange)
        for preference, exchange in answer.records
        if isinstance(exchange, dns.name.Name)
    )
    null = [record for record in records if record[1] == dns.name.root]
    if null:
        return MxAudit([_null(domain, len(records))], null=len(records) == 1)

    hosts = tuple(dict.fromkeys(exchange.to_text(omit_final_dot=True) for _, exchange in records))
    findings: list[Finding] = []
    looked_up: list[str] = []
    queries: list[Query] = []
    for host in hosts[:DEFAULT_MAX_HOSTS]:
        if _is_address(host):
            findings.append(
                error(
                    "mx.literal",
                    f"the MX record of {domain} names {host}, an IP address written as a "
                    "name: senders look it up as a host name and find nothing",
                    "give the host a name (A record) and point the MX record at that name",
                    host=host,
                )
            )
            continue
        looked_up.append(host)
        queries.extend(Query.of(host, rdtype) for rdtype in ("CNAME", "A", "AAAA"))

    answers = (yield tuple(queries)) if queries else ()
    for index, host in enumerate(looked_up):
        cname, a, aaaa = answers[3 * index : 3 * index + 3]
        findings.extend(_exchanger(domain, host, cname, a, aaaa))
    # TODO: exchangers past DEFAULT_MAX_HOSTS are not looked up; say so when there are any.

    if not any(finding.severity == "error" for finding in findings):
        findings.append(
            ok(
                "mx.records",
                f"{domain} has {len(hosts)} MX host(s), each with an address",
                hosts=list(hosts),
            )
        )
    return MxAudit(findings, hosts)


def _null(domain: str, count: int) -> Finding:
    if count > 1:
        return error(
            "mx.null",
            f'{domain} mixes a null MX ("0 .") with {count - 1} other MX record(s); a null '
            "MX must be the only one (RFC 7505 §3)",
            'remove the "0 ." record if the domain receives mail, else every other MX record',
        )
    return info(
        "mx.null",
        f"{domain} has a null MX (RFC 7505): it receives no mail, so bounces and replies to "
        "it are lost, and receivers may refuse mail whose MAIL FROM is in it (RFC 7505 §4.2)",
        "use another domain, one that receives bounces, in the MAIL FROM of bulk mail, and "
        "keep From addresses people can reply to",
    )


def _exchanger(domain: str, host: str, cname: Answer, a: Answer, aaaa: Answer) -> list[Finding]:
    """The findings for one exchanger's CNAME, A and AAAA answers."""
    failed = next((answer for answer in (cname, a, aaaa) if answer.is_transient), None)
    if failed is not None:
        return [unchecked("mx.dns", f"the MX host {host}", _detail(failed), host=host)]
    if cname.found:
        target = cname.records[0].to_text(omit_final_dot=True) if cname.records else "?"
        return [
            error(
                "mx.cname",
                f"the MX host {host} of {domain} is an alias (CNAME) of {target}; MX "
                "records must name a host directly (RFC 2181 §10.3, RFC 5321 §5.1)",
                f"point the MX record at {target} instead",
                host=host,
                target=target,
            )
        ]
    if not a.found and not aaaa.found:
        state = "does not exist" if a.status is LookupStatus.NXDOMAIN else "has no A or AAAA"
        return [
            error(
                "mx.address",
                f"the MX host {host} of {domain} {state}: mail to the domain cannot be "
                "delivered there",
                f"publish an A (and AAAA) record for {host}, or remove it from the MX records",
                host=host,
            )
        ]
    return []


def _is_address(host: str) -> bool:
    """True for a name that is an IP address (``192.0.2.1``), which no MX should name."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _detail(answer: Answer) -> str:
    return f"{answer.query.text} {answer.query.rdtype}: {answer.detail or answer.status.value}"
