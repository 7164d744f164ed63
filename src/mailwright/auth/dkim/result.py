"""The outcome of verifying one DKIM signature, in RFC 8601's words.

RFC 6376 speaks of SUCCESS, PERMFAIL and TEMPFAIL; Authentication-Results
(RFC 8601 §2.7.1) splits PERMFAIL further, and that is the vocabulary DMARC,
ARC and our Authentication-Results field consume. The mapping we use:

``pass``
    The signature verified.
``fail``
    The signature does not hold: the body hash or the signature does not
    match, or the signer itself has declared it void: expired by x=
    (RFC 6376 §6.1.1 lets a verifier ignore it; we report it failed), a t=
    too far in the future, a revoked key (empty p=), an l= longer than the
    body, a From field the signature does not cover.
``policy``
    The signature may well be valid, but RFC 8301 forbids accepting it:
    rsa-sha1 (§3.1) or an RSA key under 1024 bits (§3.2). RFC 8601 defines
    policy as "some aspect of the signature was not acceptable".
``permerror``
    The signature or its key cannot be used, and asking again will not
    change that: syntax errors in the field or the key record, a missing
    required tag, no key record (NXDOMAIN or no TXT), a key that does not
    suit the algorithm, h=/s=/t=s restrictions of the key record.
``temperror``
    The key could not be fetched now (DNS timeout or SERVFAIL).
``neutral``
    Not examined: signatures beyond the verifier's limit per message.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from mailwright.auth.authres import MethodResult, result


class Outcome(enum.StrEnum):
    """A DKIM result word, spelt as RFC 8601 §2.7.1 spells it."""

    PASS = "pass"
    FAIL = "fail"
    NEUTRAL = "neutral"
    POLICY = "policy"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


@dataclass(frozen=True, slots=True)
class DkimResult:
    """What one DKIM-Signature field came to.

    ``domain``, ``selector``, ``identity`` and ``algorithm`` are what the
    signature says (empty when it could not be read that far); they feed
    header.d, header.s, header.i and header.a of Authentication-Results.
    ``signature_prefix`` is the start of b= for header.b (RFC 6008).
    ``index`` is the field's position among the message's DKIM-Signature
    fields, from the top. ``testing`` is the key record's t=y flag.
    """

    result: Outcome
    reason: str
    domain: str = ""
    selector: str = ""
    identity: str = ""
    algorithm: str = ""
    index: int = 0
    key_bits: int | None = None
    testing: bool = False
    signature_prefix: str = ""

    @property
    def passed(self) -> bool:
        """True for ``pass``."""
        return self.result is Outcome.PASS

    def to_method_result(self) -> MethodResult:
        """The ``dkim=`` entry of an Authentication-Results field (RFC 8601 §2.7.1).

        ``header.d``, ``header.s`` and ``header.a`` name the signature (RFC
        8601 §2.7.1 registers d, i and b; s and a come from RFC 7410's
        registry), ``header.b`` its first octets so that several signatures
        of one domain can be told apart (RFC 6008); the reason goes into
        ``reason=`` unless the signature passed.
        """
        return result(
            "dkim",
            self.result.value,
            [
                ("header", "d", self.domain or None),
                ("header", "i", self.identity or None),
                ("header", "s", self.selector or None),
                ("header", "a", self.algorithm or None),
                ("header", "b", self.signature_prefix or None),
            ],
            reason=None if self.passed else self.reason,
        )

    def as_dict(self) -> dict[str, Any]:
        """The result as plain data, for ``--json`` output (``dkim verify``, ``auth check``)."""
        return {
            "domain": self.domain,
            "selector": self.selector,
            "algorithm": self.algorithm,
            "identity": self.identity,
            "result": self.result.value,
            "reason": self.reason,
            "key_bits": self.key_bits,
            "testing": self.testing,
        }
