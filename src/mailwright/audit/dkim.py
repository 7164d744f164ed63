"""Auditing DKIM key records (RFC 6376 §3.6.1, RFC 8301, RFC 8463) for given selectors.

DNS cannot list a domain's selectors, so the operator names them
(``--selector``). For each, the key record at ``selector._domainkey.domain``
must exist, parse, hold a key of a known type that loads, and restrict
neither hashes nor services so that sha256 signatures for email verify.
RSA keys under 1024 bits are refused by verifiers (RFC 8301 §3.2: an error
here), and under 2048 bits are below what RFC 8301 recommends signers use
(a warning). ``t=y`` asks verifiers to treat failures as if unsigned, which
is right only while testing. An empty ``p=`` revokes a key: fine for a
retired selector, an error when it is the only selector given.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence

from mailwright.audit.finding import Finding, error, info, ok, unchecked, warning
from mailwright.auth.dkim import KeyRecord, parse_key_record
from mailwright.auth.dkim.algorithms import key_bits
from mailwright.auth.dkim.keys import MIN_RSA_BITS, load_public_key
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Answers, Query, Step

#: RSA keys smaller than this draw a warning (RFC 8301 §3.2: signers SHOULD use 2048).
RECOMMENDED_RSA_BITS = 2048

_NEW_KEY = (
    "generate a new 2048-bit RSA (or Ed25519 plus RSA) key, publish it under a new "
    "selector, sign with it, then revoke the old selector"
)


def audit_dkim(domain: str, selectors: Sequence[str]) -> Generator[Step, Answers, list[Finding]]:
    """Audit the key record of each of ``selectors`` under ``domain``; never raises.

    Check ids: ``dkim.selectors``, ``dkim.key``, ``dkim.key-size``,
    ``dkim.testing``, ``dkim.revoked``, ``dkim.dns``.
    """
    if not selectors:
        return [
            info(
                "dkim.selectors",
                "no DKIM selector given, so no key was checked (DNS cannot list selectors)",
                "run again with --selector NAME for each selector the domain signs with "
                "(the s= of its DKIM-Signature fields)",
            )
        ]

    names = list(dict.fromkeys(selectors))
    queries: list[Query] = []
    findings: list[Finding] = []
    for selector in names:
        try:
            queries.append(Query.of(f"{selector}._domainkey.{domain}", "TXT"))
        except ValueError as exc:
            findings.append(
                error(
                    "dkim.key",
                    f"selector {selector!r} does not make a DNS name: {exc}",
                    "give the selector as it appears in s= of the signatures",
                    selector=selector,
                )
            )
    answers = (yield tuple(queries)) if queries else ()

    per_selector = [_audit_key(answer) for answer in answers]
    usable = any(key_ok for _, key_ok in per_selector)
    for selector_findings, _ in per_selector:
        for finding in selector_findings:
            if finding.check == "dkim.revoked" and not usable:
                finding = error(
                    "dkim.revoked",
                    finding.message + "; no selector given has a usable key",
                    "publish a key under a new selector and sign with it",
                    **finding.details,
                )
            findings.append(finding)
    return findings


def _audit_key(answer: Answer) -> tuple[list[Finding], bool]:
    """The findings for one key record answer, and whether it holds a usable key."""
    name = answer.query.text
    selector = name.split("._domainkey.", 1)[0]
    where = {"selector": selector, "name": name}
    if answer.is_transient:
        return [unchecked("dkim.dns", f"the key record {name}", _detail(answer), **where)], False
    if answer.status is LookupStatus.NXDOMAIN or not answer.found:
        return [
            error(
                "dkim.key",
                f"no DKIM key record at {name}: signatures with s={selector} give permerror",
                f"publish the selector's public key at {name} as a TXT record "
                '"v=DKIM1; k=rsa; p=<base64 public key>"',
                **where,
            )
        ], False

    texts = [text for text in answer.records if isinstance(text, bytes)]
    parsed = [parse_key_record(text) for text in texts]
    records = [record for record in parsed if isinstance(record, KeyRecord)]
    if not records:
        reason = str(getattr(parsed[0], "reason", "not a key record")) if parsed else "empty"
        return [
            error(
                "dkim.key",
                f"the key record at {name} is invalid: {reason}",
                'publish "v=DKIM1; k=rsa; p=<base64 public key>" there',
                record=texts[0].decode("ascii", "replace") if texts else "",
                **where,
            )
        ], False
    record = records[0]

    if record.revoked:
        return [
            info(
                "dkim.revoked",
                f"the key at {name} is revoked (empty p=): signatures with s={selector} fail",
                None,
                **where,
            )
        ], False
    problem = _restriction(record)
    if problem is not None:
        return [
            error("dkim.key", f"the key record at {name}: {problem}", _fix_for(problem), **where)
        ], False

    key = load_public_key(record.key_type, record.public_key)
    if isinstance(key, str):
        return [
            error(
                "dkim.key",
                f"the key record at {name} holds no usable key: {key}",
                "publish the public key again, base64 of the DER SubjectPublicKeyInfo for RSA",
                **where,
            )
        ], False

    bits = key_bits(key)
    details = dict(key_type=record.key_type, bits=bits, **where)
    label = {"rsa": "RSA", "ed25519": "Ed25519"}.get(record.key_type, record.key_type)
    findings = [ok("dkim.key", f"{name} holds an {label} key", **details)]
    findings.append(_size(name, record.key_type, bits, details))
    if record.testing:
        findings.append(
            warning(
                "dkim.testing",
                f"the key at {name} has t=y: verifiers may treat its signatures as unsigned",
                "remove t=y from the record once signing works",
                **where,
            )
        )
    usable = record.key_type != "rsa" or bits >= MIN_RSA_BITS
    return findings, usable


def _restriction(record: KeyRecord) -> str | None:
    """Why the record cannot verify ordinary email signatures, or None."""
    if record.key_type not in ("rsa", "ed25519"):
        return f"unknown key type k={record.key_type[:40]}"
    if not record.allows_hash("sha256"):
        return "h= does not allow sha256, the only hash verifiers accept (RFC 8301 §3.1)"
    if not record.serves_email:
        return "s= does not include email"
    return None


def _fix_for(problem: str) -> str:
    """How to fix what :func:`_restriction` found."""
    if problem.startswith("unknown key type"):
        return "use k=rsa or k=ed25519"
    if problem.startswith("h="):
        return "remove h= from the record, or make it h=sha256"
    return "remove s= from the record, or make it s=email"


def _size(name: str, key_type: str, bits: int, details: dict[str, object]) -> Finding:
    if key_type != "rsa":
        return ok("dkim.key-size", f"{name}: {key_type} keys have a fixed size", **details)
    if bits < MIN_RSA_BITS:
        return error(
            "dkim.key-size",
            f"{name} holds a {bits}-bit RSA key; verifiers refuse keys under {MIN_RSA_BITS} "
            "bits (RFC 8301 §3.2)",
            _NEW_KEY,
            **details,
        )
    if bits < RECOMMENDED_RSA_BITS:
        return warning(
            "dkim.key-size",
            f"{name} holds a {bits}-bit RSA key; {RECOMMENDED_RSA_BITS} bits is the size "
            "RFC 8301 §3.2 asks signers to use",
            _NEW_KEY,
            **details,
        )
    return ok("dkim.key-size", f"{name} holds a {bits}-bit RSA key", **details)


def _detail(answer: Answer) -> str:
    return answer.detail or answer.status.value
