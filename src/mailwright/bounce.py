"""Delivery status notifications (RFC 3464, RFC 3461, RFC 6533), as pure functions.

When a recipient fails for good, is still waiting after the delay-warning
time, or asked to be told of success, the sender gets a DSN: a
``multipart/report`` (RFC 6522) with a human-readable part, a
``message/delivery-status`` part that programs read, and the original message
or its header. :func:`build_dsn` turns the original envelope and content and
one :class:`RecipientReport` per recipient into the DSN's envelope and bytes.

Who is told what is one rule, :func:`wants_notification` (RFC 3461 §4.1):
NOTIFY=NEVER silences a recipient; failures are reported unless NOTIFY was
given without FAILURE; delays only when NOTIFY asks for DELAY, or when NOTIFY
is absent and delay warnings are enabled; successes only when asked for. A
message from the null reverse-path never gets a DSN (RFC 5321 §4.5.5): that
is how bounce loops are prevented.

The MIME is built by hand, not with :mod:`email.generator`: the original may
hold 8-bit or malformed data that must be returned octet for octet, and a
generator that re-folds or re-encodes would corrupt it. Every line ends in
CRLF. When the original (or an address) is not ASCII, the DSN is declared
8bit and its envelope BODY=8BITMIME; SMTPUTF8 messages and UTF-8 addresses
use ``message/global-delivery-status`` and ``message/global`` (RFC 6533).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from mailwright.envelope import Envelope, Recipient
from mailwright.smtp.replies import Reply

Action = Literal["failed", "delayed", "delivered", "relayed", "expanded"]

#: How much of the original a DSN returns before it falls back to the header
#: alone. Postfix returns 50 kB; a bounce is for diagnosis, not for backup.
DEFAULT_RETURN_LIMIT = 100_000

#: Diagnostic text longer than this is cut, keeping DSN lines under the
#: 998-octet limit of RFC 5322 §2.1.1.
_MAX_DIAGNOSTIC = 900

_XTEXT_HEX = re.compile(r"\+([0-9A-Fa-f]{2})")
_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class RecipientReport:
    """What happened to one recipient, for its per-recipient DSN fields (RFC 3464 §2.3).

    ``reply`` is the last reply (from the remote server, or one of ours for
    local failures); ``remote_mta`` the host that gave it, if any.
    ``will_retry_until`` is used for ``delayed`` only.
    """

    recipient: Recipient
    action: Action
    reply: Reply
    remote_mta: str | None = None
    last_attempt: dt.datetime | None = None
    will_retry_until: dt.datetime | None = None


def wants_notification(recipient: Recipient, action: Action, *, delay_warnings: bool) -> bool:
    """Whether ``recipient`` wants a DSN for ``action`` (RFC 3461 §4.1).

    ``delay_warnings`` is the server's choice for recipients that gave no
    NOTIFY parameter; RFC 3461 leaves the default to the implementation.
    """
    notify = {word.upper() for word in recipient.notify}
    if "NEVER" in notify:
        return False
    if action == "failed":
        return not notify or "FAILURE" in notify
    if action == "delayed":
        return "DELAY" in notify if notify else delay_warnings
    return "SUCCESS" in notify


def status_of(reply: Reply) -> str:
    """The RFC 3463 status of ``reply``: its enhanced status, else ``X.0.0`` from its code."""
    return reply.status or f"{reply.code // 100}.0.0"


def decode_xtext(text: str) -> str:
    """Decode RFC 3461 §4 xtext (``+2B`` is ``+``); unsafe results stay encoded.

    A value that would decode to control characters (a header injection) is
    returned as received.
    """
    decoded = _XTEXT_HEX.sub(lambda match: chr(int(match.group(1), 16)), text)
    return text if _UNSAFE.search(decoded) else decoded


def build_dsn(
    envelope: Envelope,
    content: bytes,
    *,
    reporting_mta: str,
    reports: Sequence[RecipientReport],
    now: dt.datetime,
    arrival: dt.datetime | None = None,
    message_id_domain: str | None = None,
    make_token: Callable[[], str] | None = None,
    return_limit: int = DEFAULT_RETURN_LIMIT,
    delay_warnings: bool = True,
) -> tuple[Envelope, bytes] | None:
    """Build the DSN for ``reports`` on the message ``envelope`` + ``content``.

    ``reporting_mta`` is our host name (Reporting-MTA, and the domain of the
    MAILER-DAEMON From address and, unless ``message_id_domain`` is given, of
    the Message-ID). ``arrival`` defaults to ``envelope.received_at``.
    ``make_token`` makes the unique part of the Message-ID and the MIME
    boundary (random by default; tests pass a counter).

    Returns the DSN's envelope (null sender, the original sender as only
    recipient) and content, or None when nothing is to be sent: the
    original sender is null, or no recipient wants to hear about its fate.
    """
    if not envelope.sender:
        return None
    wanted = [
        report
        for report in reports
        if wants_notification(report.recipient, report.action, delay_warnings=delay_warnings)
    ]
    if not wanted:
        return None

    token = make_token or _random_token
    utf8 = _needs_utf8(envelope, wanted)
    arrived = arrival or _arrival_of(envelope, now)
    returned, note = _returned_part(envelope, content, return_limit, utf8=utf8)
    boundary = _boundary(token, content)

    report_type = "global-delivery-status" if utf8 else "delivery-status"
    text = _notification_text(reporting_mta, wanted, note)
    status = _delivery_status(envelope, reporting_mta, arrived, wanted)

    body_parts = [
        _part(_text_headers(text), text.encode("utf-8")),
        _part(
            [
                f"Content-Type: message/{report_type}",
                "Content-Description: Delivery report",
                *_cte(status),
            ],
            status.encode("utf-8"),
        ),
        returned,
    ]
    delimiter = f"--{boundary}\r\n".encode("ascii")
    mime_body = (
        b"This is a MIME-encapsulated message.\r\n\r\n"
        + delimiter
        + delimiter.join(body_parts)
        + f"--{boundary}--\r\n".encode("ascii")
    )

    headers = [
        f'From: "Mail Delivery System" <MAILER-DAEMON@{reporting_mta}>',
        f"To: <{envelope.sender}>",
        f"Subject: {_subject(wanted)}",
        f"Date: {email.utils.format_datetime(_utc(now))}",
        f"Message-ID: <{token()}@{message_id_domain or reporting_mta}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f"Content-Type: multipart/report; report-type={report_type};",
        f'\tboundary="{boundary}"',
    ]
    eight_bit = not mime_body.isascii()
    if eight_bit:
        headers.append("Content-Transfer-Encoding: 8bit")
    dsn = "\r\n".join(headers).encode("utf-8") + b"\r\n\r\n" + mime_body

    dsn_envelope = Envelope(
        sender="",
        recipients=[Recipient(envelope.sender)],
        smtputf8=not envelope.sender.isascii(),
        body="8BITMIME" if eight_bit else "7BIT",
        received_at=_utc(now).timestamp(),
        metadata={"dsn": _kind(wanted)},
    )
    return dsn_envelope, dsn


# --- The parts --------------------------------------------------------------------


def _notification_text(host: str, reports: Sequence[RecipientReport], note: str) -> str:
    kind = _kind(reports)
    lines = [f"This is the mail system at host {host}.", ""]
    if kind == "failure":
        lines += [
            "Your message could not be delivered to one or more recipients.",
            "The reason is given below each address.",
        ]
    elif kind == "delay":
        lines += [
            "Your message has not yet been delivered to one or more recipients.",
            "Delivery will be retried; you do not need to send it again.",
        ]
    else:
        lines += ["Your message was delivered to the recipients below, as you asked."]
    if note:
        lines += ["", note]
    lines.append("")

    for report in reports:
        lines.append(f"<{report.recipient.address}>: {report.action}")
        if report.remote_mta:
            lines.append(f"    host {report.remote_mta} said:")
        lines.extend(f"    {line}" for line in _diagnostic(report.reply).split("\n"))
        if report.action == "delayed" and report.will_retry_until is not None:
            until = email.utils.format_datetime(_utc(report.will_retry_until))
            lines.append(f"    Will retry until {until}")
        lines.append("")
    return "\r\n".join(lines)


def _delivery_status(
    envelope: Envelope, host: str, arrived: dt.datetime, reports: Sequence[RecipientReport]
) -> str:
    """The ``message/delivery-status`` body: per-message fields, then one block each."""
    fields = [f"Reporting-MTA: dns; {host}"]
    if envelope.envid:
        fields.append(f"Original-Envelope-Id: {decode_xtext(envelope.envid)}")
    fields.append(f"Arrival-Date: {email.utils.format_datetime(_utc(arrived))}")
    blocks = ["\r\n".join(fields)]

    for report in reports:
        recipient = report.recipient
        block: list[str] = []
        if recipient.orcpt:
            addr_type, _, xtext = recipient.orcpt.partition(";")
            block.append(f"Original-Recipient: {addr_type.strip()}; {decode_xtext(xtext)}")
        address_type = "rfc822" if recipient.address.isascii() else "utf-8"
        block.append(f"Final-Recipient: {address_type}; {recipient.address}")
        block.append(f"Action: {report.action}")
        block.append(f"Status: {status_of(report.reply)}")
        if report.remote_mta:
            block.append(f"Remote-MTA: dns; {report.remote_mta}")
        block.append(f"Diagnostic-Code: smtp; {_diagnostic(report.reply).replace(chr(10), ' ')}")
        if report.last_attempt is not None:
            block.append(
                f"Last-Attempt-Date: {email.utils.format_datetime(_utc(report.last_attempt))}"
            )
        if report.action == "delayed" and report.will_retry_until is not None:
            block.append(
                f"Will-Retry-Until: {email.utils.format_datetime(_utc(report.will_retry_until))}"
            )
        blocks.append("\r\n".join(block))

    return "\r\n\r\n".join(blocks) + "\r\n"


def _returned_part(
    envelope: Envelope, content: bytes, limit: int, *, utf8: bool
) -> tuple[bytes, str]:
    """The third part (the message or its header) and a note for the text part."""
    full_type = "message/global" if utf8 else "message/rfc822"
    headers_type = "message/global-headers" if utf8 else "text/rfc822-headers"

    note = ""
    headers_only = (envelope.ret or "").upper() == "HDRS"
    if not headers_only and envelope.body.upper() == "BINARYMIME":
        headers_only = True
        note = "The message was sent as binary data, so only its header is returned."
    elif not headers_only and len(content) > limit:
        headers_only = True
        note = f"The message is larger than {limit} bytes, so only its header is returned."

    if headers_only:
        body = _header_block(content)
        ctype, description = headers_type, "Undelivered message headers"
    else:
        body = content if content.endswith(b"\r\n") or not content else content + b"\r\n"
        ctype, description = full_type, "Undelivered message"

    headers = [f"Content-Type: {ctype}", f"Content-Description: {description}"]
    headers += [
        "Content-Transfer-Encoding: 7bit" if body.isascii() else "Content-Transfer-Encoding: 8bit"
    ]
    return _part(headers, body), note


def _header_block(content: bytes) -> bytes:
    """The header lines of ``content``, each ending in CRLF, without the blank line."""
    if content.startswith(b"\r\n"):
        return b""
    end = content.find(b"\r\n\r\n")
    if end < 0:
        return content if content.endswith(b"\r\n") or not content else content + b"\r\n"
    return content[: end + 2]


def _part(headers: Iterable[str], body: bytes) -> bytes:
    """One MIME body part: headers, blank line, body, ending in CRLF before the delimiter."""
    head = "\r\n".join(headers).encode("utf-8") + b"\r\n\r\n"
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    return head + body + b"\r\n"


def _text_headers(text: str) -> list[str]:
    if text.isascii():
        return ["Content-Type: text/plain; charset=us-ascii", "Content-Description: Notification"]
    return [
        "Content-Type: text/plain; charset=utf-8",
        "Content-Description: Notification",
        "Content-Transfer-Encoding: 8bit",
    ]


def _cte(text: str) -> list[str]:
    return [] if text.isascii() else ["Content-Transfer-Encoding: 8bit"]


# --- Small helpers ----------------------------------------------------------------


def _kind(reports: Sequence[RecipientReport]) -> str:
    actions = {report.action for report in reports}
    if "failed" in actions:
        return "failure"
    if "delayed" in actions:
        return "delay"
    return "success"


def _subject(reports: Sequence[RecipientReport]) -> str:
    return {
        "failure": "Undelivered Mail Returned to Sender",
        "delay": "Delayed Mail (still being retried)",
        "success": "Successful Mail Delivery Report",
    }[_kind(reports)]


def _diagnostic(reply: Reply) -> str:
    """The reply as ``CODE STATUS text``, lines joined by LF, control characters removed."""
    prefix = f"{reply.code} {reply.status} " if reply.status else f"{reply.code} "
    text = "\n".join(_UNSAFE.sub("?", line) for line in reply.lines)
    return (prefix + text)[:_MAX_DIAGNOSTIC]


def _needs_utf8(envelope: Envelope, reports: Sequence[RecipientReport]) -> bool:
    if envelope.smtputf8 or not envelope.sender.isascii():
        return True
    return any(
        not report.recipient.address.isascii() or not (report.recipient.orcpt or "").isascii()
        for report in reports
    )


def _arrival_of(envelope: Envelope, now: dt.datetime) -> dt.datetime:
    if envelope.received_at > 0:
        return dt.datetime.fromtimestamp(envelope.received_at, dt.UTC)
    return now


def _utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` as an aware datetime; a naive one is taken to be UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _random_token() -> str:
    return secrets.token_hex(12)


def _boundary(token: Callable[[], str], content: bytes) -> str:
    """A MIME boundary that does not occur in the returned content (RFC 2046 §5.1.1)."""
    while True:
        boundary = f"=_mailwright-{token()}"
        if boundary.encode("ascii") not in content:
            return boundary
