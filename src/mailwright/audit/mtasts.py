"""MTA-STS (RFC 8461): the TXT record, the policy file, and their audit.

A domain opts in with a TXT record at ``_mta-sts.DOMAIN`` (``v=STSv1;
id=...``, §3.1) and serves its policy at
``https://mta-sts.DOMAIN/.well-known/mta-sts.txt`` (§3.3) over HTTPS with a
certificate valid for that name. The policy is lines of ``key: value``
(§3.2): ``version: STSv1``, ``mode`` (enforce, testing or none),
``max_age`` in seconds and one ``mx`` line per pattern of the exchangers
senders may deliver to. In enforce mode a sender refuses to deliver to an
MX host that no pattern matches, so a policy that forgets a host breaks
inbound mail; that is the main thing this audit looks for.

Everything here is pure: the record and policy parsers, the pattern match
(§4.1) and the findings over a fetched policy. The fetch itself lives in
:mod:`mailwright.audit._https`.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Sequence
from dataclasses import dataclass

from mailwright.audit.finding import Finding, error, info, ok, warning
from mailwright.dns.queries import Answer, Answers, Query, Step

#: Largest max_age allowed (§3.2: about a year).
MAX_AGE_LIMIT = 31_557_600
#: Shorter max_age values draw a warning (§3.2 recommends weeks or more).
RECOMMENDED_MAX_AGE = 604_800

MODES = ("enforce", "testing", "none")
_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_MAX_AGE = re.compile(r"[0-9]{1,10}")


@dataclass(frozen=True, slots=True)
class StsRecord:
    """A valid ``_mta-sts`` TXT record: its policy id."""

    id: str


@dataclass(frozen=True, slots=True)
class StsPolicy:
    """A parsed policy file (RFC 8461 §3.2)."""

    mode: str
    max_age: int
    mx: tuple[str, ...]


def is_sts_record(text: bytes) -> bool:
    """True for TXT data that starts with the STS version (§3.1)."""
    return text.startswith(b"v=STSv1")


def parse_sts_record(text: bytes | str) -> StsRecord | str:
    """Parse ``v=STSv1; id=...`` (§3.1); the reason as text when it is not valid."""
    raw = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    fields = [part.strip() for part in raw.split(";")]
    if not fields or fields[0] != "v=STSv1":
        return "the record does not start with 'v=STSv1'"
    values: dict[str, str] = {}
    for part in fields[1:]:
        if not part:
            continue
        name, equals, value = part.partition("=")
        if not equals:
            return f"{part[:40]!r} is not a key=value pair"
        values.setdefault(name.strip(), value.strip())
    policy_id = values.get("id")
    if policy_id is None:
        return "no id= field"
    if not _ID.fullmatch(policy_id):
        return f"id={policy_id[:40]!r} is not 1 to 32 letters and digits"
    return StsRecord(policy_id)


def parse_policy(text: str) -> StsPolicy | str:
    """Parse a policy file (§3.2); the reason as text when it is not valid.

    Unknown keys are ignored, as §3.2 asks; a repeated key other than ``mx``
    keeps its first value.
    """
    values: dict[str, str] = {}
    patterns: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        if not colon:
            return f"line {line[:40]!r} is not 'key: value'"
        key, value = key.strip(), value.strip()
        if key == "mx":
            patterns.append(value.lower().rstrip("."))
        else:
            values.setdefault(key, value)

    if values.get("version") != "STSv1":
        return "no 'version: STSv1' line"
    mode = values.get("mode")
    if mode not in MODES:
        return f"mode {mode!r} is not enforce, testing or none"
    max_age = values.get("max_age", "")
    if not _MAX_AGE.fullmatch(max_age) or int(max_age) > MAX_AGE_LIMIT:
        return f"max_age {max_age!r} is not a number of seconds up to {MAX_AGE_LIMIT}"
    if mode != "none" and not patterns:
        return "no mx line; enforce and testing policies need one per MX pattern"
    return StsPolicy(mode, int(max_age), tuple(patterns))


def mx_matches(host: str, pattern: str) -> bool:
    """Whether an MX host name matches a policy pattern (§4.1).

    ``*.example.com`` matches one label in place of the star, and only one;
    otherwise the names must be equal, without regard to case.
    """
    name = host.lower().rstrip(".")
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        first, dot, rest = name.partition(".")
        return bool(first) and bool(dot) and rest == pattern[2:]
    return name == pattern


def policy_findings(domain: str, policy: StsPolicy, hosts: Sequence[str]) -> list[Finding]:
    """What a valid policy means for ``domain`` with the MX ``hosts`` it has now."""
    details = {"mode": policy.mode, "max_age": policy.max_age, "mx": list(policy.mx)}
    findings = [ok("mta-sts.policy", f"the MTA-STS policy of {domain} is valid", **details)]

    if policy.mode == "none":
        findings.append(
            info(
                "mta-sts.mode",
                "the policy is mode: none: senders are asked to forget it (MTA-STS withdrawn)",
                "set mode: testing, then enforce, if the domain should use MTA-STS",
            )
        )
        return findings
    if policy.mode == "testing":
        findings.append(
            info(
                "mta-sts.mode",
                "the policy is mode: testing: senders report failures but deliver anyway",
                "switch to mode: enforce once TLS reports show no failures",
            )
        )
    else:
        findings.append(ok("mta-sts.mode", "the policy is mode: enforce"))

    if policy.max_age < RECOMMENDED_MAX_AGE:
        findings.append(
            warning(
                "mta-sts.max-age",
                f"max_age is {policy.max_age} s: senders forget the policy that soon, so an "
                "attacker who blocks the fetch can strip TLS again",
                f"use a max_age of at least {RECOMMENDED_MAX_AGE} (a week; RFC 8461 §3.2 "
                "recommends weeks or more)",
                max_age=policy.max_age,
            )
        )

    unmatched = [host for host in hosts if not any(mx_matches(host, p) for p in policy.mx)]
    if unmatched:
        fix = "add an mx line for " + ", ".join(unmatched) + " to the policy, change its id="
        if policy.mode == "enforce":
            findings.append(
                error(
                    "mta-sts.mx",
                    "MX host(s) " + ", ".join(unmatched) + " match no mx pattern of the "
                    "policy: senders that enforce MTA-STS will not deliver to them",
                    fix + " in the _mta-sts TXT record",
                    unmatched=unmatched,
                )
            )
        else:
            findings.append(
                warning(
                    "mta-sts.mx",
                    "MX host(s) " + ", ".join(unmatched) + " match no mx pattern of the "
                    "policy: mail would fail to them once the mode is enforce",
                    fix + " in the _mta-sts TXT record",
                    unmatched=unmatched,
                )
            )
    elif hosts:
        findings.append(ok("mta-sts.mx", "every MX host matches the policy", hosts=list(hosts)))
    return findings


def record_findings(domain: str, texts: Sequence[bytes]) -> tuple[list[Finding], bool]:
    """Findings about the ``_mta-sts`` TXT data, and whether senders would fetch the policy."""
    name = f"_mta-sts.{domain}"
    records = [text for text in texts if is_sts_record(text)]
    if not records:
        return [
            info(
                "mta-sts.record",
                f"{domain} does not use MTA-STS (no TXT record at {name}): senders may deliver "
                "to it without TLS when an attacker strips STARTTLS",
                f"serve a policy at https://mta-sts.{domain}/.well-known/mta-sts.txt and "
                f'publish "v=STSv1; id=<date>" at {name} (RFC 8461)',
            )
        ], False
    if len(records) > 1:
        return [
            error(
                "mta-sts.record",
                f"{name} has {len(records)} STS records; senders then ignore MTA-STS "
                "(RFC 8461 §3.1)",
                f"keep one TXT record starting 'v=STSv1' at {name}",
            )
        ], False
    parsed = parse_sts_record(records[0])
    if isinstance(parsed, str):
        return [
            error(
                "mta-sts.record",
                f"the TXT record at {name} is invalid: {parsed}",
                'publish "v=STSv1; id=<1 to 32 letters and digits>" (RFC 8461 §3.1)',
                record=records[0].decode("ascii", "replace"),
            )
        ], False
    return [ok("mta-sts.record", f"{name} announces policy id {parsed.id}", id=parsed.id)], True


@dataclass(frozen=True, slots=True)
class StsLookups:
    """The DNS answers MTA-STS and TLS-RPT need, asked in one step."""

    sts: Answer
    addresses: tuple[Answer, Answer]
    tlsrpt: Answer


def sts_lookups(domain: str) -> Generator[Step, Answers, StsLookups]:
    """Ask for ``_mta-sts`` TXT, the policy host's addresses and ``_smtp._tls`` TXT."""
    sts, a, aaaa, tlsrpt = yield (
        Query.of(f"_mta-sts.{domain}", "TXT"),
        Query.of(f"mta-sts.{domain}", "A"),
        Query.of(f"mta-sts.{domain}", "AAAA"),
        Query.of(f"_smtp._tls.{domain}", "TXT"),
    )
    return StsLookups(sts, (a, aaaa), tlsrpt)
