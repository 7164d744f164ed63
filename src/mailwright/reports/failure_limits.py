"""How many failure reports go out: per policy domain, in all, and once per failure path.

Anyone can send mail in a victim's name that fails SPF and DKIM, and every
receiver that sends failure reports then mails the victim (or whoever its
``ruf`` names) one report per message: a denial of service carried out with
other people's servers. RFC 9991 §2 therefore requires a rate limit, and
§8.1 suggests coalescing like incidents, since "the aim is not to count
each and every failure, but rather to report different failure conditions".

:class:`FailureReportLimiter` does both, in memory:

* **coalescing**: a failure with the same fingerprint
  (:func:`failure_fingerprint`: policy and Author Domain, source address,
  each result and domain) as one reported less than ``coalesce`` seconds
  ago is not reported; it is counted, and the next report of that
  fingerprint says how many it stands for (RFC 5965's Incidents field);
* **per policy domain**: at most ``per_domain`` reports in any ``window``
  seconds (a sliding window), so one attacked domain cannot use up the
  budget of all the others;
* **in all**: at most ``total`` reports in any ``window``, which bounds what
  an attack spread over many domains can make us send.

Reports over a limit are dropped, not queued: holding them would only
delay the flood. Memory is bounded by ``max_tracked`` fingerprints and
domains; past that, the oldest are forgotten first. The clock is a
parameter (monotonic seconds), so tests run an hour in a microsecond.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Literal

from mailwright.auth.evaluate import Verdict

__all__ = ["Admission", "FailureReportLimiter", "LimiterStatistics", "failure_fingerprint"]


def failure_fingerprint(verdict: Verdict) -> tuple[str, ...]:
    """What makes two failures "the same failure path": domains, source and results.

    The policy domain, the Author Domain, the source address, SPF's result
    and domain, each DKIM signature's result and domain (in order), and the
    DMARC result. Everything else (recipients, time, content) may differ.
    """
    dmarc = verdict.dmarc
    dkim = ";".join(f"{signature.result.value}:{signature.domain}" for signature in verdict.dkim)
    return (
        dmarc.policy_domain or "",
        dmarc.author_domain or "",
        verdict.ip,
        verdict.spf.result.value,
        verdict.spf.domain,
        dkim,
        dmarc.result.value,
    )


@dataclass(frozen=True, slots=True)
class Admission:
    """The limiter's answer for one failure.

    ``allowed`` says whether to send a report. ``incidents`` is how many
    failures that report stands for, this one and those coalesced into it
    since the last report of the same fingerprint (0 when not allowed).
    ``reason`` is ``allowed``, ``coalesced`` (a report of the same failure
    went out recently), ``domain-limit`` or ``total-limit``.
    """

    allowed: bool
    incidents: int
    reason: Literal["allowed", "coalesced", "domain-limit", "total-limit"]


@dataclass(frozen=True, slots=True)
class LimiterStatistics:
    """A snapshot of the limiter's counters since it was made, for metrics."""

    allowed: int
    coalesced: int
    domain_limited: int
    total_limited: int
    tracked_domains: int
    tracked_fingerprints: int


@dataclass(slots=True)
class _Seen:
    """One fingerprint: when it was last reported, and how many failures went unreported since."""

    reported_at: float | None
    unreported: int = 0


class FailureReportLimiter:
    """Rate limits and coalescing for failure reports, kept in memory (see the module docstring).

    ``per_domain`` and ``total`` reports are allowed in any ``window``
    seconds; identical failures within ``coalesce`` seconds of a report are
    counted instead of reported. ``clock`` gives monotonic seconds. Raises
    :class:`ValueError` for a limit below 1 or a window that is not positive.

    The limits hold per instance: a server with several receiver processes
    has one limiter in each, built with that process's share of the limits
    (:mod:`mailwright.server.policies`).
    """

    # TODO: the shares are fixed, so a domain whose failures all reach one process
    # gets fewer reports than the limit allows, and identical failures seen by two
    # processes are reported by each; shared counts (the evaluation store) would fix it.

    def __init__(
        self,
        *,
        per_domain: int = 10,
        total: int = 500,
        window: float = 3600.0,
        coalesce: float = 3600.0,
        max_tracked: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (
            ("per_domain", per_domain),
            ("total", total),
            ("max_tracked", max_tracked),
        ):
            if value < 1:
                raise ValueError(f"{name} must be 1 or more, got {value}")
        if window <= 0 or coalesce < 0:
            raise ValueError(
                f"window must be positive and coalesce not negative: {window}, {coalesce}"
            )
        self.per_domain = per_domain
        self.total = total
        self.window = window
        self.coalesce = coalesce
        self.max_tracked = max_tracked
        self._clock = clock
        self._domains: OrderedDict[str, deque[float]] = OrderedDict()
        self._all: deque[float] = deque()
        self._seen: OrderedDict[tuple[str, Hashable], _Seen] = OrderedDict()
        self._counts = {"allowed": 0, "coalesced": 0, "domain-limit": 0, "total-limit": 0}

    def admit(self, domain: str, fingerprint: Hashable | None = None) -> Admission:
        """Whether to send a report about one failure under ``domain``'s policy.

        ``domain`` is the policy domain (case does not matter);
        ``fingerprint`` identifies the failure path, :func:`failure_fingerprint`
        of the verdict as a rule; None never coalesces. An allowed report is
        counted against the limits at once: call this only when about to send.
        """
        now = self._clock()
        key = domain.lower().rstrip(".")
        seen = None if fingerprint is None else self._seen.get((key, fingerprint))

        last = seen.reported_at if seen is not None else None
        if last is not None and now - last < self.coalesce:
            return self._refuse(seen, "coalesced")

        sent = self._domains.get(key)
        if sent is not None:
            _expire(sent, now - self.window)
        if sent is not None and len(sent) >= self.per_domain:
            return self._refuse(self._track(key, fingerprint, seen), "domain-limit")
        _expire(self._all, now - self.window)
        if len(self._all) >= self.total:
            return self._refuse(self._track(key, fingerprint, seen), "total-limit")

        incidents = 1 + (seen.unreported if seen is not None else 0)
        if fingerprint is not None:
            self._seen.pop((key, fingerprint), None)
            self._seen[(key, fingerprint)] = _Seen(now)
        if sent is None:
            sent = self._domains[key] = deque()
        self._domains.move_to_end(key)
        sent.append(now)
        self._all.append(now)
        self._counts["allowed"] += 1
        self._forget(now)
        return Admission(True, incidents, "allowed")

    def statistics(self) -> LimiterStatistics:
        """The counters now; cheap enough to call for every metrics scrape."""
        return LimiterStatistics(
            allowed=self._counts["allowed"],
            coalesced=self._counts["coalesced"],
            domain_limited=self._counts["domain-limit"],
            total_limited=self._counts["total-limit"],
            tracked_domains=len(self._domains),
            tracked_fingerprints=len(self._seen),
        )

    def _refuse(
        self,
        seen: _Seen | None,
        reason: Literal["coalesced", "domain-limit", "total-limit"],
    ) -> Admission:
        if seen is not None:
            seen.unreported += 1
        self._counts[reason] += 1
        return Admission(False, 0, reason)

    def _track(self, key: str, fingerprint: Hashable | None, seen: _Seen | None) -> _Seen | None:
        """The fingerprint's entry, made (never reported) so refused failures are counted."""
        if fingerprint is None or seen is not None:
            return seen
        seen = self._seen[(key, fingerprint)] = _Seen(None)
        self._forget(self._clock())
        return seen

    def _forget(self, now: float) -> None:
        """Keep memory bounded: drop idle domains and the oldest fingerprints past the cap."""
        while len(self._seen) > self.max_tracked:
            self._seen.popitem(last=False)
        while len(self._domains) > self.max_tracked:
            self._domains.popitem(last=False)
        # Domains are kept in order of their last report, so idle ones are at the front.
        while self._domains:
            oldest = next(iter(self._domains.values()))
            if oldest and oldest[-1] > now - self.window:
                break
            self._domains.popitem(last=False)


def _expire(times: deque[float], before: float) -> None:
    """Drop the times at or before ``before`` from the left of ``times`` (oldest first)."""
    while times and times[0] <= before:
        times.popleft()
