"""The structure of an Authenticated Received Chain (RFC 8617 §4.2, §5.2 steps 1 to 3).

Before any key is fetched, a chain must be well formed: every ARC field
carries an instance number from 1 to 50; instances run from 1 to N without
a gap; each instance has exactly one ARC-Authentication-Results, one
ARC-Message-Signature and one ARC-Seal; and the seals' cv= values tell a
consistent story (``none`` at instance 1, ``pass`` above it). A chain whose
newest seal says ``cv=fail`` was already found broken by its last sealer
and is failed without further work (§5.2 step 2).

:func:`read_chain` applies these rules and returns either the sets, ready
for the cryptographic steps of :mod:`.verify` and for sealing, or a
:class:`Broken` naming the first rule broken. It never raises. The
ARC-Message-Signatures are parsed here too, but one that does not parse is
only fatal when it is the newest (the others matter only for the
oldest-pass diagnostic, §5.2 step 5).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailwright.auth.arc.fields import (
    ARC_FIELDS,
    AUTHENTICATION_RESULTS,
    MESSAGE_SIGNATURE,
    SEAL,
    ArcAuthenticationResults,
    MessageSignature,
    Seal,
    parse_aar,
    parse_message_signature,
    parse_seal,
    read_instance,
)
from mailwright.auth.arc.result import ChainStatus
from mailwright.auth.dkim.tags import Malformed
from mailwright.auth.message import HeaderField, Message

_SHORT_NAMES = {
    AUTHENTICATION_RESULTS: "ARC-Authentication-Results",
    MESSAGE_SIGNATURE: "ARC-Message-Signature",
    SEAL: "ARC-Seal",
}


@dataclass(frozen=True, slots=True)
class ArcSet:
    """The three fields of one instance; the AMS may be unreadable (then a reason)."""

    instance: int
    results: ArcAuthenticationResults
    signature: MessageSignature | Malformed
    seal: Seal
    signature_field: HeaderField

    @property
    def fields(self) -> tuple[HeaderField, HeaderField, HeaderField]:
        """AAR, AMS, AS: the order in which an ARC-Seal hashes a set (§5.1.1)."""
        return (self.results.field, self.signature_field, self.seal.field)


@dataclass(frozen=True, slots=True)
class Chain:
    """A well-formed chain: sets from instance 1 up, and its newest instance N."""

    sets: tuple[ArcSet, ...]

    @property
    def highest(self) -> int:
        """N, the newest instance."""
        return len(self.sets)

    @property
    def newest(self) -> ArcSet:
        """The set of instance N."""
        return self.sets[-1]


@dataclass(frozen=True, slots=True)
class Broken:
    """A chain that fails before any key is needed: why, and the greatest i= read.

    ``terminated`` is True when the reason is that a seal already says
    cv=fail: a sealer found the chain broken (§5.2 steps 2 and 3).
    ``newest_failed`` is True when that seal is the newest one, after which
    no set may be added (§5.1 step 1).
    """

    reason: str
    highest: int = 0
    terminated: bool = False
    newest_failed: bool = False


def arc_fields(message: Message) -> list[HeaderField]:
    """Every ARC header field of ``message``, top to bottom."""
    return [header for header in message.headers if header.lower_name in ARC_FIELDS]


def read_chain(message: Message) -> Chain | Broken | None:
    """The chain of ``message``, why it is broken, or None when it has no ARC field."""
    fields = arc_fields(message)
    if not fields:
        return None

    by_instance: dict[int, dict[str, list[HeaderField]]] = {}
    problem = ""
    for header in fields:
        instance = read_instance(header)
        if isinstance(instance, str):
            problem = problem or instance
            continue
        slot = by_instance.setdefault(instance, {name: [] for name in ARC_FIELDS})
        slot[header.lower_name].append(header)
    highest = max(by_instance, default=0)
    if problem:
        return Broken(problem, highest)

    for instance in range(1, highest + 1):
        if instance not in by_instance:
            return Broken(f"instance {instance} is missing below i={highest}", highest)
        for name in ARC_FIELDS:
            count = len(by_instance[instance][name])
            if count != 1:
                what = "no" if count == 0 else f"{count}"
                reason = f"instance {instance} has {what} {_SHORT_NAMES[name]} (RFC 8617 §4.2.1)"
                return Broken(reason, highest)

    return _read_sets(by_instance, highest)


def _read_sets(
    by_instance: dict[int, dict[str, list[HeaderField]]], highest: int
) -> Chain | Broken:
    """Parse every set of a chain whose instances are complete; check the cv= values."""
    sets: list[ArcSet] = []
    for instance in range(1, highest + 1):
        slot = by_instance[instance]
        seal = parse_seal(slot[SEAL][0])
        if isinstance(seal, Malformed):
            return Broken(f"i={instance}: {seal.reason}", highest)
        results = parse_aar(slot[AUTHENTICATION_RESULTS][0])
        if isinstance(results, Malformed):
            return Broken(f"i={instance}: {results.reason}", highest)
        raw_ams = slot[MESSAGE_SIGNATURE][0]
        signature = parse_message_signature(raw_ams)
        if isinstance(signature, MessageSignature) and signature.instance != instance:
            signature = Malformed(f"ARC-Message-Signature i= is not {instance}")
        sets.append(ArcSet(instance, results, signature, seal, raw_ams))

    newest = sets[-1]
    if newest.seal.cv is ChainStatus.FAIL:
        reason = f"the ARC-Seal of i={highest} says cv=fail: a sealer found the chain broken"
        return Broken(reason, highest, terminated=True, newest_failed=True)
    for found in sets:
        if found.seal.cv is ChainStatus.FAIL:
            reason = (
                f"the ARC-Seal of i={found.instance} says cv=fail: a sealer found the chain broken"
            )
            return Broken(reason, highest, terminated=True)
        expected = ChainStatus.NONE if found.instance == 1 else ChainStatus.PASS
        if found.seal.cv is not expected:
            reason = (
                f"the ARC-Seal of i={found.instance} says cv={found.seal.cv.value}, "
                f"not {expected.value} (RFC 8617 §5.2 step 3)"
            )
            return Broken(reason, highest)
    if isinstance(newest.signature, Malformed):
        return Broken(f"i={highest}: {newest.signature.reason}", highest)
    return Chain(tuple(sets))
