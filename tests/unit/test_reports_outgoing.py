"""Tests for mailwright.reports.outgoing: the report email, its headers and its attachment."""

from __future__ import annotations

import base64
import email
import email.policy
import gzip
from email.message import EmailMessage

import pytest
from tests.dmarc_reports import DAY0, policy, row

from mailwright.envelope import Envelope
from mailwright.reports.model import AggregateReport, ReportMetadata
from mailwright.reports.outgoing import (
    BASE64_LINE,
    attachment_name,
    compose_report,
    compress,
    encode_attachment,
    subject,
)
from mailwright.reports.xml_write import to_xml

REPORT_ID = "1772409600.0123456789abcdef.example.com@mx.example.net"
UNIQUE = "0123456789abcdef"


def report(org_name: str = "Example Receiver", domain: str = "example.com") -> AggregateReport:
    metadata = ReportMetadata(
        org_name=org_name,
        email="dmarc@mx.example.net",
        report_id=REPORT_ID,
        begin=int(DAY0),
        end=int(DAY0) + 86399,
    )
    return AggregateReport(metadata, policy(domain), (row(), row("192.0.2.2").with_count(4)))


def compose(
    the_report: AggregateReport | None = None, **options: object
) -> tuple[Envelope, bytes]:
    the_report = the_report or report()
    arguments: dict[str, object] = {
        "sender": "dmarc@mx.example.net",
        "recipients": ["dmarc@example.com", "rua@vendor.example"],
        "receiver": "mx.example.net",
        "submitter": "mx.example.net",
        "unique": UNIQUE,
        "now": DAY0 + 86400 + 300,
        "make_token": lambda: "fixed",
    }
    arguments.update(options)
    return compose_report(the_report, compress(to_xml(the_report)), **arguments)  # type: ignore[arg-type]


def parse(content: bytes) -> EmailMessage:
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_every_line_ends_in_crlf() -> None:
    """No bare LF or CR anywhere in the message."""
    _, content = compose()

    assert content.replace(b"\r\n", b"").count(b"\n") == 0
    assert content.replace(b"\r\n", b"").count(b"\r") == 0
    assert content.endswith(b"\r\n")


def test_headers_name_the_report() -> None:
    """From, To, Subject, Date and Message-ID as RFC 9990 §3.5.2 asks."""
    _, content = compose()

    message = parse(content)
    assert message["From"] == "dmarc@mx.example.net"
    assert [a.addr_spec for a in message["To"].addresses] == [
        "dmarc@example.com",
        "rua@vendor.example",
    ]
    assert str(message["Subject"]) == (
        f"Report Domain: example.com Submitter: mx.example.net Report-ID: <{REPORT_ID}>"
    )
    assert message["Message-ID"] == f"<{REPORT_ID}>"
    assert message["Date"].datetime.timestamp() == DAY0 + 86400 + 300
    assert message["Auto-Submitted"] == "auto-generated"


def test_the_body_is_multipart_mixed_with_text_and_gzip_parts() -> None:
    """A text/plain notice and an application/gzip attachment with the RFC 9990 file name."""
    the_report = report()
    _, content = compose(the_report)

    message = parse(content)
    assert message.get_content_type() == "multipart/mixed"
    text, attachment = list(message.iter_parts())
    assert text.get_content_type() == "text/plain"
    assert "example.com" in text.get_content()
    assert "5 messages in 2 records" in text.get_content()
    assert attachment.get_content_type() == "application/gzip"
    assert attachment.get_filename() == (
        f"mx.example.net!example.com!{int(DAY0)}!{int(DAY0) + 86399}!{UNIQUE}.xml.gz"
    )
    payload = attachment.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert gzip.decompress(payload) == to_xml(the_report)


def test_the_envelope_goes_from_report_from_to_the_destinations() -> None:
    """Sender is report_from, recipients the destinations, listener reports."""
    envelope, _ = compose()

    assert envelope.sender == "dmarc@mx.example.net"
    assert [r.address for r in envelope.recipients] == [
        "dmarc@example.com",
        "rua@vendor.example",
    ]
    assert envelope.listener == "reports"
    assert envelope.message_id == f"<{REPORT_ID}>"
    assert envelope.body == "7BIT"


def test_a_long_subject_is_folded_at_its_spaces() -> None:
    """Past 78 columns the Subject folds before Submitter: and Report-ID:, losing nothing."""
    long = report(domain="a-rather-long-subdomain.of-a-long-policy-domain.example.com")

    folded = subject(long, "mx.example.net")

    assert folded.count("\r\n ") == 2
    assert folded.replace("\r\n ", " ") == (
        "Report Domain: a-rather-long-subdomain.of-a-long-policy-domain.example.com"
        f" Submitter: mx.example.net Report-ID: <{REPORT_ID}>"
    )


def test_a_non_ascii_organisation_makes_an_8bit_text_part() -> None:
    """The notice is UTF-8 and 8bit; the envelope asks for 8BITMIME."""
    envelope, content = compose(report(org_name="Empfänger GmbH"))

    message = parse(content)
    text = next(iter(message.iter_parts()))
    assert text["Content-Transfer-Encoding"] == "8bit"
    assert "Empfänger GmbH" in text.get_content()
    assert envelope.body == "8BITMIME"


def test_the_same_xml_compresses_to_the_same_octets() -> None:
    """gzip without a time stamp: a report sent again is identical."""
    xml = to_xml(report())

    assert compress(xml) == compress(xml)
    assert gzip.decompress(compress(xml)) == xml


def test_the_attachment_is_base64_in_short_lines() -> None:
    """At most 76 characters a line, every line CRLF, decoding to the input."""
    data = bytes(range(256)) * 3

    encoded = encode_attachment(data)

    lines = encoded.split(b"\r\n")
    assert lines[-1] == b""
    assert all(len(line) <= BASE64_LINE for line in lines)
    assert base64.b64decode(b"".join(lines)) == data


def test_a_unique_id_must_be_letters_and_digits() -> None:
    """The file name's unique-id allows ALPHA and DIGIT only."""
    with pytest.raises(ValueError, match="letters and digits"):
        attachment_name(report(), "mx.example.net", "ab-cd")


@pytest.mark.parametrize("recipients", [[], ["a@b\r\nBcc: x@y"]])
def test_no_recipients_or_header_injection_raise(recipients: list[str]) -> None:
    """A report needs recipients, and an address cannot smuggle in a header."""
    with pytest.raises(ValueError, match=r"recipient|address"):
        compose(recipients=recipients)
