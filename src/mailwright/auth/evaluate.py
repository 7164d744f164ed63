"""One message through SPF, DKIM, ARC and DMARC, as a receiving MTA checks it.

Each method has its own package and can be run alone; this module is the
order a receiver runs them in and the one verdict that comes out, so that
the MX (issue 4's enforcement policy), ``mailwright auth check`` and the
benchmarks all evaluate a message the same way:

1. SPF for the MAIL FROM identity (the HELO name for a null reverse-path,
   RFC 7208 §2.4), and optionally for the HELO identity on its own (§2.3);
2. DKIM, every signature (RFC 6376 §6), and the ARC chain (RFC 8617 §5.2),
   concurrently with SPF: none of the three needs another's answer;
3. DMARC (RFC 9989) last, from the SPF result and domain and each DKIM
   signature's domain and result.

:class:`Verdict` holds the four results and renders them as one
Authentication-Results field (RFC 8601) or as the plain data of
``auth check --json``. Nothing here raises for what a message or DNS holds:
every method reports trouble as its own result word.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mailwright.auth.arc import ArcResult, verify_chain
from mailwright.auth.authres import AuthenticationResults, MethodResult, header_field
from mailwright.auth.dkim import DkimResult, verify
from mailwright.auth.dmarc import DkimCheck, DmarcResult, Sampler, SpfCheck, author_domains_of
from mailwright.auth.dmarc import evaluate as evaluate_dmarc
from mailwright.auth.message import Message, parse_message
from mailwright.auth.spf import SpfResult, helo_identity, identity_for
from mailwright.auth.spf.receiver import log_checked, start_spf
from mailwright.dns.queries import CachingResolver, Progress, run, run_all

__all__ = ["SenderChecks", "Verdict", "authenticate", "check_sender"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the four methods said about one message from one client.

    ``spf`` is the check DMARC uses (MAIL FROM, or HELO for a bounce);
    ``helo`` the separate HELO check when it was asked for, else None;
    ``dkim`` one result per DKIM-Signature field, top first; ``ip`` the
    client address the checks were made for.
    """

    spf: SpfResult
    dkim: tuple[DkimResult, ...]
    arc: ArcResult
    dmarc: DmarcResult
    ip: str
    helo: SpfResult | None = None

    def method_results(self) -> tuple[MethodResult, ...]:
        """Each method's entry for Authentication-Results, in the order they ran.

        A message without DKIM signatures gets ``dkim=none`` (RFC 8601
        §2.7.1); the separate HELO check, when made, follows the MAIL FROM one.
        """
        found: list[MethodResult] = [_entry(self.spf)]
        if self.helo is not None and self.helo.identity != self.spf.identity:
            found.append(_entry(self.helo))
        if self.dkim:
            found.extend(signature.to_method_result() for signature in self.dkim)
        else:
            found.append(_NO_DKIM)
        found.append(self.arc.to_method_result(self.ip))
        found.append(_entry(self.dmarc))
        return tuple(found)

    def authentication_results(self, authserv_id: str) -> AuthenticationResults:
        """The whole verdict as one Authentication-Results field from ``authserv_id``."""
        return AuthenticationResults(authserv_id, self.method_results())

    def header_field(self, authserv_id: str) -> bytes:
        """``Authentication-Results: ...`` with CRLF, ready to prepend to the message."""
        return header_field(self.authentication_results(authserv_id))

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``: result words as RFC 8601 spells them."""
        data: dict[str, Any] = {
            "spf": _spf_json(self.spf),
            "dkim": [signature.as_dict() for signature in self.dkim],
            "arc": {
                "result": self.arc.result.value,
                "reason": self.arc.reason,
                "instances": self.arc.highest_instance,
                "sealers": list(self.arc.sealer_domains),
                "oldest_pass": self.arc.oldest_pass,
            },
            "dmarc": _dmarc_json(self.dmarc),
        }
        if self.helo is not None:
            data["helo"] = _spf_json(self.helo)
        return data


_NO_DKIM = MethodResult("dkim", "none")

#: Entries of results met before, by identity: a result reused from the resolver's
#: memo (the same sender's SPF, the same domain's DMARC) is written once, not per message.
_ENTRIES: dict[int, tuple[object, MethodResult]] = {}
_MAX_ENTRIES = 4096


def _entry(checked: SpfResult | DmarcResult) -> MethodResult:
    """``checked.to_method_result()``, remembered for the very same result object."""
    known = _ENTRIES.get(id(checked))
    if known is not None and known[0] is checked:
        return known[1]
    entry = checked.to_method_result()
    if len(_ENTRIES) >= _MAX_ENTRIES:
        _ENTRIES.clear()
    _ENTRIES[id(checked)] = (checked, entry)
    return entry


@dataclass(frozen=True, slots=True)
class SenderChecks:
    """The SPF checks of the envelope, made at MAIL FROM: the one DMARC uses, and HELO's."""

    spf: SpfResult
    helo: SpfResult | None = None


def _spf_runs(
    resolver: CachingResolver,
    *,
    ip: str,
    helo: str,
    mail_from: str,
    receiver: str,
    check_helo: bool,
) -> tuple[Progress[SpfResult], Progress[SpfResult] | None]:
    memo = resolver.results
    spf_run = start_spf(ip=ip, mail_from=mail_from, helo=helo, receiver=receiver, memo=memo)
    helo_run: Progress[SpfResult] | None = None
    if check_helo and identity_for(mail_from, helo).scope != "helo" and helo_identity(helo).domain:
        helo_run = start_spf(
            ip=ip, mail_from="", helo=helo, receiver=receiver, helo_only=True, memo=memo
        )
    return spf_run, helo_run


def _checked(spf_run: Progress[SpfResult], helo_run: Progress[SpfResult] | None) -> SenderChecks:
    checks = SenderChecks(spf_run.result, helo_run.result if helo_run is not None else None)
    for checked in (checks.spf, checks.helo):
        if checked is not None:
            log_checked(checked)
    return checks


async def check_sender(
    resolver: CachingResolver,
    *,
    ip: str,
    helo: str,
    mail_from: str,
    receiver: str = "unknown",
    check_helo: bool = False,
) -> SenderChecks:
    """SPF for the MAIL FROM identity (and HELO's, with ``check_helo``), as at MAIL FROM.

    The result goes into :func:`authenticate` as ``sender`` at the end of
    the message, so SPF is not evaluated twice.
    """
    spf_run, helo_run = _spf_runs(
        resolver, ip=ip, helo=helo, mail_from=mail_from, receiver=receiver, check_helo=check_helo
    )
    await run_all(resolver, *(r for r in (spf_run, helo_run) if r is not None))
    return _checked(spf_run, helo_run)


async def authenticate(
    resolver: CachingResolver,
    message: bytes | Message,
    *,
    ip: str,
    helo: str,
    mail_from: str,
    receiver: str = "unknown",
    check_helo: bool = False,
    now: float | None = None,
    sender: SenderChecks | None = None,
    sample: Sampler | None = None,
) -> Verdict:
    """Run SPF, DKIM, ARC and then DMARC for ``message`` received from ``ip``.

    ``mail_from`` is the reverse-path as given (empty for a bounce), ``helo``
    the EHLO/HELO name, ``receiver`` this host's name for SPF's ``%{r}``.
    ``check_helo`` adds the HELO identity check RFC 7208 §2.3 recommends
    (skipped when the MAIL FROM check already was one). ``now`` fixes the
    clock for DKIM and ARC expiry checks. ``sender`` gives the SPF checks
    already made at MAIL FROM (:func:`check_sender`); ``sample`` enables
    the legacy ``pct`` draw of DMARC (see :mod:`mailwright.auth.dmarc.evaluate`).
    """
    parsed = parse_message(message) if isinstance(message, bytes) else message
    moment = time.time() if now is None else now

    # SPF, DKIM and ARC are independent: run_all answers each from the cache
    # as far as it goes without awaiting, then lets the rest go on concurrently.
    dkim_run = Progress(verify(parsed, now=moment))
    arc_run = Progress(verify_chain(parsed, now=moment))
    runs: list[Progress[Any]] = [dkim_run, arc_run]
    spf_run = helo_run = None
    if sender is None:
        spf_run, helo_run = _spf_runs(
            resolver,
            ip=ip,
            helo=helo,
            mail_from=mail_from,
            receiver=receiver,
            check_helo=check_helo,
        )
        runs.extend(r for r in (spf_run, helo_run) if r is not None)
    await run_all(resolver, *runs)

    if spf_run is not None:
        sender = _checked(spf_run, helo_run)
    assert sender is not None
    spf, dkim, arc = sender.spf, dkim_run.result, arc_run.result

    dmarc = await _dmarc(resolver, parsed, spf, dkim, sample)
    return Verdict(spf=spf, dkim=tuple(dkim), arc=arc, dmarc=dmarc, ip=ip, helo=sender.helo)


async def _dmarc(
    resolver: CachingResolver,
    parsed: Message,
    spf: SpfResult,
    dkim: Sequence[DkimResult],
    sample: Sampler | None,
) -> DmarcResult:
    """DMARC for the message, reusing an evaluation of the same inputs while DNS allows.

    The result depends on the From domains, the SPF and DKIM inputs and DNS
    only (not on the From addresses' local parts), so those are the key; a
    result that took a ``pct`` draw is never reused.
    """
    authors = author_domains_of(parsed)
    spf_check = SpfCheck(spf.result.value, spf.domain)
    dkim_checks = tuple(DkimCheck(s.domain, s.result.value, s.selector) for s in dkim if s.domain)
    memo = resolver.results
    key = (
        "dmarc", authors.domains, () if authors.domains else authors.problems,
        authors.field_count, spf_check, dkim_checks,
    )  # fmt: skip
    found: DmarcResult | None = memo.get(key)
    if found is not None:
        return found
    evaluation = evaluate_dmarc(authors, spf=spf_check, dkim=dkim_checks, sample=sample)
    return await run(memo.evaluation(key, evaluation, keep=_reusable), resolver)


def _reusable(result: DmarcResult) -> bool:
    """A result may be reused unless it took a ``pct`` draw or met a DNS failure."""
    return result.sampled is None and result.result.value != "temperror"


def _spf_json(result: SpfResult) -> dict[str, Any]:
    return {
        "result": result.result.value,
        "identity": result.identity,
        "domain": result.domain,
        "explanation": result.explanation or None,
        "reason": result.reason,
    }


def _dmarc_json(result: DmarcResult) -> dict[str, Any]:
    return {
        "result": result.result.value,
        "policy": None if result.policy is None else result.policy.value,
        "disposition": result.disposition.value,
        "author_domain": result.author_domain,
        "policy_domain": result.policy_domain,
        "spf_aligned": result.spf_aligned,
        "dkim_aligned": result.dkim_aligned,
        "test_mode": result.test_mode,
        "reason": result.reason,
    }
