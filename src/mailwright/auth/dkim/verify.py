"""Verifying every DKIM signature of a message (RFC 6376 §6, RFC 8301, RFC 8463).

Theory of operation. :func:`verify` is a sans-IO evaluator (see
:mod:`mailwright.dns.queries`): it reads the message, decides for each
DKIM-Signature field what can be decided without DNS, then asks for all the
keys it still needs in one step (a key shared by several signatures is asked
once), and finishes each signature with its answer. The result is one
:class:`~.result.DkimResult` per field, top to bottom; a message without
signatures gives an empty list (Authentication-Results then says
``dkim=none``).

Per signature, in the order of RFC 6376 §6.1:

1. Before DNS (§6.1.1): the field must parse (:func:`~.signature.parse_signature`,
   else permerror); rsa-sha1 is refused (policy, RFC 8301 §3.1); an x= in the
   past or a t= more than :data:`FUTURE_ALLOWANCE` ahead fails; so does a
   message with more From fields than h= covers, since the unsigned one may
   be the one a reader sees (RFC 6376 §8.15).
2. The key (§6.1.2): a timeout or SERVFAIL is temperror; NXDOMAIN, no TXT
   record, a record that does not parse, h= not allowing the hash, a key of
   the wrong type, s= without email, t=s with an i= below d= are permerror;
   an empty p= (revoked) fails, as §6.1.2 says to "treat this as a failed
   signature check"; an RSA key under 1024 bits is policy (RFC 8301 §3.2).
3. The hashes (§6.1.3): the body hash (over l= octets when given; an l=
   longer than the body fails) and then the signature over the header hash.

Bodies are canonicalised once per algorithm, whatever the number of
signatures. Nothing here raises on what the message or DNS holds.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from mailwright.auth.dkim.algorithms import Algorithm, PublicKey, key_bits, verify_digest
from mailwright.auth.dkim.canonical import Canonicalization, canonicalize_body
from mailwright.auth.dkim.hashing import blank_signature, header_digest, select_headers
from mailwright.auth.dkim.keyrecord import KeyRecord, parse_key_record
from mailwright.auth.dkim.keys import MAX_RSA_BITS, MIN_RSA_BITS, cached_public_key
from mailwright.auth.dkim.result import DkimResult, Outcome
from mailwright.auth.dkim.signature import Signature, parse_signature
from mailwright.auth.dkim.tags import Malformed
from mailwright.auth.message import HeaderField, Message, parse_message
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, CachingResolver, Evaluation, Query, run

#: Signatures verified per message at most; later ones are reported neutral,
#: so that a message cannot make us fetch hundreds of keys.
MAX_SIGNATURES = 16

#: Seconds a t= may lie ahead of our clock (clock skew between hosts).
FUTURE_ALLOWANCE = 300.0

#: Characters of b= reported for header.b (RFC 6008 §4 asks for at least 8).
SIGNATURE_PREFIX = 8

FIELD_NAME = "DKIM-Signature"


@dataclass(frozen=True, slots=True)
class _Pending:
    """A signature that passed the checks made without DNS, waiting for its key."""

    field: HeaderField
    signature: Signature
    query: Query
    base: DkimResult


def verify(
    content: bytes | Message,
    *,
    now: float,
    max_signatures: int = MAX_SIGNATURES,
    future_allowance: float = FUTURE_ALLOWANCE,
) -> Evaluation[list[DkimResult]]:
    """Verify every DKIM-Signature of ``content``; one result per field, top first.

    ``now`` is the verification time in seconds since the epoch (expiry and
    future timestamps are judged against it).
    """
    message = content if isinstance(content, Message) else parse_message(content)
    fields = message.fields(FIELD_NAME)

    states: list[DkimResult | _Pending] = []
    for index, field in enumerate(fields):
        if index >= max_signatures:
            reason = f"not verified: the message has more than {max_signatures} signatures"
            states.append(DkimResult(Outcome.NEUTRAL, reason, index=index))
            continue
        states.append(_before_dns(message, field, index, now, future_allowance))

    queries = list(dict.fromkeys(s.query for s in states if isinstance(s, _Pending)))
    answers: Sequence[Answer] = (yield tuple(queries)) if queries else ()
    by_query = dict(zip(queries, answers, strict=True))

    bodies = _Bodies(message.body)
    return [
        state
        if isinstance(state, DkimResult)
        else _finish(state, by_query[state.query], message, bodies)
        for state in states
    ]


async def verify_message(
    resolver: CachingResolver,
    content: bytes | Message,
    *,
    now: float | None = None,
    max_signatures: int = MAX_SIGNATURES,
) -> list[DkimResult]:
    """Verify every DKIM signature of ``content``, asking DNS through ``resolver``.

    ``now`` defaults to the current time.
    """
    evaluation = verify(
        content, now=time.time() if now is None else now, max_signatures=max_signatures
    )
    return await run(evaluation, resolver)


def _before_dns(
    message: Message, field: HeaderField, index: int, now: float, allowance: float
) -> DkimResult | _Pending:
    """The checks of RFC 6376 §6.1.1: a final result, or the key query still needed."""
    parsed = parse_signature(field.value)
    if isinstance(parsed, Malformed):
        tags = parsed.partial
        return DkimResult(
            Outcome.PERMERROR,
            f"signature: {parsed.reason}",
            domain=tags.get("d") or "",
            selector=tags.get("s") or "",
            identity=tags.get("i") or "",
            algorithm=tags.get("a") or "",
            index=index,
        )

    signature = parsed
    b = signature.tags.find("b")
    base = DkimResult(
        Outcome.PERMERROR,
        "",
        domain=signature.domain,
        selector=signature.selector,
        identity=signature.identity,
        algorithm=signature.algorithm.value,
        index=index,
        signature_prefix=b.compact[:SIGNATURE_PREFIX] if b else "",
    )

    if not signature.algorithm.usable:
        return replace(
            base, result=Outcome.POLICY, reason="rsa-sha1 is not acceptable (RFC 8301 §3.1)"
        )
    if signature.expiration is not None and signature.expiration < now:
        return replace(
            base, result=Outcome.FAIL, reason=f"signature expired (x={signature.expiration})"
        )
    if signature.timestamp is not None and signature.timestamp > now + allowance:
        ahead = int(signature.timestamp - now)
        return replace(base, result=Outcome.FAIL, reason=f"t= is {ahead} s in the future")

    from_fields = len(message.fields("from"))
    covered = signature.headers.count("from")
    if from_fields > covered:
        reason = f"{from_fields} From fields, h= covers {covered} (RFC 6376 §8.15)"
        return replace(base, result=Outcome.FAIL, reason=reason)

    try:
        query = Query.of(signature.key_name, "TXT")
    except ValueError as exc:
        return replace(base, reason=f"no key can be asked for: {exc}")
    return _Pending(field, signature, query, base)


def _finish(pending: _Pending, answer: Answer, message: Message, bodies: _Bodies) -> DkimResult:
    """The checks of RFC 6376 §6.1.2 and §6.1.3, once the key record has been asked for."""
    signature = pending.signature
    check = check_key(answer, signature.algorithm, signature.domain, signature.identity_domain)

    def outcome(result: Outcome, reason: str) -> DkimResult:
        # Built field by field: dataclasses.replace costs several times more.
        base = pending.base
        return DkimResult(
            result,
            reason,
            domain=base.domain,
            selector=base.selector,
            identity=base.identity,
            algorithm=base.algorithm,
            index=base.index,
            key_bits=check.bits,
            testing=check.testing,
            signature_prefix=base.signature_prefix,
        )

    if check.key is None:
        return outcome(check.result, check.reason)
    key = check.key

    algorithm = signature.algorithm
    digest, length = bodies.digest(
        signature.body_canon, algorithm.hash_name, signature.body_length
    )
    if signature.body_length is not None and signature.body_length > length:
        reason = f"l={signature.body_length} but the canonical body has {length} octets"
        return outcome(Outcome.FAIL, reason)
    if digest != signature.body_hash:
        return outcome(Outcome.FAIL, "body hash did not verify")

    blanked = blank_signature(pending.field.raw, parsed=signature.tags)
    if blanked is None:
        return outcome(Outcome.PERMERROR, "signature field could not be blanked for hashing")
    fields = select_headers(message.headers, signature.headers, skip=pending.field)
    header_hash = header_digest(fields, blanked, signature.header_canon, algorithm.hash_name)
    if not verify_digest(key, algorithm, header_hash, signature.signature):
        return outcome(Outcome.FAIL, "signature did not verify")
    return outcome(Outcome.PASS, "good signature")


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """What a key record answer came to for one signature: a usable key, or why not.

    ``key`` is set when the key may verify the signature; otherwise
    ``result`` (permerror, temperror, fail or policy) and ``reason`` say why
    not. ``testing`` (t=y) and ``bits`` are filled in as far as the record
    was read.
    """

    key: PublicKey | None
    result: Outcome
    reason: str
    testing: bool = False
    bits: int | None = None


def check_key(
    answer: Answer,
    algorithm: Algorithm,
    domain: str,
    identity_domain: str | None = None,
) -> KeyCheck:
    """The key of a key record answer, checked for a signature by ``domain`` (RFC 6376 §6.1.2).

    Shared by DKIM and ARC (RFC 8617 §4.1.2, §4.1.3 take the key rules of
    DKIM), so both refuse the same keys: a lookup failure, a missing or
    unparsable record, the record's h=, k= and s= restrictions, an empty p=
    (fail), an RSA key under 1024 bits (policy, RFC 8301 §3.2) or over
    :data:`MAX_RSA_BITS`. t=s is checked only when ``identity_domain`` (the
    i= domain) is given; ARC signatures have none. Never raises.
    """
    name = answer.query.text

    def refused(
        result: Outcome, reason: str, testing: bool = False, bits: int | None = None
    ) -> KeyCheck:
        return KeyCheck(None, result, reason, testing, bits)

    if answer.is_transient:
        detail = f": {answer.detail}" if answer.detail else ""
        return refused(Outcome.TEMPERROR, f"key {name}: {answer.status.value}{detail}")
    if answer.status is LookupStatus.NXDOMAIN:
        return refused(Outcome.PERMERROR, f"no key record: {name} does not exist")
    if not answer.found or not answer.records:
        return refused(Outcome.PERMERROR, f"no key record: {name} has no TXT record")

    record = _choose(answer.records)
    if isinstance(record, str):
        return refused(Outcome.PERMERROR, f"key record {name}: {record}")
    testing = record.testing

    refusal = _refuse_key(record, algorithm, domain, identity_domain)
    if refusal is not None:
        return refused(refusal[0], f"key record {name}: {refusal[1]}", testing=testing)

    key = cached_public_key(record.key_type, record.public_key)
    if isinstance(key, str):
        return refused(Outcome.PERMERROR, f"key record {name}: {key}", testing=testing)
    bits = key_bits(key)
    if record.key_type == "rsa" and bits < MIN_RSA_BITS:
        reason = f"{bits}-bit RSA key is under {MIN_RSA_BITS} bits (RFC 8301 §3.2)"
        return refused(Outcome.POLICY, reason, testing=testing, bits=bits)
    if bits > MAX_RSA_BITS:
        reason = f"{bits}-bit RSA key is over our limit of {MAX_RSA_BITS}"
        return refused(Outcome.PERMERROR, reason, testing=testing, bits=bits)
    return KeyCheck(key, Outcome.PASS, "usable key", testing=testing, bits=bits)


def _choose(records: Sequence[object]) -> KeyRecord | str:
    """The first TXT record that is a valid key record, or why the first one is not."""
    first_problem = ""
    for record in records:
        data = record if isinstance(record, bytes) else str(record).encode("utf-8")
        parsed = parse_key_record(data)
        if isinstance(parsed, KeyRecord):
            return parsed
        first_problem = first_problem or parsed.reason
    return first_problem


def _refuse_key(
    record: KeyRecord, algorithm: Algorithm, domain: str, identity_domain: str | None
) -> tuple[Outcome, str] | None:
    """Why ``record`` cannot verify a signature of ``algorithm`` (RFC 6376 §6.1.2), or None."""
    if not record.allows_hash(algorithm.hash_name):
        return Outcome.PERMERROR, f"h= does not allow {algorithm.hash_name}"
    if record.revoked:
        return Outcome.FAIL, "key revoked (empty p=)"
    if record.key_type not in ("rsa", "ed25519"):
        return Outcome.PERMERROR, f"unknown key type k={record.key_type[:40]}"
    if record.key_type != algorithm.key_type:
        return Outcome.PERMERROR, f"a k={record.key_type} key cannot verify {algorithm.value}"
    if not record.serves_email:
        return Outcome.PERMERROR, "s= does not include email"
    below = identity_domain is not None and identity_domain.lower() != domain.lower()
    if record.strict and below:
        return Outcome.PERMERROR, "t=s requires the i= domain to be d= itself"
    return None


class _Bodies:
    """The message body canonicalised once per algorithm, hashed per (hash, l=)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._canonical: dict[Canonicalization, bytes] = {}
        self._digests: dict[tuple[Canonicalization, str, int | None], tuple[bytes, int]] = {}

    def digest(
        self, method: Canonicalization, hash_name: str, limit: int | None
    ) -> tuple[bytes, int]:
        """The body hash and the whole canonical length."""
        key = (method, hash_name, limit)
        if key not in self._digests:
            canonical = self._canonical.get(method)
            if canonical is None:
                canonical = self._canonical[method] = canonicalize_body(self.body, method)
            view = memoryview(canonical)
            covered = view if limit is None else view[:limit]
            self._digests[key] = (hashlib.new(hash_name, covered).digest(), len(canonical))
        return self._digests[key]
