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
