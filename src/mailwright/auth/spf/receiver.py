"""SPF as a receiving MTA runs it: the MAIL FROM identity, on the shared resolver.

:func:`check_spf` is the asyncio edge around the sans-IO evaluator: it picks
the identity (the MAIL FROM domain, or the HELO domain for a null
reverse-path, RFC 7208 §2.4), reads the clock for ``%{t}``, drives
:func:`~mailwright.auth.spf.evaluate.check_host` against a
:class:`~mailwright.dns.queries.CachingResolver` and bounds the whole check
in time: §4.6.4 asks for a limit of at least 20 seconds, past which the
result is temperror.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from mailwright.auth.spf.evaluate import DEFAULT_EXPLANATION, check_host
from mailwright.auth.spf.identity import Address, helo_identity, identity_for
from mailwright.auth.spf.limits import DEFAULT_LIMITS, Limits
from mailwright.auth.spf.result import Result, SpfResult
from mailwright.dns.queries import CachingResolver, Evaluation, Progress, ResultMemo

log = logging.getLogger("mailwright.auth.spf")

#: Seconds one check may take before it is temperror (§4.6.4 asks for at least 20).
DEFAULT_TIME_LIMIT = 20.0


async def check_spf(
    resolver: CachingResolver,
    *,
    ip: str | Address,
    mail_from: str,
    helo: str,
    receiver: str = "unknown",
    default_explanation: str = DEFAULT_EXPLANATION,
    limits: Limits = DEFAULT_LIMITS,
    time_limit: float = DEFAULT_TIME_LIMIT,
    clock: Callable[[], float] = time.time,
    helo_only: bool = False,
) -> SpfResult:
    """Check the MAIL FROM identity of a client, or its HELO name for a null reverse-path.

    ``mail_from`` is the reverse-path as given to MAIL FROM (angle brackets
    optional, empty for a bounce); ``receiver`` is this host's name for
    ``%{r}``. ``helo_only`` checks the HELO identity whatever the reverse-path,
    the separate check §2.3 recommends (at HELO time, ``mail_from`` may be
    empty). Never raises for bad input or DNS trouble: every outcome is an
    :class:`SpfResult`, temperror when ``time_limit`` seconds pass.
    """
    progress = start_spf(
        ip=ip,
        mail_from=mail_from,
        helo=helo,
        receiver=receiver,
        default_explanation=default_explanation,
        limits=limits,
        time_limit=time_limit,
        clock=clock,
        helo_only=helo_only,
    )
    result = await progress.finish(resolver)
    log_checked(result)
    return result


def start_spf(
    *,
    ip: str | Address,
    mail_from: str,
    helo: str,
    receiver: str = "unknown",
    default_explanation: str = DEFAULT_EXPLANATION,
    limits: Limits = DEFAULT_LIMITS,
    time_limit: float = DEFAULT_TIME_LIMIT,
    clock: Callable[[], float] = time.time,
    helo_only: bool = False,
    memo: ResultMemo | None = None,
) -> Progress[SpfResult]:
    """The check :func:`check_spf` makes, not yet driven, for running beside others.

    The arguments are those of :func:`check_spf`; the :class:`Progress` ends
    in temperror after ``time_limit`` seconds of waiting for DNS. Drive it
    with :func:`~mailwright.dns.queries.run_all` and pass the result to
    :func:`log_checked`. With ``memo`` (the resolver's
    :class:`~mailwright.dns.queries.ResultMemo`), a check made before with
    the same inputs, whose DNS answers are all still cached, is not made
    again: its result comes back at once.
    """
    key = None
    if memo is not None:
        # XXX(RFC 7208 §7.3): the %{t} macro (the check's time) is not in the key; a
        # record using it gets the result of an earlier check while its answers last.
        key = ("spf", str(ip), mail_from, helo, receiver, helo_only, default_explanation)
        found = memo.get(key)
        if found is not None:
            return Progress(_known(found))
    identity = helo_identity(helo) if helo_only else identity_for(mail_from, helo)
    evaluation = check_host(
        ip,
        identity.domain,
        identity.sender,
        helo=helo,
        identity=identity.scope,
        receiver=receiver,
        timestamp=int(clock()),
        default_explanation=default_explanation,
        limits=limits,
    )

    def expired() -> SpfResult:
        return SpfResult(
            Result.TEMPERROR,
            identity.domain,
            identity.sender,
            identity.scope,
            str(ip),
            f"the check took longer than {time_limit:g} s (RFC 7208 §4.6.4)",
        )

    if memo is not None:
        evaluation = memo.evaluation(key, evaluation, keep=_definite)
    return Progress(evaluation, time_limit=time_limit, expired=expired)


def _known(result: SpfResult) -> Evaluation[SpfResult]:
    """An evaluation that asks nothing and gives ``result``."""
    yield from ()
    return result


def _definite(result: SpfResult) -> bool:
    """Whether a result may be kept: not temperror (DNS may answer next time)."""
    return result.result is not Result.TEMPERROR


def log_checked(result: SpfResult) -> None:
    """Log one finished check at DEBUG (``auth.spf.checked``)."""
    log.debug(
        "auth.spf.checked result=%s identity=%s domain=%s ip=%s lookups=%d void=%d",
        result.result,
        result.identity,
        result.domain,
        result.ip,
        result.lookups,
        result.void_lookups,
    )
