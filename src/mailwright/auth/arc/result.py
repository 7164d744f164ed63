"""What validating an Authenticated Received Chain came to (RFC 8617 §4.4, §5.2, §6).

The chain validation status is one of three words, spelt as RFC 8601 and
RFC 8617 §10.1 spell the ``arc`` method's results:

``none``
    The message carries no ARC header field at all.
``pass``
    Every step of RFC 8617 §5.2 succeeded: the structure is sound, the
    newest ARC-Message-Signature verifies and so does every ARC-Seal.
``fail``
    Anything else. RFC 8617 §5.2.1 makes every failure permanent,
    including a DNS timeout, so there is no temperror; the reason says
    what happened (``temperror`` in it for a DNS failure that may pass).
    A failed chain counts as no chain for policy (§5.2). ``terminated``
    marks the chain whose newest seal already said cv=fail: a sealer adds
    nothing to it (§5.1.2).

Besides the status, a :class:`ArcResult` keeps one :class:`ArcSetResult`
per instance (when the structure could be read) with what a DMARC
evaluator needs to honour a trusted ARC sealer (RFC 8617 §7.2.1): the d= of
each ARC-Seal, whether the chain up to and including that seal verified,
and the Authentication-Results that set recorded.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from mailwright.auth.authres import AuthenticationResults, MethodResult, result


class ChainStatus(enum.StrEnum):
    """A chain validation status, as cv= and ``arc=`` spell it (RFC 8617 §4.4)."""

    NONE = "none"
    PASS = "pass"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class ArcSetResult:
    """One ARC set (instance) of a chain whose structure is sound.

    ``seal_valid`` says whether this ARC-Seal verified; ``chain_valid``
    whether it and every earlier one did, so that the chain up to this
    sealer is intact. ``ams_valid`` is None when the ARC-Message-Signature
    was not examined (only the newest must be, RFC 8617 §5.2 step 4).
    ``results`` is the ARC-Authentication-Results payload, or None when it
    does not parse (which does not affect validity).
    """

    instance: int
    cv: ChainStatus
    seal_domain: str
    seal_selector: str
    seal_algorithm: str
    seal_valid: bool
    seal_reason: str
    chain_valid: bool
    ams_domain: str = ""
    ams_selector: str = ""
    ams_valid: bool | None = None
    ams_reason: str = "not examined"
    authserv_id: str = ""
    results: AuthenticationResults | None = None


@dataclass(frozen=True, slots=True)
class ArcResult:
    """The chain validation status of a message, its reason and the per-set details.

    ``sets`` runs from instance 1 to N; it is empty when there is no chain
    or its structure could not be read. ``oldest_pass`` is the RFC 8617
    §5.2 step 5 value (0 when every ARC-Message-Signature verifies), or None
    when it was not computed. ``highest_instance`` is N, the greatest
    instance number that could be read (0 for none).
    """

    result: ChainStatus
    reason: str
    sets: tuple[ArcSetResult, ...] = ()
    oldest_pass: int | None = None
    highest_instance: int = 0
    terminated: bool = False

    @property
    def passed(self) -> bool:
        """True for ``pass``."""
        return self.result is ChainStatus.PASS

    @property
    def sealer_domains(self) -> tuple[str, ...]:
        """The d= of each ARC-Seal, from instance 1 up (RFC 8617 §7.2.2 reports them)."""
        return tuple(found.seal_domain for found in self.sets)

    @property
    def validated_sealers(self) -> tuple[str, ...]:
        """The d= of each ARC-Seal up to which the chain verified, from instance 1 up.

        Empty unless the chain passed: a failed chain vouches for nobody
        (RFC 8617 §5.2: it is treated as if there were no chain).
        """
        if not self.passed:
            return ()
        return tuple(found.seal_domain for found in self.sets if found.chain_valid)

    def instance(self, number: int) -> ArcSetResult | None:
        """The set with instance ``number``, or None."""
        for found in self.sets:
            if found.instance == number:
                return found
        return None

    def trusted_set(self, trusted_domains: Iterable[str]) -> ArcSetResult | None:
        """The newest set sealed by one of ``trusted_domains``, in a passing chain.

        This is what a receiver that trusts some intermediaries (RFC 8617
        §7.2.1) reads the Authentication-Results of, to override a local
        DMARC failure. Domains compare without regard to case; None when the
        chain did not pass or no trusted domain sealed it.
        """
        if not self.passed:
            return None
        wanted = {domain.lower().rstrip(".") for domain in trusted_domains}
        for found in reversed(self.sets):
            if found.chain_valid and found.seal_domain.lower() in wanted:
                return found
        return None

    def to_method_result(self, remote_ip: str | None = None) -> MethodResult:
        """The ``arc=`` result for our Authentication-Results field (RFC 8617 §6).

        ``header.oldest-pass`` is added when it was computed for a passing
        chain and is not 0; ``smtp.remote-ip`` is the connecting client,
        which only the caller knows. The reason goes in as a comment.
        """
        oldest = self.oldest_pass if self.passed and self.oldest_pass else None
        return result(
            "arc",
            self.result.value,
            [
                ("smtp", "remote-ip", remote_ip),
                ("header", "oldest-pass", None if oldest is None else str(oldest)),
            ],
            comment=None if self.passed else self.reason[:200],
        )
