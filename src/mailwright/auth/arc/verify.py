"""Validating an Authenticated Received Chain (RFC 8617 §5.2).

Theory of operation. :func:`verify_chain` is a sans-IO evaluator (see
:mod:`mailwright.dns.queries`). It reads the chain's structure first
(:func:`.chain.read_chain`: §5.2 steps 1 to 3, no DNS), then asks in one
step for every key the chain names (each ARC-Seal's and each readable
ARC-Message-Signature's; a key shared by several is asked once), and then:

4. verifies the newest ARC-Message-Signature, exactly as DKIM verifies a
   signature (RFC 6376 §6.1.3 with the key rules of §6.1.2); if it fails,
   so does the chain;
5. verifies the older ones, newest first, to find ``oldest-pass``: the
   lowest instance from which every ARC-Message-Signature up to N still
   verifies (0 when they all do). This is diagnostic only;
6. verifies every ARC-Seal, newest first; the first that fails fails the
   chain. A seal is checked over the sets 1 to i in order, each as
   AAR, AMS, AS, with relaxed header canonicalisation and the b= of the
   seal being checked deleted (§5.1.1).

Every failure is permanent (§5.2.1), a DNS timeout included: the chain is
``fail`` and the reason says ``temperror`` so that an operator can tell
the cases apart. Nothing here raises on what the message or DNS holds.

Why every key is asked before anything is verified: the answers come back
concurrently, and a chain of N sets typically names one or two keys, so
the extra questions for a chain that fails early cost little; sequential
steps would cost a round trip each.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mailwright.auth.arc.chain import ArcSet, Broken, Chain, read_chain
from mailwright.auth.arc.fields import MessageSignature, Seal
from mailwright.auth.arc.result import ArcResult, ArcSetResult, ChainStatus
from mailwright.auth.dkim.algorithms import Algorithm, PublicKey, verify_digest
from mailwright.auth.dkim.canonical import Canonicalization
from mailwright.auth.dkim.hashing import (
    blank_signature,
    body_digest,
    header_digest,
    select_headers,
)
from mailwright.auth.dkim.result import Outcome
from mailwright.auth.dkim.verify import check_key
from mailwright.auth.message import HeaderField, Message, parse_message
from mailwright.dns.queries import Answer, CachingResolver, Evaluation, Query, run

#: Key record name to its answer, or why it could not be asked for.
_KeyLookup = Callable[[str], Answer | str]


@dataclass(frozen=True, slots=True)
class _Check:
    """Whether one signature verified, and why not."""

    valid: bool
    reason: str
    temporary: bool = False


def verify_chain(content: bytes | Message, *, now: float | None = None) -> Evaluation[ArcResult]:
    """Validate the ARC chain of ``content`` (RFC 8617 §5.2); the result is never an error.

    ``now`` (seconds since the epoch) is only used to refuse an
    ARC-Message-Signature whose x= has passed; None skips that check.
    """
    message = content if isinstance(content, Message) else parse_message(content)
    chain = read_chain(message)
    if chain is None:
        return ArcResult(ChainStatus.NONE, "no ARC header fields")
    if isinstance(chain, Broken):
        return ArcResult(
            ChainStatus.FAIL,
            chain.reason,
            highest_instance=chain.highest,
            terminated=chain.terminated,
        )

    queries = _queries(chain)
    answers: Sequence[Answer] = (yield tuple(queries.values())) if queries else ()
    by_name = dict(zip(queries.values(), answers, strict=True))

    def key(name: str) -> Answer | str:
        query = queries.get(name)
        return by_name[query] if query is not None else f"no key can be asked for at {name!r}"

    bodies: dict[tuple[Canonicalization, str, int | None], tuple[bytes, int]] = {}
    ams_checks = {
        found.instance: _check_ams(found, message, key, bodies, now) for found in chain.sets
    }
    newest = ams_checks[chain.highest]
    if not newest.valid:
        reason = f"ARC-Message-Signature i={chain.highest}: {newest.reason}"
        results = _set_results(chain, ams_checks, {})
        return _failed(reason, newest.temporary, chain, results)

    oldest_pass = 0
    for instance in range(chain.highest - 1, 0, -1):
        if not ams_checks[instance].valid:
            oldest_pass = instance + 1
            break

    seal_checks: dict[int, _Check] = {}
    for found in reversed(chain.sets):
        check = _check_seal(chain, found, key)
        seal_checks[found.instance] = check
        if not check.valid:
            reason = f"ARC-Seal i={found.instance}: {check.reason}"
            return _failed(
                reason, check.temporary, chain, _set_results(chain, ams_checks, seal_checks)
            )

    return ArcResult(
        ChainStatus.PASS,
        f"{chain.highest} ARC set(s) verified",
        _set_results(chain, ams_checks, seal_checks),
        oldest_pass=oldest_pass,
        highest_instance=chain.highest,
    )


async def check_arc(
    resolver: CachingResolver, content: bytes | Message, *, now: float | None = None
) -> ArcResult:
    """Validate the ARC chain of ``content``, asking DNS through ``resolver``.

    ``now`` defaults to the current time.
    """
    evaluation = verify_chain(content, now=time.time() if now is None else now)
    return await run(evaluation, resolver)


def _queries(chain: Chain) -> dict[str, Query]:
    """The key query of every name the chain's seals and readable signatures use."""
    names: list[str] = []
    for found in chain.sets:
        names.append(found.seal.key_name)
        if isinstance(found.signature, MessageSignature):
            names.append(found.signature.key_name)
    queries: dict[str, Query] = {}
    for name in dict.fromkeys(names):
        try:
            queries[name] = Query.of(name, "TXT")
        except ValueError:
            continue  # reported as "no key can be asked for" when the key is needed
    return queries


def _key(answer: Answer | str, algorithm: Algorithm, domain: str) -> PublicKey | _Check:
    """The key of an answer for a signature of ``algorithm`` by ``domain``, or why none."""
    if isinstance(answer, str):
        return _Check(False, answer)
    if not algorithm.usable:
        return _Check(False, f"{algorithm.value} is not acceptable (RFC 8301 §3.1)")
    checked = check_key(answer, algorithm, domain)
    if checked.key is None:
        return _Check(False, checked.reason, checked.result is Outcome.TEMPERROR)
    return checked.key


def _check_ams(
    found: ArcSet,
    message: Message,
    key: _KeyLookup,
    bodies: dict[tuple[Canonicalization, str, int | None], tuple[bytes, int]],
    now: float | None,
) -> _Check:
    """Verify one ARC-Message-Signature as RFC 6376 §6.1.3 verifies a DKIM signature."""
    signature = found.signature
    if not isinstance(signature, MessageSignature):
        return _Check(False, signature.reason)
    if signature.expiration is not None and now is not None and signature.expiration < now:
        return _Check(False, f"signature expired (x={signature.expiration})")

    public = _key(key(signature.key_name), signature.algorithm, signature.domain)
    if isinstance(public, _Check):
        return public

    hash_name = signature.algorithm.hash_name
    cache_key = (signature.body_canon, hash_name, signature.body_length)
    if cache_key not in bodies:
        bodies[cache_key] = body_digest(
            message.body, signature.body_canon, hash_name, signature.body_length
        )
    digest, length = bodies[cache_key]
    if signature.body_length is not None and signature.body_length > length:
        return _Check(False, f"l={signature.body_length} but the body has {length} octets")
    if digest != signature.body_hash:
        return _Check(False, "body hash did not verify")

    blanked = blank_signature(signature.field.raw, parsed=signature.tags)
    if blanked is None:
        return _Check(False, "the signature field could not be blanked for hashing")
    fields = select_headers(message.headers, signature.headers, skip=signature.field)
    header_hash = header_digest(fields, blanked, signature.header_canon, hash_name)
    if not verify_digest(public, signature.algorithm, header_hash, signature.signature):
        return _Check(False, "signature did not verify")
    return _Check(True, "good signature")


def _check_seal(chain: Chain, found: ArcSet, key: _KeyLookup) -> _Check:
    """Verify the ARC-Seal of ``found`` over sets 1 to its instance (RFC 8617 §5.1.1)."""
    seal: Seal = found.seal
    public = _key(key(seal.key_name), seal.algorithm, seal.domain)
    if isinstance(public, _Check):
        return public
    blanked = blank_signature(seal.field.raw, parsed=seal.tags)
    if blanked is None:
        return _Check(False, "the seal field could not be blanked for hashing")
    digest = header_digest(
        seal_scope(chain.sets[: found.instance]),
        blanked,
        Canonicalization.RELAXED,
        seal.algorithm.hash_name,
    )
    if not verify_digest(public, seal.algorithm, digest, seal.signature):
        return _Check(False, "seal did not verify")
    return _Check(True, "good seal")


def seal_scope(sets: Sequence[ArcSet]) -> list[HeaderField]:
    """The fields an ARC-Seal of the last of ``sets`` covers, without itself (§5.1.1)."""
    fields: list[HeaderField] = []
    for found in sets:
        fields.extend(found.fields)
    return fields[:-1]


def _set_results(
    chain: Chain, ams_checks: dict[int, _Check], seal_checks: dict[int, _Check]
) -> tuple[ArcSetResult, ...]:
    """One :class:`ArcSetResult` per set; seals not examined count as not valid."""
    out: list[ArcSetResult] = []
    intact = all(check.valid for check in seal_checks.values()) and bool(seal_checks)
    for found in chain.sets:
        seal_check = seal_checks.get(found.instance, _Check(False, "not examined"))
        ams_check = ams_checks.get(found.instance)
        signature = found.signature
        out.append(
            ArcSetResult(
                instance=found.instance,
                cv=found.seal.cv,
                seal_domain=found.seal.domain,
                seal_selector=found.seal.selector,
                seal_algorithm=found.seal.algorithm.value,
                seal_valid=seal_check.valid,
                seal_reason=seal_check.reason,
                chain_valid=intact and seal_check.valid,
                ams_domain=signature.domain if isinstance(signature, MessageSignature) else "",
                ams_selector=(
                    signature.selector if isinstance(signature, MessageSignature) else ""
                ),
                ams_valid=None if ams_check is None else ams_check.valid,
                ams_reason="not examined" if ams_check is None else ams_check.reason,
                authserv_id=found.results.authserv_id,
                results=found.results.results,
            )
        )
    return tuple(out)


def _failed(
    reason: str, temporary: bool, chain: Chain, sets: tuple[ArcSetResult, ...]
) -> ArcResult:
    if temporary:
        reason = f"temperror: {reason}"
    return ArcResult(ChainStatus.FAIL, reason, sets, highest_instance=chain.highest)
