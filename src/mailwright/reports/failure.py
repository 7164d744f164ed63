"""DMARC failure reports (RFC 9991, on RFC 6591's auth-failure ARF): when, what, how often.

A Domain Owner that publishes ``ruf`` asks receivers to tell it, message
by message, when mail using its domain fails authentication; ``fo`` says
which failures (RFC 9989 §4.7). Such a report shows what was done with
someone's mail to someone else, so mailwright sends none unless the
operator turns them on (``[dmarc] failure_reports``), and then only:

* when :func:`failure_report_due` says the record asks for one: it has
  ``ruf``, is not a Public Suffix Domain's (``psd=y``, RFC 9991 §2), the
  DMARC result is a definite pass or fail, ``fo`` selects the message
  (:func:`wants_failure_report`), and the message is not itself a report
  (no report loops, RFC 9991 §5.1);
* to destinations that agreed to receive them (RFC 9991 §5):
  :func:`check_failure_destinations` runs the check of
  :mod:`.destinations` on ``ruf``;
* as often as :class:`FailureReportLimiter` lets through: a few per policy
  domain per hour, identical failures coalesced (RFC 9991 §2, §8.1).

:func:`build_failure_report` writes the report: a ``multipart/report``
(RFC 6522) of a short text for people, the ``message/feedback-report``
fields (RFC 5965, RFC 6591 §3, RFC 9991 §4), and the original header only,
redacted by :mod:`.redaction`, as ``text/rfc822-headers``. The body is never
included. The MIME is written by hand, as :mod:`mailwright.bounce` does, so
that the original's header octets are not re-folded or re-encoded.

For ``fo=d`` and ``fo=s`` we send this DMARC report too, rather than the
separate DKIM and SPF reports of RFC 6651 and RFC 6652, which RFC 9991 §3
allows. Nothing here does I/O: the limiter's clock is a parameter and the
destination check is a sans-IO evaluator that the caller drives with
:func:`mailwright.dns.queries.run`. From an async hook::

    if settings.failure_reports and failure_report_due(verdict, message.content):
        checked = await run(check_failure_destinations(verdict), resolver)
        destinations = [d.mailbox for d in checked if d.accepted and d.mailbox]
        admission = limiter.admit(verdict.dmarc.policy_domain or "", failure_fingerprint(verdict))
        if destinations and admission.allowed:
            report = build_failure_report(
                verdict, message.content, envelope=message.envelope,
                reporter_hostname=hostname, report_from=settings.report_from,
                destinations=destinations, now=time.time(), incidents=admission.incidents,
            )
            await inject(*report)
"""

from __future__ import annotations

import email.utils
import ipaddress
import re
import secrets
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

from mailwright import __version__
from mailwright.auth.authres import format_results
from mailwright.auth.dmarc import PsdFlag, Result, is_aligned
from mailwright.auth.dmarc.record import AlignmentMode
from mailwright.auth.evaluate import Verdict
from mailwright.auth.message import parse_message
from mailwright.bounce import decode_xtext
from mailwright.envelope import Envelope, Recipient
from mailwright.errors import MailwrightError
from mailwright.reports.destinations import Evaluator as DestinationCheck
from mailwright.reports.destinations import check_destinations
from mailwright.reports.failure_limits import (
    Admission,
    FailureReportLimiter,
    LimiterStatistics,
    failure_fingerprint,
)
from mailwright.reports.redaction import DEFAULT_REDACTION, Redaction

__all__ = [
    "DKIM_FAILURES",
    "SPF_FAILURES",
    "Admission",
    "DeliveryResult",
    "FailureReportError",
    "FailureReportLimiter",
    "LimiterStatistics",
    "MechanismResult",
    "Redaction",
    "build_failure_report",
    "check_failure_destinations",
    "failure_fingerprint",
    "failure_report_due",
    "is_feedback_report",
    "mechanism_results",
    "wants_failure_report",
]

#: DKIM results that count as "a signature that failed evaluation" for ``fo=d``: it
#: did not verify (fail), RFC 8301 forbids it (policy), or it or its key is broken
#: (permerror). temperror (try again later) and neutral (not examined) do not.
DKIM_FAILURES = frozenset({"fail", "policy", "permerror"})

#: SPF results that count as "failed SPF evaluation" for ``fo=s``: the client is not
#: authorised, strongly or weakly (fail, softfail), or the record is broken (permerror).
SPF_FAILURES = frozenset({"fail", "softfail", "permerror"})

#: RFC 6591 §3.2 Delivery-Result values.
DeliveryResult = Literal["delivered", "spam", "policy", "reject", "other"]

_DEFAULT_OPTIONS = ("0",)
_MAX_LINE = 998 - len("Authentication-Results: ")
_USER_AGENT = f"mailwright/{__version__}"
_MAILBOX = re.compile(r"[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


class FailureReportError(MailwrightError, ValueError):
    """A failure report cannot be built from what was given; the message names the value."""


class MechanismResult(NamedTuple):
    """One authentication result as ``fo`` sees it: the result word, and alignment.

    ``aligned`` says whether the authenticated identifier (SPF's MAIL FROM
    domain, DKIM's ``d=``) aligns with the Author Domain; it only matters
    for a ``pass``, which together with it is an *aligned pass*.
    """

    result: str
    aligned: bool = False

    @property
    def aligned_pass(self) -> bool:
        """True for a ``pass`` whose identifier aligns (RFC 9989 §4.4)."""
        return self.aligned and self.result.strip().lower() == "pass"


def wants_failure_report(
    fo: tuple[str, ...] | None,
    *,
    dkim_results: Sequence[MechanismResult],
    spf_result: MechanismResult,
    dmarc_passed: bool,
) -> bool:
    """Whether the failure reporting options ``fo`` ask for a report (RFC 9989 §4.7).

    Options combine: a report is wanted when any one of them is met.

    * ``0`` (the default, also for None or empty): every mechanism failed to
      produce an aligned pass, that is DMARC did not pass (``dmarc_passed``);
    * ``1``: some mechanism produced something other than an aligned pass:
      SPF was not an aligned pass, or no DKIM signature was (a message
      without signatures counts, as DKIM then produced ``none``);
    * ``d``: some DKIM signature failed evaluation (:data:`DKIM_FAILURES`),
      aligned or not;
    * ``s``: SPF failed evaluation (:data:`SPF_FAILURES`), aligned or not.

    Unknown options are ignored (the record parser already reported them).
    The caller checks that the record has ``ruf``; ``fo`` means nothing
    without it.
    """
    options = {option.strip().lower() for option in fo or ()} or set(_DEFAULT_OPTIONS)
    if "0" in options and not dmarc_passed:
        return True
    if "1" in options:
        dkim_aligned_pass = any(result.aligned_pass for result in dkim_results)
        if not (spf_result.aligned_pass and dkim_aligned_pass):
            return True
    if "d" in options and any(_word(r.result) in DKIM_FAILURES for r in dkim_results):
        return True
    return "s" in options and _word(spf_result.result) in SPF_FAILURES


def mechanism_results(verdict: Verdict) -> tuple[MechanismResult, tuple[MechanismResult, ...]]:
    """SPF's and each DKIM signature's result in a verdict, aligned as DMARC found them."""
    dmarc = verdict.dmarc
    aligned_domains = {domain.lower().rstrip(".") for domain in dmarc.aligned_dkim_domains}
    spf = MechanismResult(verdict.spf.result.value, aligned=dmarc.spf_aligned)
    dkim = tuple(
        MechanismResult(
            signature.result.value,
            aligned=signature.domain.lower().rstrip(".") in aligned_domains,
        )
        for signature in verdict.dkim
    )
    return spf, dkim


def failure_report_due(verdict: Verdict, message: bytes | None = None) -> bool:
    """Whether the record that applied asks for a failure report about this message.

    False without a record or without ``ruf`` (RFC 9989 §4.7: no ``ruf``, no
    reports, and ``fo`` is ignored), for a record with ``psd=y`` (RFC 9991
    §2), for a DMARC result other than pass or fail (temperror leaves the
    alignment unknown), and when ``message`` is itself a feedback report
    (:func:`is_feedback_report`). Otherwise :func:`wants_failure_report`
    decides from the record's ``fo``. Whether the operator sends reports at
    all is the caller's question.
    """
    dmarc = verdict.dmarc
    record = dmarc.record
    if record is None or not record.ruf or record.psd_flag is PsdFlag.YES:
        return False
    if dmarc.result not in (Result.PASS, Result.FAIL):
        return False
    if message is not None and is_feedback_report(message):
        return False
    spf, dkim = mechanism_results(verdict)
    return wants_failure_report(
        record.fo, dkim_results=dkim, spf_result=spf, dmarc_passed=dmarc.result is Result.PASS
    )


def is_feedback_report(message: bytes) -> bool:
    """True when ``message`` is an ARF report (``multipart/report; report-type=feedback-report``).

    Reports about reports could go back and forth forever (RFC 9991 §5.1).
    """
    for header in parse_message(message).fields("content-type"):
        value = header.unfolded.lower()
        if "multipart/report" in value and "feedback-report" in value:
            return True
    return False


def check_failure_destinations(verdict: Verdict) -> DestinationCheck:
    """Decide which of the applied record's ``ruf`` destinations may receive reports.

    A sans-IO evaluator: ``await run(check_failure_destinations(verdict),
    resolver)`` gives one :class:`~.destinations.Destination` per published
    URI; send to the ``mailbox`` of those that are ``accepted``. The check is
    the aggregate reports' (:func:`~.destinations.check_destinations`, RFC 9990
    §4), with ``ruf`` for ``rua`` as RFC 9991 §5 asks: only ``mailto:``, each
    mailbox once, and a mailbox outside the policy domain's Organizational
    Domain only with the Report Consumer's agreement record. A ``psd=y``
    record, or none, gives no destination (RFC 9991 §2). The obsolete
    ``!size`` limits are not applied: RFC 9989 §4.8 says to ignore them, and
    a failure report is small.
    """
    dmarc = verdict.dmarc
    record = dmarc.record
    domain = dmarc.policy_domain or dmarc.author_domain or ""
    if record is None or record.psd_flag is PsdFlag.YES or not domain:
        return check_destinations(domain, ())
    return check_destinations(domain, [uri.to_text() for uri in record.ruf])


def build_failure_report(
    verdict: Verdict,
    message: bytes,
    *,
    envelope: Envelope,
    reporter_hostname: str,
    report_from: str,
    destinations: list[str],
    now: float,
    redaction: Redaction | None = None,
    delivery_result: DeliveryResult | None = None,
    incidents: int = 1,
    user_agent: str = _USER_AGENT,
    make_token: Callable[[], str] | None = None,
) -> tuple[Envelope, bytes]:
    """The failure report about ``message`` and the envelope to queue it with.

    ``verdict`` is the message's authentication, ``envelope`` the one it
    arrived with (for Original-Mail-From, Original-Envelope-Id and the
    arrival time). ``destinations`` are mailboxes that agreed to receive
    reports: the accepted ones of :func:`check_failure_destinations`.
    ``report_from`` is our reporting address, the envelope sender and
    From of the report; it should be in a domain we DKIM-sign for, since
    reports SHOULD be DMARC-aligned (RFC 9991 §5.1). ``now`` is Unix
    seconds. ``redaction`` defaults to :data:`~.redaction.DEFAULT_REDACTION`;
    ``delivery_result`` (what became of the message) is written when given;
    ``incidents`` above 1 is written as RFC 5965's Incidents field, for a
    report standing for coalesced failures (:class:`FailureReportLimiter`).
    ``make_token`` makes the Message-ID and the MIME boundary (random by
    default; tests pass a counter).

    Raises :class:`FailureReportError` when there is no destination, an
    address or host name is not usable in a header field, the verdict has
    no Author Domain to report on, the source address is not an IP address,
    or ``incidents`` is below 1.
    """
    redact = redaction or DEFAULT_REDACTION
    token = make_token or _random_token
    _check_report_addresses(reporter_hostname, report_from, destinations)
    if incidents < 1:
        raise FailureReportError(f"incidents must be 1 or more, got {incidents}")
    dmarc = verdict.dmarc
    domain = dmarc.author_domain
    if not domain:
        raise FailureReportError("the verdict has no Author Domain to report on")
    source_ip = _source_ip(verdict.ip or envelope.client_ip)
    arrival = email.utils.formatdate(envelope.received_at or now, usegmt=True)
    failed = _failed_aligned(verdict)

    header_block, omitted = redact.header(message)
    text = _human_text(verdict, reporter_hostname, source_ip, arrival, failed, omitted, redact)
    feedback = _feedback_fields(
        verdict, envelope, redact, failed,
        user_agent=user_agent, reporting_mta=reporter_hostname, source_ip=source_ip,
        arrival=arrival, delivery_result=delivery_result, incidents=incidents,
    )  # fmt: skip
    parts = [
        _part(["Content-Type: text/plain; charset=us-ascii"], text.encode("ascii", "replace")),
        _part(_typed("message/feedback-report", feedback), feedback.encode("utf-8")),
        _part(_typed("text/rfc822-headers", header_block), header_block),
    ]
    boundary = _boundary(token, b"".join(parts))
    delimiter = f"--{boundary}\r\n".encode("ascii")
    body = (
        b"This is a MIME-formatted DMARC failure report.\r\n\r\n"
        + delimiter
        + delimiter.join(parts)
        + f"--{boundary}--\r\n".encode("ascii")
    )

    message_id = f"<{token()}@{reporter_hostname}>"
    headers = [
        f"From: <{report_from}>",
        "To: " + ",\r\n ".join(f"<{address}>" for address in destinations),
        f"Subject: DMARC failure report for {domain} from {source_ip}",
        f"Date: {email.utils.formatdate(now, usegmt=True)}",
        f"Message-ID: {message_id}",
        "Auto-Submitted: auto-generated",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=feedback-report;",
        f'\tboundary="{boundary}"',
    ]
    eight_bit = not body.isascii()
    if eight_bit:
        headers.append("Content-Transfer-Encoding: 8bit")
    content = "\r\n".join(headers).encode("utf-8") + b"\r\n\r\n" + body

    report_envelope = Envelope(
        sender=report_from,
        recipients=[Recipient(address) for address in destinations],
        smtputf8=not all(address.isascii() for address in [report_from, *destinations]),
        body="8BITMIME" if eight_bit else "7BIT",
        listener="reports",
        received_at=now,
        message_id=message_id,
        metadata={"report": "dmarc-failure", "reported_domain": domain},
    )
    return report_envelope, content


# --- The parts --------------------------------------------------------------------


class _Failed(NamedTuple):
    """The mechanisms that failed for an identifier aligned with the Author Domain."""

    spf: bool
    dkim: tuple[int, ...]  # indexes into verdict.dkim

    def names(self) -> str:
        """The Identity-Alignment value (RFC 9991 §4): ``dkim``, ``spf``, both, or ``none``."""
        found = [name for name, failed in (("dkim", bool(self.dkim)), ("spf", self.spf)) if failed]
        return ", ".join(found) or "none"


def _failed_aligned(verdict: Verdict) -> _Failed:
    """Which mechanisms failed to authenticate an aligned identifier.

    DMARC only checks the alignment of identifiers that passed, so for the
    failed ones it is judged here from what the evaluation learnt: a name
    aligns relaxed when it is, or is under, the Author Domain's
    Organizational Domain (the policy domain when that is unknown). A
    department that declared its own Organizational Domain below that with
    ``psd=n`` is not seen; the answer only feeds the report's fields.
    """
    dmarc = verdict.dmarc
    author = dmarc.author_domain or ""
    organizational = (dmarc.organizational_domain or dmarc.policy_domain or author).lower()
    record = dmarc.record

    def org_of(name: str) -> str:
        if name == organizational or name.endswith("." + organizational):
            return organizational
        return name

    def aligns(identifier: str, mode: AlignmentMode) -> bool:
        return bool(identifier) and is_aligned(author, identifier, mode, org_of) is True

    spf_mode = record.spf_alignment if record else AlignmentMode.RELAXED
    dkim_mode = record.dkim_alignment if record else AlignmentMode.RELAXED
    spf_failed = not verdict.spf.passed and aligns(verdict.spf.domain, spf_mode)
    dkim_failed = tuple(
        index
        for index, signature in enumerate(verdict.dkim)
        if not signature.passed and aligns(signature.domain, dkim_mode)
    )
    return _Failed(spf_failed, dkim_failed)


def _feedback_fields(
    verdict: Verdict,
    envelope: Envelope,
    redact: Redaction,
    failed: _Failed,
    *,
    user_agent: str,
    reporting_mta: str,
    source_ip: str,
    arrival: str,
    delivery_result: DeliveryResult | None,
    incidents: int,
) -> str:
    """The ``message/feedback-report`` body (RFC 5965 §3.1, RFC 6591 §3.1, RFC 9991 §4)."""
    fields = [
        "Feedback-Type: auth-failure",
        f"User-Agent: {_safe(user_agent)}",
        "Version: 1",
        "Auth-Failure: dmarc",
    ]
    if envelope.envid:
        fields.append(f"Original-Envelope-Id: {_safe(decode_xtext(envelope.envid))}")
    sender = redact.address(envelope.sender) if envelope.sender else ""
    fields += [
        f"Original-Mail-From: <{_safe(sender)}>",
        f"Arrival-Date: {arrival}",
        f"Reporting-MTA: dns; {reporting_mta}",
        f"Source-IP: {source_ip}",
        f"Reported-Domain: {verdict.dmarc.author_domain}",
        "Authentication-Results: " + _authentication_results(verdict, reporting_mta, redact),
        f"Identity-Alignment: {failed.names()}",
    ]
    if failed.dkim:
        # RFC 9991 §4: required for the DKIM failure of an aligned identifier.
        signature = verdict.dkim[failed.dkim[0]]
        identity = signature.identity or f"@{signature.domain}"
        fields += [
            f"DKIM-Domain: {_safe(signature.domain)}",
            f"DKIM-Identity: {_safe(redact.address(identity))}",
            f"DKIM-Selector: {_safe(signature.selector)}",
        ]
    # TODO: SPF-DNS (RFC 6591 §3.2), which RFC 9991 §4 requires for the SPF failure of an
    # aligned identifier, is not written: SpfResult does not keep the TXT record it used.
    if delivery_result is not None:
        fields.append(f"Delivery-Result: {delivery_result}")
    if incidents > 1:
        fields.append(f"Incidents: {incidents}")
    return "\r\n".join(fields) + "\r\n"


def _authentication_results(verdict: Verdict, hostname: str, redact: Redaction) -> str:
    """Our Authentication-Results for the message, with local parts redacted."""
    # One line while it fits (RFC 5322 §2.1.1): report parsers read these fields a line
    # at a time (parsedmarc does), and a folded value would reach them cut short.
    value = format_results(verdict.authentication_results(hostname), width=_MAX_LINE)
    return redact.text(value) if "@" in value else value


def _human_text(
    verdict: Verdict,
    host: str,
    ip: str,
    arrival: str,
    failed: _Failed,
    omitted: int,
    redact: Redaction,
) -> str:
    """The part for people: what arrived from where, what failed, what was left out."""
    dmarc = verdict.dmarc
    removed = " and ".join(
        what
        for what, gone in (
            ("the subject", redact.remove_subject),
            ("display names", redact.remove_display_names),
        )
        if gone
    )
    removed_text = f", with {removed} removed" if removed else ""
    dkim = ", ".join(
        f"{signature.result.value} ({signature.domain or 'unreadable'})"
        for signature in verdict.dkim
    )
    lines = [
        f"This is a DMARC failure report (RFC 9991) from {host}.",
        "",
        f"A message with {dmarc.author_domain} in its From field arrived from {ip}",
        f"on {arrival}.",
        f"DMARC: {dmarc.result.value}; SPF: {verdict.spf.result.value}"
        f" ({verdict.spf.domain or 'no domain'}); DKIM: {dkim or 'none'}.",
        f"Mechanisms that failed for an aligned identifier: {failed.names()}.",
        "",
        "Only the message's header is attached. The body is not included; the local",
        "part of every address is replaced by a token (the same local part gives the",
        f"same token){removed_text}.",
    ]
    if omitted:
        lines.append(f"{omitted} header fields were left out to keep the report small.")
    return "".join(f"{_safe(line)}\r\n" for line in lines)


def _typed(content_type: str, body: str | bytes) -> list[str]:
    """A part's Content-Type, and 8bit when its body is not ASCII (SMTPUTF8 domains, RFC 6532)."""
    if body.isascii():
        return [f"Content-Type: {content_type}"]
    charset = "" if content_type.startswith("message/") else "; charset=utf-8"
    return [f"Content-Type: {content_type}{charset}", "Content-Transfer-Encoding: 8bit"]


def _part(headers: list[str], body: bytes) -> bytes:
    """One MIME body part: headers, blank line, body, ending in CRLF before the delimiter."""
    head = "\r\n".join(headers).encode("ascii") + b"\r\n\r\n"
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    return head + body + b"\r\n"


# --- Checks and small helpers ---------------------------------------------------------


def _check_report_addresses(hostname: str, report_from: str, destinations: list[str]) -> None:
    if not _HOSTNAME.fullmatch(hostname):
        raise FailureReportError(f"reporter_hostname {hostname!r} is not a host name")
    if not _MAILBOX.fullmatch(report_from):
        raise FailureReportError(f"report_from {report_from!r} is not a mail address")
    if not destinations:
        raise FailureReportError("no destination to send the failure report to")
    for address in destinations:
        if not _MAILBOX.fullmatch(address):
            raise FailureReportError(f"destination {address!r} is not a mail address")


def _source_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise FailureReportError(f"source address {text!r} is not an IP address") from None


def _safe(text: str) -> str:
    """``text`` for a header line: control characters (CR, LF) become spaces."""
    return "".join(" " if ord(char) < 32 or ord(char) == 127 else char for char in text)


def _word(result: str) -> str:
    return result.strip().lower()


def _random_token() -> str:
    return secrets.token_hex(12)


def _boundary(token: Callable[[], str], content: bytes) -> str:
    """A MIME boundary that does not occur in the parts it separates (RFC 2046 §5.1.1)."""
    while True:
        boundary = f"=_mailwright-ruf-{token()}"
        if boundary.encode("ascii") not in content:
            return boundary
