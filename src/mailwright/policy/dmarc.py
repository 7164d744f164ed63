"""The built-in DMARC enforcement policy, written on the public hook API.

:class:`DmarcPolicy` is an ordinary policy object: it asks for
authentication (``NEEDS_AUTHENTICATION``) and decides in ``on_message``
from ``Message.auth``. The server puts it in front of the operator's
modules when ``[dmarc] enforce = true``; an operator who wants another
behaviour subclasses it (override :meth:`DmarcPolicy.override` or
:meth:`DmarcPolicy.act`) in a module of their own and sets ``enforce =
false``. docs/dmarc-enforcement.md shows both.

What it does with each message from an inbound client (RFC 9989 §5.4, §7.4):

1. A DMARC ``temperror`` (DNS failed on the way) answers 451 4.7.5 so the
   sender retries, unless ``temperror = "accept"``.
2. A failing message gets the disposition the evaluation derived (the
   policy after test mode ``t=y`` and a legacy ``pct`` draw), then the local
   overrides, in this order: ``allow_ips`` (source network), ``allow_domains``
   (the Author Domain or a parent of it), ``trusted_arc_sealers`` (a passing
   ARC chain sealed by one of them: forwarders and mailing lists), and
   ``monitor_domains`` (every recipient is in a monitor-only domain). Each
   override that changes the disposition is recorded as an RFC 9990 reason:
   ``local_policy``, ``trusted_forwarder`` or ``mailing_list``; test mode as
   ``policy_test_mode``.
3. ``reject`` answers 550 5.7.1 naming the domain's policy; ``quarantine``
   accepts, routes the message to the quarantine and adds an
   ``X-Mailwright-Quarantine`` field saying why; ``none`` delivers.
4. Every evaluation under a published record is recorded for the aggregate
   reports (:class:`~mailwright.reports.model.Evaluation`), rejected
   messages included; tempfailed ones are not (they come back).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mailwright.auth.dmarc import Policy, Record, Result
from mailwright.auth.evaluate import Verdict
from mailwright.config import DmarcConfig
from mailwright.policy.context import Message
from mailwright.policy.decisions import Decision, reject, tempfail
from mailwright.reports.model import (
    DkimAuth,
    Evaluation,
    OverrideReason,
    PolicyPublished,
    Row,
    SpfAuth,
)

logger = logging.getLogger("mailwright.dmarc")

QUARANTINE_FIELD = "X-Mailwright-Quarantine"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Recorder = Callable[[Evaluation], None]
FailureReporter = Callable[[Message, Verdict, Policy], None]  # returns at once


@dataclass(frozen=True, slots=True)
class DmarcSettings:
    """What the policy needs from ``[dmarc]``; see docs/configuration.md."""

    quarantine: str  # a route string
    allow_ips: tuple[Network, ...] = ()
    allow_domains: tuple[str, ...] = ()
    trusted_arc_sealers: tuple[str, ...] = ()
    monitor_domains: tuple[str, ...] = ()
    temperror: str = "tempfail"  # or "accept"

    @classmethod
    def from_config(cls, config: DmarcConfig) -> DmarcSettings:
        """From ``[dmarc]``."""
        return cls(
            quarantine=config.quarantine,
            allow_ips=tuple(ipaddress.ip_network(net) for net in config.allow_ips),
            allow_domains=config.allow_domains,
            trusted_arc_sealers=config.trusted_arc_sealers,
            monitor_domains=config.monitor_domains,
            temperror=config.temperror,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """The disposition applied to one message and the reasons it differs from the policy."""

    disposition: Policy
    reasons: tuple[OverrideReason, ...] = ()


class DmarcPolicy:
    """Enforce DMARC at the end of data; record every evaluation for reports."""

    API_VERSION = 1
    NEEDS_AUTHENTICATION = True

    def __init__(
        self,
        settings: DmarcSettings,
        *,
        record: Recorder | None = None,
        failure_reports: FailureReporter | None = None,
    ) -> None:
        self.settings = settings
        self.record = record
        self.failure_reports = failure_reports

    def on_message(self, message: Message) -> Decision | None:
        """Decide on ``message`` from its DMARC result (see the module docstring).

        A plain function, not a coroutine: it never waits for anything (a
        failure report is worked out in the background), so the chain runs
        it without a coroutine or a timeout around it.
        """
        verdict = message.auth
        if verdict is None:
            return None  # not checked: submission or an authenticated client
        dmarc = verdict.dmarc

        if dmarc.result is Result.TEMPERROR and self.settings.temperror == "tempfail":
            logger.info(
                "dmarc.temperror ip=%s domain=%s reason=%s",
                verdict.ip, dmarc.author_domain, dmarc.reason,
            )  # fmt: skip
            return tempfail(
                f"Temporary failure checking the DMARC policy of {dmarc.author_domain}, "
                "try again later",
                status="4.7.5",
                reason=dmarc.reason,
            )

        outcome = self.override(message, verdict, self.disposition(verdict))
        if self.record is not None and dmarc.record is not None:
            self.record(evaluation_of(message, verdict, outcome))
        if self.failure_reports is not None and dmarc.record is not None and dmarc.record.ruf:
            # fo=1, d or s may ask for a report about a message that passed: the
            # reporter decides (and returns at once; the report is queued later).
            self.failure_reports(message, verdict, outcome.disposition)
        return self.act(message, verdict, outcome)

    def disposition(self, verdict: Verdict) -> Outcome:
        """The disposition the evaluation derived, with test mode's reason when it applied."""
        dmarc = verdict.dmarc
        if dmarc.result is not Result.FAIL:
            return Outcome(Policy.NONE)
        reasons: tuple[OverrideReason, ...] = ()
        if dmarc.test_mode and dmarc.policy is not None and dmarc.policy is not Policy.NONE:
            reasons = (OverrideReason("policy_test_mode", "t=y: one level milder"),)
        elif dmarc.sampled is False:
            pct = dmarc.record.pct if dmarc.record is not None else None
            reasons = (OverrideReason("other", f"pct={pct}: not sampled"),)
        return Outcome(dmarc.disposition, reasons)

    def override(self, message: Message, verdict: Verdict, outcome: Outcome) -> Outcome:
        """Apply the local overrides to a quarantine or reject; subclasses may add their own."""
        if outcome.disposition is Policy.NONE:
            return outcome
        settings = self.settings

        reason = None
        address = _address(verdict.ip)
        network = next((net for net in settings.allow_ips if address in net), None)
        if address is not None and network is not None:
            reason = OverrideReason("local_policy", f"source {verdict.ip} in allow_ips {network}")
        author = verdict.dmarc.author_domain or ""
        allowed = _listed(author, settings.allow_domains)
        if reason is None and allowed is not None:
            reason = OverrideReason("local_policy", f"{author} in allow_domains ({allowed})")
        if reason is None and settings.trusted_arc_sealers:
            sealed = verdict.arc.trusted_set(settings.trusted_arc_sealers)
            if sealed is not None:
                kind = "mailing_list" if message.header("List-Id") else "trusted_forwarder"
                reason = OverrideReason(kind, f"arc=pass sealed by {sealed.seal_domain}")
        domains = {address.rpartition("@")[2].lower() for address in message.recipients}
        if (
            reason is None
            and domains
            and all(_listed(domain, settings.monitor_domains) for domain in domains)
        ):
            monitored = ", ".join(sorted(domains))
            reason = OverrideReason("local_policy", f"monitor-only for {monitored}")

        if reason is None:
            return outcome
        logger.info(
            "dmarc.override ip=%s domain=%s disposition=%s type=%s comment=%s",
            verdict.ip, author, outcome.disposition.value, reason.type, reason.comment,
        )  # fmt: skip
        return Outcome(Policy.NONE, (*outcome.reasons, reason))

    def act(self, message: Message, verdict: Verdict, outcome: Outcome) -> Decision | None:
        """Carry out the disposition: a 550, a quarantine route and field, or nothing."""
        dmarc = verdict.dmarc
        domain = dmarc.policy_domain or dmarc.author_domain
        tag = dmarc.policy_tag or "p"
        if outcome.disposition is Policy.REJECT:
            logger.info("dmarc.reject ip=%s domain=%s", verdict.ip, dmarc.author_domain)
            return reject(
                f"Rejected by the DMARC policy of {domain} ({tag}=reject): "
                f"the From domain {dmarc.author_domain} is not authenticated",
                reason=dmarc.reason,
            )
        if outcome.disposition is Policy.QUARANTINE:
            logger.info("dmarc.quarantine ip=%s domain=%s", verdict.ip, dmarc.author_domain)
            message.route = self.settings.quarantine
            message.add_header(
                QUARANTINE_FIELD,
                f"dmarc={dmarc.result.value}; policy={tag}=quarantine; "
                f"domain={domain}; header.from={dmarc.author_domain}",
            )
        return None


def evaluation_of(message: Message, verdict: Verdict, outcome: Outcome) -> Evaluation:
    """The record of one evaluation, for the aggregate report of its policy domain."""
    dmarc = verdict.dmarc
    record = dmarc.record
    assert record is not None
    policy, rua, ruf = _published(record, dmarc.policy_domain or dmarc.author_domain or "")
    spf = verdict.spf
    sender = message.transaction.sender
    recipients = message.recipients
    disposition = "pass" if dmarc.result is Result.PASS else outcome.disposition.value
    row = Row(
        source_ip=verdict.ip,
        count=1,
        disposition=disposition,
        dkim="pass" if dmarc.dkim_aligned else "fail",
        spf="pass" if dmarc.spf_aligned else "fail",
        header_from=dmarc.author_domain or "",
        envelope_from=sender.rpartition("@")[2].lower() if "@" in sender else None,
        envelope_to=recipients[0].rpartition("@")[2].lower() if recipients else None,
        reasons=outcome.reasons,
        dkim_results=tuple(
            DkimAuth(s.domain, s.result.value, s.selector) for s in verdict.dkim if s.domain
        ),
        spf_results=(SpfAuth(spf.domain or "", spf.result.value, _scope(spf.identity)),),
    )
    return Evaluation(
        received_at=message.envelope.received_at or 0.0, policy=policy, row=row, rua=rua, ruf=ruf
    )


@functools.lru_cache(maxsize=4096)
def _published(
    record: Record, domain: str
) -> tuple[PolicyPublished, tuple[str, ...], tuple[str, ...]]:
    """A record as a report's ``policy_published``, with its report URIs (memoised: pure)."""
    policy = PolicyPublished(
        domain=domain,
        p=record.policy.value,
        sp=record.sp.value if record.sp is not None else None,
        np=record.np.value if record.np is not None else None,
        adkim=record.adkim.value if record.adkim is not None else None,
        aspf=record.aspf.value if record.aspf is not None else None,
        testing="y" if record.test_mode else "n",
        discovery_method="treewalk",
        fo=":".join(record.fo) if record.fo else None,
        pct=record.pct,
    )
    rua = tuple(uri.to_text() for uri in record.rua)
    ruf = tuple(uri.to_text() for uri in record.ruf)
    return policy, rua, ruf


def _scope(identity: str) -> str:
    return "helo" if identity == "helo" else "mfrom"


def _address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        return None


def _listed(domain: str, listed: Sequence[str]) -> str | None:
    """The entry of ``listed`` that is ``domain`` or a parent of it, or None."""
    name = domain.lower().rstrip(".")
    for entry in listed:
        if name == entry or name.endswith("." + entry):
            return entry
    return None
