"""The report email: an aggregate report as a message to its destinations (RFC 9990 §3.5.2).

Use::

    attachment = compress(to_xml(report))
    envelope, content = compose_report(
        report, attachment, sender=report_from, recipients=mailboxes,
        receiver=hostname, submitter=org_domain, now=clock(),
    )
    reply = await inject(envelope, content)

The message is ``multipart/mixed`` with a short ``text/plain`` part for
people and the report as an ``application/gzip`` attachment (RFC 6713),
base64-encoded, named ``<receiver>!<policy domain>!<begin>!<end>!<unique>.xml.gz``
(the file-name ABNF of §3.5.2, with the unique id that §3.5.2 allows and
the Report-ID shares). The Subject is ``Report Domain: <policy domain>
Submitter: <submitter> Report-ID: <report id>`` (the §3.5.2 ABNF, folded
before ``Submitter:`` and ``Report-ID:`` when long), and the Message-ID is
the Report-ID, as §3.5.2 suggests: a report sent again carries the same
one, so the consumer can tell it is a duplicate.

The MIME is written by hand, like :mod:`mailwright.bounce`, so every line
ends in CRLF and nothing re-folds it; every header and the text part are
ASCII unless the organisation name is not, in which case the text part is
declared 8bit and UTF-8. ``Auto-Submitted: auto-generated`` (RFC 3834)
keeps vacation responders quiet.

The envelope's sender is ``sender`` (bounces of reports go there) and its
listener ``reports``. The message only passes DMARC at the consumer (as
§3.5.2 requires) when it is DKIM-signed for the sender's domain: ``inject``
signs it when ``[[dkim.sign]]`` covers that domain.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import gzip
import secrets
from collections.abc import Callable, Sequence

from mailwright.envelope import Envelope, Recipient
from mailwright.reports.model import AggregateReport

#: Base64 characters per line of the attachment (RFC 2045 §6.8 allows at most 76).
BASE64_LINE = 76

#: Header lines longer than this are folded (RFC 5322 §2.1.1's recommended limit).
_FOLD_AT = 78


def compress(xml: bytes) -> bytes:
    """``xml`` gzip-compressed (RFC 1952), without time stamp or file name.

    The same XML gives the same octets, so a report sent again is identical.
    """
    return gzip.compress(xml, compresslevel=9, mtime=0)


def encode_attachment(attachment: bytes) -> bytes:
    """``attachment`` in base64, :data:`BASE64_LINE` characters a line, every line CRLF."""
    text = base64.b64encode(attachment)
    lines = [text[i : i + BASE64_LINE] for i in range(0, len(text), BASE64_LINE)]
    return b"".join(line + b"\r\n" for line in lines)


def attachment_name(report: AggregateReport, receiver: str, unique: str) -> str:
    """The attachment's file name: ``receiver!policy-domain!begin!end!unique.xml.gz``.

    Raises :class:`ValueError` when ``unique`` is not letters and digits
    (the ``unique-id`` rule of §3.5.2).
    """
    if not unique.isascii() or not unique.isalnum():
        raise ValueError(f"a report's unique id is letters and digits only, not {unique!r}")
    metadata = report.metadata
    return f"{receiver}!{report.policy.domain}!{metadata.begin}!{metadata.end}!{unique}.xml.gz"


def subject(report: AggregateReport, submitter: str) -> str:
    """The Subject field's value (§3.5.2), folded when it would not fit on one line.

    Folds go before ``Submitter:`` and ``Report-ID:``, where the ABNF has
    white space (``1*FWS``).
    """
    parts = [
        f"Report Domain: {report.policy.domain}",
        f"Submitter: {submitter}",
        f"Report-ID: <{report.metadata.report_id}>",
    ]
    line = " ".join(parts)
    if len("Subject: ") + len(line) <= _FOLD_AT:
        return line
    return "\r\n ".join(parts)


def compose_report(
    report: AggregateReport,
    attachment: bytes,
    *,
    sender: str,
    recipients: Sequence[str],
    receiver: str,
    submitter: str,
    unique: str,
    now: float,
    make_token: Callable[[], str] | None = None,
) -> tuple[Envelope, bytes]:
    """The report email's envelope and content, every line ending in CRLF.

    ``attachment`` is the compressed report (:func:`compress`);
    ``recipients`` the accepted destinations' mailboxes; ``receiver`` our
    host name (first part of the file name); ``submitter`` the domain the
    Subject names as the report's submitter; ``unique`` the report's unique
    id; ``now`` Unix seconds for the Date field. ``make_token`` makes the
    MIME boundary's random part (tests pass a fixed one). Raises
    :class:`ValueError` without recipients or with an address holding a
    line break.
    """
    if not recipients:
        raise ValueError("a report needs at least one recipient")
    for address in (sender, *recipients):
        if "\r" in address or "\n" in address or not address:
            raise ValueError(f"{address!r} cannot be used as a report address")

    token = make_token or _random_token
    boundary = f"=_mailwright-report-{token()}"
    name = attachment_name(report, receiver, unique)
    text = _notice(report)
    utf8_text = not text.isascii()

    text_headers = [
        f"Content-Type: text/plain; charset={'utf-8' if utf8_text else 'us-ascii'}",
        *(["Content-Transfer-Encoding: 8bit"] if utf8_text else []),
    ]
    file_headers = [
        f'Content-Type: application/gzip; name="{name}"',
        "Content-Transfer-Encoding: base64",
        f'Content-Disposition: attachment; filename="{name}"',
    ]
    delimiter = f"--{boundary}\r\n".encode("ascii")
    body = (
        b"This is a MIME-formatted message.\r\n\r\n"
        + delimiter
        + _part(text_headers, text.encode("utf-8"))
        + delimiter
        + _part(file_headers, encode_attachment(attachment))
        + f"--{boundary}--\r\n".encode("ascii")
    )

    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    message_id = f"<{report.metadata.report_id}>"
    headers = [
        f"From: <{sender}>",
        "To: " + ",\r\n\t".join(f"<{address}>" for address in recipients),
        f"Subject: {subject(report, submitter)}",
        f"Date: {email.utils.format_datetime(moment)}",
        f"Message-ID: {message_id}",
        "Auto-Submitted: auto-generated",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
    ]
    content = "\r\n".join(headers).encode("utf-8") + b"\r\n\r\n" + body

    envelope = Envelope(
        sender=sender,
        recipients=[Recipient(address) for address in recipients],
        smtputf8=not all(address.isascii() for address in (sender, *recipients)),
        body="8BITMIME" if utf8_text else "7BIT",
        listener="reports",
        received_at=now,
        message_id=message_id,
        metadata={"dmarc_report": report.metadata.report_id},
    )
    return envelope, content


def _notice(report: AggregateReport) -> str:
    """The human-readable part: who reports on what, for which period."""
    metadata = report.metadata
    begin = dt.datetime.fromtimestamp(metadata.begin, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    end = dt.datetime.fromtimestamp(metadata.end, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"This is a DMARC aggregate report (RFC 9990) from {metadata.org_name}\r\n"
        f"about mail from {report.policy.domain} received between {begin} and {end} UTC:\r\n"
        f"{report.message_count} messages in {len(report.rows)} records.\r\n"
        f"\r\n"
        f"Report-ID: {metadata.report_id}\r\n"
        f"The report is attached as gzip-compressed XML.\r\n"
    )


def _part(headers: Sequence[str], body: bytes) -> bytes:
    """One MIME body part: headers, a blank line, the body, and the CRLF of the delimiter."""
    return "\r\n".join(headers).encode("utf-8") + b"\r\n\r\n" + body + b"\r\n"


def _random_token() -> str:
    return secrets.token_hex(12)
