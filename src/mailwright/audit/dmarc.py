"""Auditing a domain's DMARC record (RFC 9989) and its reporting addresses (RFC 9990).

The record that applies is found the way receivers find it, with the DNS
Tree Walk of :mod:`mailwright.auth.dmarc.discovery`: the domain's own
``_dmarc`` record, else its Organizational Domain's. Then:

* the TXT data at ``_dmarc.DOMAIN`` must be one record starting ``v=DMARC1``
  (text that is not, or two records, leave the domain without DMARC);
* tags discarded for syntax errors are reported (RFC 9989 §4.8 keeps the
  rest of the record, but the Domain Owner's intent is lost);
* ``p=none`` (or test mode) asks receivers to do nothing: fine for a start,
  a warning for a bulk sender that has had time to read its reports;
* without ``rua`` nobody sends aggregate reports, the only way to see who
  sends as the domain;
* a reporting address in another Organizational Domain receives reports
  only if that domain agrees, by publishing a TXT record starting
  ``v=DMARC1`` at ``POLICYDOMAIN._report._dmarc.DESTINATION`` (RFC 9990 §3,
  RFC 7489 §7.1); otherwise reporters drop the address.

Organizational Domains of reporting addresses are compared with the Public
Suffix List (:func:`~mailwright.auth.dmarc.psl_organizational_domain`), as
the reporters deployed today do.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

from mailwright.audit.finding import Finding, error, ok, unchecked, warning
from mailwright.auth.dmarc import (
    Policy,
    Record,
    RecordError,
    ReportUri,
    parse_record,
    psl_organizational_domain,
)
from mailwright.auth.dmarc.discovery import build_walk, look_up_records, read_answer, walk_names
from mailwright.dns.queries import Answer, Answers, Query, Step


@dataclass(frozen=True, slots=True)
class DmarcAudit:
    """The findings, and the record that applies (for the bulk-sender checks)."""

    findings: list[Finding] = field(default_factory=list)
    record: Record | None = None
    policy_domain: str | None = None


def audit_dmarc(domain: str) -> Generator[Step, Answers, DmarcAudit]:
    """Audit the DMARC record that applies to ``domain``; never raises.

    Check ids: ``dmarc.record``, ``dmarc.syntax``, ``dmarc.policy``,
    ``dmarc.rua``, ``dmarc.external``, ``dmarc.dns``.
    """
    name = f"_dmarc.{domain}"
    [answer] = yield (Query.of(name, "TXT"),)
    if answer.is_transient:
        return DmarcAudit([unchecked("dmarc.dns", f"the DMARC record {name}", _detail(answer))])

    findings = _own_answer(domain, answer)
    known = {domain: read_answer(domain, answer)}
    names = walk_names(domain)
    yield from look_up_records(names, known)
    walk = build_walk(domain, names, known)
    applies = walk.policy_record()

    if applies is None or applies.record is None:
        if walk.failure is not None:
            findings.append(unchecked("dmarc.dns", "the DMARC tree walk", walk.failure.detail))
        elif not findings:
            findings.append(
                error(
                    "dmarc.record",
                    f"no DMARC record applies to {domain}: receivers cannot act on "
                    "unauthenticated mail, and Gmail and Yahoo require one of bulk senders",
                    f'publish a TXT record at {name}: "v=DMARC1; p=none; '
                    f'rua=mailto:dmarc-reports@{domain}", then raise p= as reports allow',
                )
            )
        return DmarcAudit(findings)

    record, policy_domain = applies.record, applies.domain
    inherited = policy_domain != domain
    if inherited:
        findings.append(
            ok(
                "dmarc.record",
                f"{domain} has no DMARC record of its own; the record of {policy_domain} applies",
                policy_domain=policy_domain,
                record=record.to_text(),
            )
        )
    else:
        findings.append(
            ok("dmarc.record", f"{name} holds a DMARC record", record=record.to_text())
        )

    findings.extend(_problems(policy_domain, record))
    findings.append(_policy(domain, record, inherited))
    findings.extend((yield from _reporting(policy_domain, record)))
    return DmarcAudit(findings, record, policy_domain)


def _own_answer(domain: str, answer: Answer) -> list[Finding]:
    """Findings about the TXT data at ``_dmarc.DOMAIN`` that make it no record at all."""
    name = f"_dmarc.{domain}"
    texts = [text for text in answer.records if isinstance(text, bytes)] if answer.found else []
    parsed = [parse_record(text) for text in texts]
    records = [record for record in parsed if isinstance(record, Record)]
    if len(records) > 1:
        return [
            error(
                "dmarc.record",
                f"{name} has {len(records)} DMARC records; receivers then ignore all of them "
                "(RFC 9989 §4.10)",
                f"keep exactly one TXT record starting 'v=DMARC1' at {name}",
                records=[text.decode("utf-8", "replace") for text in texts],
            )
        ]
    if records:
        return []
    attempts = [
        (text, problem)
        for text, problem in zip(texts, parsed, strict=True)
        if isinstance(problem, RecordError) and b"dmarc" in text.lower()
    ]
    return [
        error(
            "dmarc.syntax",
            f"the TXT record at {name} is not a DMARC record: {problem}; receivers ignore it",
            "start the record with exactly 'v=DMARC1;' (capitals as shown)",
            record=text.decode("utf-8", "replace"),
        )
        for text, problem in attempts
    ]


def _problems(policy_domain: str, record: Record) -> list[Finding]:
    """One finding listing the tags a receiver discards from the record."""
    if not record.problems:
        return []
    listed = "; ".join(str(problem) for problem in record.problems)
    message = f"receivers discard parts of the DMARC record of {policy_domain}: {listed}"
    fix = "correct the tags named (see RFC 9989 §4.7 for their values)"
    problems = [str(problem) for problem in record.problems]
    if record.has_invalid_policy:
        return [
            error(
                "dmarc.syntax",
                message + "; an invalid policy counts as p=none",
                fix,
                problems=problems,
            )
        ]
    return [warning("dmarc.syntax", message, fix, problems=problems)]


def _policy(domain: str, record: Record, inherited: bool) -> Finding:
    """How strict the policy is for ``domain``: none is a warning, test mode too."""
    policy = record.subdomain_policy if inherited else record.policy
    tag = "sp" if inherited and record.sp is not None else "p"
    details = {"policy": policy.value, "test_mode": record.test_mode, "pct": record.pct}
    if policy is Policy.NONE:
        return warning(
            "dmarc.policy",
            f"the DMARC policy for {domain} is {tag}=none: receivers are asked to take no "
            "action on mail that fails DMARC (monitoring only)",
            f"once aggregate reports show your mail aligned, move to {tag}=quarantine, "
            f"then {tag}=reject",
            **details,
        )
    if record.test_mode:
        return warning(
            "dmarc.policy",
            f"the DMARC policy for {domain} is {tag}={policy} in test mode (t=y or pct=0): "
            "receivers apply a milder policy",
            "remove t=y (or pct=0) once reports look right",
            **details,
        )
    if record.sampling_percent is not None:
        return warning(
            "dmarc.policy",
            f"the DMARC policy {tag}={policy} applies to pct={record.pct}% of failing mail "
            "only; RFC 9989 dropped pct and receivers may ignore it",
            "remove pct= (or set t=y while testing)",
            **details,
        )
    return ok("dmarc.policy", f"the DMARC policy for {domain} is {tag}={policy}", **details)


def _reporting(policy_domain: str, record: Record) -> Generator[Step, Answers, list[Finding]]:
    """Findings about rua= and ruf=, with the external authorisation checks (RFC 9990 §3)."""
    findings: list[Finding] = []
    if not any(uri.mailbox for uri in record.rua):
        findings.append(
            warning(
                "dmarc.rua",
                f"the DMARC record of {policy_domain} has no rua=: nobody sends you aggregate "
                "reports, so you cannot see who sends mail as the domain",
                f"add rua=mailto:dmarc-reports@{policy_domain} (or a reporting service's address)",
            )
        )
    else:
        findings.append(
            ok("dmarc.rua", "aggregate reports are requested", rua=[u.uri for u in record.rua])
        )

    own = psl_organizational_domain(policy_domain)
    checks: list[tuple[str, str, Query]] = []
    for tag, uris in (("rua", record.rua), ("ruf", record.ruf)):
        for uri in uris:
            destination = _destination(uri)
            if destination is None:
                findings.append(_unusable(tag, uri))
                continue
            if psl_organizational_domain(destination) == own:
                continue
            try:
                query = Query.of(f"{policy_domain}._report._dmarc.{destination}", "TXT")
            except ValueError:
                continue
            checks.append((tag, uri.uri, query))

    queries = tuple(dict.fromkeys(query for _, _, query in checks))
    answers = (yield queries) if queries else ()
    by_query = dict(zip(queries, answers, strict=True))
    for tag, uri_text, query in checks:
        findings.append(_authorisation(tag, uri_text, by_query[query]))
    return findings


def _destination(uri: ReportUri) -> str | None:
    """The domain of a mailto: URI's mailbox, lower case; None for other URIs."""
    mailbox = uri.mailbox
    if mailbox is None:
        return None
    return mailbox.rpartition("@")[2].rstrip(".").lower() or None


def _unusable(tag: str, uri: ReportUri) -> Finding:
    return warning(
        "dmarc.rua" if tag == "rua" else "dmarc.external",
        f"{tag}={uri.uri} is not a mailto: address; reporters are only required to "
        "support mailto: (RFC 9989 §4.7) and skip other URIs",
        f"use a mailto: URI in {tag}=",
        uri=uri.uri,
    )


def _authorisation(tag: str, uri: str, answer: Answer) -> Finding:
    """Whether the destination of an external reporting URI has agreed to take reports."""
    name = answer.query.text
    details = {"tag": tag, "uri": uri, "record_name": name}
    if answer.is_transient:
        return unchecked("dmarc.external", f"the authorisation of {tag}={uri}", _detail(answer))
    texts = [text for text in answer.records if isinstance(text, bytes)] if answer.found else []
    if any(text.lstrip().startswith(b"v=DMARC1") for text in texts):
        return ok("dmarc.external", f"{tag}={uri} is an external address that agreed", **details)
    destination = name.split("._report._dmarc.", 1)[1]
    return error(
        "dmarc.external",
        f"{tag}={uri} is in another organisation's domain, which has not agreed to receive "
        f"the reports: reporters drop it (RFC 9990 §3, RFC 7489 §7.1)",
        f'ask the owner of {destination} to publish a TXT record "v=DMARC1" at {name}',
        **details,
    )


def _detail(answer: Answer) -> str:
    return f"{answer.query.text} {answer.query.rdtype}: {answer.detail or answer.status.value}"
