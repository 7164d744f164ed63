"""Finding report XML in files and messages (mailwright.reports.unpack), and its limits."""

from __future__ import annotations

import gzip
import io
import struct
import tracemalloc
import zipfile
from email.message import EmailMessage

import pytest
from tests.vectors import VECTORS

from mailwright.errors import ReportError
from mailwright.reports.unpack import (
    MAX_DECOMPRESSED,
    MAX_NESTING,
    MAX_ZIP_DIRECTORY,
    MAX_ZIP_MEMBERS,
    Payload,
    report_payloads,
)

SAMPLE = (VECTORS / "reports" / "aggregate" / "parsedmarc-empty_reason.xml").read_bytes()
FAILURE_REPORT = VECTORS / "reports" / "failure" / "parsedmarc-dmarc_ruf_report_linkedin.eml"


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def message(*attachments: tuple[bytes, str, str]) -> bytes:
    """A report message as receivers send them: a text part and ``(content, type, name)``s."""
    mail = EmailMessage()
    mail["From"] = "dmarc-noreply@reporter.example"
    mail["To"] = "dmarc@example.com"
    mail["Subject"] = "Report Domain: example.com Submitter: reporter.example Report-ID: 42"
    mail.set_content("This is an aggregate report.")
    for content, content_type, name in attachments:
        maintype, subtype = content_type.split("/")
        mail.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
    return mail.as_bytes()


# -- bare files ----------------------------------------------------------------------------


def test_a_bare_xml_file_is_its_own_payload() -> None:
    """XML in, the same octets out, without a name."""
    assert report_payloads(SAMPLE) == [Payload(None, SAMPLE)]


def test_xml_after_a_byte_order_mark_or_blank_lines_is_xml() -> None:
    """A UTF-8 BOM or leading white space does not hide the ``<``."""
    for data in (b"\xef\xbb\xbf" + SAMPLE, b"\r\n\n  " + SAMPLE):
        assert report_payloads(data) == [Payload(None, data)]


def test_a_gzip_file_is_inflated() -> None:
    """``1f 8b`` is gzip, whatever the name."""
    assert report_payloads(gzip.compress(SAMPLE)) == [Payload(None, SAMPLE)]


def test_every_member_of_a_multi_member_gzip_file_is_kept() -> None:
    """Two gzip members concatenated (RFC 1952 §2.2) inflate to both halves."""
    half = len(SAMPLE) // 2
    data = gzip.compress(SAMPLE[:half]) + gzip.compress(SAMPLE[half:])

    assert report_payloads(data) == [Payload(None, SAMPLE)]


def test_a_zip_file_gives_its_xml_members() -> None:
    """``PK`` is zip; each XML member is a payload named for the member."""
    data = zipped({"a.xml": SAMPLE, "readme.txt": b"not a report", "b.xml": SAMPLE})

    assert report_payloads(data) == [Payload("a.xml", SAMPLE), Payload("b.xml", SAMPLE)]


def test_a_gzip_file_inside_a_zip_file_is_inflated() -> None:
    """Nesting up to MAX_NESTING is accepted."""
    data = zipped({"report.xml.gz": gzip.compress(SAMPLE)})

    assert MAX_NESTING == 2
    assert report_payloads(data) == [Payload("report.xml", SAMPLE)]


def test_archives_nested_deeper_are_refused() -> None:
    """A zip in a gzip in a zip is one layer too many."""
    data = zipped({"inner.gz": gzip.compress(zipped({"a.xml": SAMPLE}))})

    with pytest.raises(ReportError, match="archives nested more than 2 deep"):
        report_payloads(data)


def test_a_zip_file_without_xml_is_refused() -> None:
    """Members that are neither XML nor archives are no report."""
    with pytest.raises(ReportError, match=r"holds no XML \(members: notes.txt\)"):
        report_payloads(zipped({"notes.txt": b"hello"}))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (gzip.compress(SAMPLE)[:-30], "the gzip data is cut short"),
        (b"\x1f\x8b\x08\xff" + b"junk" * 10, "damaged gzip data"),
        (zipped({"a.xml": SAMPLE})[:-40], "damaged or unreadable zip archive"),
        (b"PK\x03\x04" + b"junk" * 10, "damaged or unreadable zip archive"),
    ],
)
def test_damaged_archives_are_refused(data: bytes, message: str) -> None:
    """A cut or corrupted archive is a ReportError saying which kind, never a zlib error."""
    with pytest.raises(ReportError, match=message):
        report_payloads(data)


# -- bombs ---------------------------------------------------------------------------------


def test_a_gzip_bomb_is_refused_within_bounded_memory() -> None:
    """60 MiB of zeros in 60 KiB of gzip: refused, having held no more than the limit."""
    bomb = gzip.compress(b"<" + bytes(60 << 20), compresslevel=9)
    assert len(bomb) < 100_000

    tracemalloc.start()
    try:
        with pytest.raises(ReportError, match="decompresses to more than 50 MiB") as refused:
            report_payloads(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert "decompression bomb" in str(refused.value)
    assert peak < MAX_DECOMPRESSED + (4 << 20)


def test_a_zip_bomb_is_refused() -> None:
    """One member inflating past the limit is refused, named."""
    bomb = zipped({"report.xml": b"<" + bytes(60 << 20)})

    with pytest.raises(ReportError, match=r"report\.xml decompresses to more than 50 MiB"):
        report_payloads(bomb)


def test_the_limit_holds_across_the_parts_of_one_message() -> None:
    """Two attachments of 30 MiB each: the second one exhausts the budget of the message."""
    part = gzip.compress(b"<" + bytes(30 << 20))
    data = message((part, "application/gzip", "a.xml.gz"), (part, "application/gzip", "b.xml.gz"))

    with pytest.raises(ReportError, match=r"^b.xml.gz decompresses to more than 50 MiB"):
        report_payloads(data)


def test_a_zip_with_too_many_members_is_refused() -> None:
    """MAX_ZIP_MEMBERS + 1 members: refused by count, before any is read."""
    members = {f"{n}.xml": SAMPLE for n in range(MAX_ZIP_MEMBERS + 1)}

    with pytest.raises(ReportError, match=f"a zip archive of {MAX_ZIP_MEMBERS + 1} members"):
        report_payloads(zipped(members))


def test_a_zip_whose_end_record_understates_a_huge_directory_is_refused() -> None:
    """An end record claiming one member over a 1.2 MiB central directory is refused."""
    data = bytearray(zipped({f"{n:02d}" + "x" * 60_000 + ".xml": b"<a/>" for n in range(20)}))
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 1, 1)  # members on this disk, members in total

    with pytest.raises(ReportError, match=r"a zip central directory of \d+ octets") as refused:
        report_payloads(bytes(data))

    assert f"at most {MAX_ZIP_DIRECTORY} are accepted" in str(refused.value)


# -- messages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type", "name"),
    [
        (gzip.compress(SAMPLE), "application/gzip", "r.example!example.com!1!2.xml.gz"),
        (gzip.compress(SAMPLE), "application/x-gzip", "r.xml.gz"),
        (zipped({"r.xml": SAMPLE}), "application/zip", "r.zip"),
        (zipped({"r.xml": SAMPLE}), "application/x-zip-compressed", "r.zip"),
        (zipped({"r.xml": SAMPLE}), "application/octet-stream", "r.zip"),
        (gzip.compress(SAMPLE), "application/octet-stream", "r.xml.gz"),
        (SAMPLE, "application/xml", "r.xml"),
        (SAMPLE, "application/octet-stream", "r.xml"),
        # The label is wrong (gzip content) and the content decides.
        (gzip.compress(SAMPLE), "application/zip", "r.zip"),
    ],
)
def test_a_report_attachment_is_found(content: bytes, content_type: str, name: str) -> None:
    """Every content type reporters use, as an attachment beside a text part."""
    payloads = report_payloads(message((content, content_type, name)))

    assert [payload.xml for payload in payloads] == [SAMPLE]


def test_a_text_xml_part_is_found() -> None:
    """``text/xml`` inline (the charset is left to the XML declaration)."""
    mail = EmailMessage()
    mail["Subject"] = "Report"
    mail.set_content(SAMPLE, maintype="text", subtype="xml", cte="base64")

    assert [payload.xml for payload in report_payloads(mail.as_bytes())] == [SAMPLE]


def test_a_single_part_zip_message_is_found() -> None:
    """The whole message is the zip (``Content-Type: application/zip``), as some send it."""
    mail = EmailMessage()
    mail["Subject"] = "Report"
    mail.set_content(
        zipped({"r.xml": SAMPLE}), maintype="application", subtype="zip", filename="r.zip"
    )

    assert report_payloads(mail.as_bytes()) == [Payload("r.xml", SAMPLE)]


def test_every_report_of_a_message_is_found() -> None:
    """Two attachments, two payloads, in order."""
    data = message(
        (gzip.compress(SAMPLE), "application/gzip", "one.xml.gz"),
        (zipped({"two.xml": SAMPLE}), "application/zip", "two.zip"),
    )

    assert [payload.filename for payload in report_payloads(data)] == ["one.xml", "two.xml"]


def test_a_message_without_a_report_part_says_which_parts_it_has() -> None:
    """Text and a PDF are no report; the error lists the parts."""
    data = message((b"%PDF-1.4", "application/pdf", "invoice.pdf"))

    with pytest.raises(ReportError, match=r"no part is gzip, zip or XML \(parts: text/plain,"):
        report_payloads(data)


def test_a_failure_report_is_no_aggregate_report() -> None:
    """The real ARF failure report (multipart/report, feedback-report) is refused as such."""
    with pytest.raises(ReportError, match="no aggregate report in the message: it is a failure"):
        report_payloads(FAILURE_REPORT.read_bytes())


def test_attachments_of_an_embedded_message_are_not_searched() -> None:
    """A zip inside a forwarded (message/rfc822) message is the reported mail, not a report."""
    inner = EmailMessage(policy=EmailMessage().policy)
    inner["Subject"] = "spoofed mail"
    inner.set_content("hello")
    inner.add_attachment(
        zipped({"r.xml": SAMPLE}), maintype="application", subtype="zip", filename="r.zip"
    )
    outer = EmailMessage()
    outer["Subject"] = "Fwd"
    outer.set_content("see attached")
    outer.add_attachment(inner)

    with pytest.raises(ReportError, match="parts: text/plain, message/rfc822"):
        report_payloads(outer.as_bytes())


def test_an_attachment_that_is_not_what_its_name_says_is_refused() -> None:
    """``r.xml.gz`` holding text: refused, with its first octets."""
    data = message((b"plain text", "application/octet-stream", "r.xml.gz"))

    with pytest.raises(ReportError, match=r"r.xml.gz is neither XML, gzip nor zip"):
        report_payloads(data)
