"""ARC, the Authenticated Received Chain (RFC 8617): validating chains and sealing.

Validating, as a sans-IO evaluation or through the shared resolver::

    result = run_sync(verify_chain(message), answer)
    result = await check_arc(resolver, message)
    field = result.to_method_result()          # arc=pass / fail / none

Sealing, as an intermediary that has just validated the chain::

    sealer = ArcSealer(domain="example.org", selector="arc", key=pem,
                       authserv_id="mx.example.org")
    sealed = sealer.seal(message, result)
    message = b"".join(sealed.fields) + message

See ``docs/arc.md`` for what is checked and what is not.
"""

from mailwright.auth.arc.errors import ArcError, SealerConfigError, SealError
from mailwright.auth.arc.result import ArcResult, ArcSetResult, ChainStatus
from mailwright.auth.arc.seal import ArcSealer, NotSealed, Sealed
from mailwright.auth.arc.verify import check_arc, verify_chain

__all__ = [
    "ArcError",
    "ArcResult",
    "ArcSealer",
    "ArcSetResult",
    "ChainStatus",
    "NotSealed",
    "SealError",
    "Sealed",
    "SealerConfigError",
    "check_arc",
    "verify_chain",
]
