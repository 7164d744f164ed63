"""Finding the XML of aggregate reports in what arrives: a message, an archive or a file.

Receivers send aggregate reports (RFC 9990 §3.2, RFC 7489 §7.2.1.1) as a
mail message with the report attached, gzip-compressed
(``application/gzip``), zipped (``application/zip``), or plain
(``text/xml``); many label the attachment ``application/octet-stream`` and
let the file name tell. An operator importing by hand has the bare
``.xml``, ``.xml.gz`` or ``.zip``. :func:`report_payloads` takes any of
these: the format is told by its first octets (``1f 8b`` gzip, ``PK`` zip,
``<`` XML), not by the label, which is often wrong.

Compressed data is inflated against one budget per call
(:data:`MAX_DECOMPRESSED`, checked as the octets come, never after), a zip
may hold at most :data:`MAX_ZIP_MEMBERS` members and a central directory
of at most :data:`MAX_ZIP_DIRECTORY` octets (read from its end record
before :mod:`zipfile` builds one object per entry), and archives nest at
most :data:`MAX_NESTING` deep. A decompression bomb therefore costs a
bounded amount of memory and ends in a :class:`~mailwright.errors.ReportError`
that says which limit it met. Nothing is written to disk, so member paths
need no checking.

Embedded messages (``message/rfc822``) are not searched: in a failure
report (RFC 9991) the embedded message is the reported mail, and its
attachments are no report of ours.
"""

from __future__ import annotations

import email
import email.errors
import email.message
import email.policy
import email.utils
import io
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from mailwright.errors import ReportError

#: The most octets one call inflates, over every report it finds.
MAX_DECOMPRESSED = 50 * 1024 * 1024

#: The most members a zip archive may have; reporters send one.
MAX_ZIP_MEMBERS = 16

#: The largest zip central directory accepted (one entry takes 46 octets and its name).
MAX_ZIP_DIRECTORY = 1024 * 1024

#: How deep archives may nest (a zip holding a gzip file is 2).
MAX_NESTING = 2

#: Content types that hold a report whatever their name says.
REPORT_TYPES = frozenset(
    {
        "application/gzip",
        "application/x-gzip",
        "application/zip",
        "application/x-zip-compressed",
        "text/xml",
        "application/xml",
    }
)

#: Names that make any other part (``application/octet-stream`` mostly) a report.
REPORT_SUFFIXES = (".xml", ".gz", ".gzip", ".zip")

#: Octets inflated per step: the most held beyond the budget.
_CHUNK = 1024 * 1024

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_ZIP_END = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True, slots=True)
class Payload:
    """One report's XML, and the name it came under (attachment or archive member)."""

    filename: str | None
    xml: bytes


def report_payloads(data: bytes) -> list[Payload]:
    """Every aggregate report in ``data``: a whole RFC 5322 message, or a bare file.

    Raises :class:`~mailwright.errors.ReportError` when there is none (the
    message says why: a failure report, or no part that could hold one),
    when an archive is damaged, and when a limit of this module is met.
    """
    budget = _Budget()
    if _sniff(data) is not None:
        return _open(None, data, budget, depth=0)
    return _from_message(data, budget)


class _Budget:
    """The octets still allowed to be inflated by one :func:`report_payloads` call."""

    def __init__(self) -> None:
        self.left = MAX_DECOMPRESSED

    def take(self, name: str, size: int) -> None:
        if size > self.left:
            raise ReportError(
                f"{name} decompresses to more than {MAX_DECOMPRESSED >> 20} MiB (the limit"
                " for the reports of one message); refused as a possible decompression bomb"
            )
        self.left -= size


def _sniff(data: bytes) -> str | None:
    """``"xml"``, ``"gzip"`` or ``"zip"`` from the first octets; None for anything else."""
    if data.startswith(_GZIP_MAGIC):
        return "gzip"
    if data.startswith(_ZIP_MAGICS):
        return "zip"
    head = data[:1024].lstrip()
    for bom in _BOMS:
        if head.startswith(bom):
            return "xml"
    return "xml" if head.startswith(b"<") else None


def _shown(name: str | None) -> str:
    return name if name else "the report"


def _open(name: str | None, data: bytes, budget: _Budget, *, depth: int) -> list[Payload]:
    """The payloads in one file: itself if XML, else what its archive holds."""
    kind = _sniff(data)
    if kind == "xml":
        return [Payload(name, data)]
    if kind is None:
        raise ReportError(
            f"{_shown(name)} is neither XML, gzip nor zip (it starts with {data[:8]!r})"
        )
    if depth >= MAX_NESTING:
        raise ReportError(f"{_shown(name)}: archives nested more than {MAX_NESTING} deep")
    if kind == "gzip":
        inner = name[: -len(".gz")] if name and name.lower().endswith(".gz") else name
        return _open(inner, _gunzip(name, data, budget), budget, depth=depth + 1)
    return _unzip(name, data, budget, depth=depth)


def _gunzip(name: str | None, data: bytes, budget: _Budget) -> bytes:
    """Inflate gzip ``data`` (every member, RFC 1952 §2.2) within ``budget``.

    Output comes :data:`_CHUNK` octets at a time, each charged to the
    budget before the next, so a bomb is stopped with at most the budget
    (and one chunk) in memory.
    """
    out: list[bytes] = []
    rest = data
    while rest.startswith(_GZIP_MAGIC):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        pending = rest
        while not inflater.eof:
            try:
                chunk = inflater.decompress(pending, _CHUNK)
            except zlib.error as exc:
                raise ReportError(f"{_shown(name)}: damaged gzip data ({exc})") from exc
            budget.take(_shown(name), len(chunk))
            out.append(chunk)
            pending = inflater.unconsumed_tail
            if not chunk and not pending:
                raise ReportError(f"{_shown(name)}: the gzip data is cut short")
        rest = inflater.unused_data
    return b"".join(out)


def _read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, budget: _Budget
) -> bytes:
    """One zip member's octets, read :data:`_CHUNK` at a time against ``budget``."""
    out: list[bytes] = []
    with archive.open(info) as stream:
        while chunk := stream.read(_CHUNK):
            budget.take(name, len(chunk))
            out.append(chunk)
    return b"".join(out)


def _zip_directory(name: str | None, data: bytes) -> None:
    """Refuse a zip whose end record announces too many members or too big a directory.

    The end of central directory record (APPNOTE 4.3.16) is the last 22
    octets, or sits before a comment of at most 65535. An archive without
    one is left to :mod:`zipfile` to refuse; ZIP64 (4.3.15) is not needed for
    a report and is refused, so the record's own counts are the true ones.
    """
    at = data.rfind(_ZIP_END, max(0, len(data) - 22 - 0xFFFF))
    if at < 0 or len(data) < at + 22:
        return
    if data[max(0, at - 20) : at].startswith(_ZIP64_LOCATOR):
        raise ReportError(f"{_shown(name)}: a ZIP64 archive, which no report needs; refused")
    members, directory_size = struct.unpack_from("<HI", data, at + 10)
    if members > MAX_ZIP_MEMBERS:
        raise ReportError(
            f"{_shown(name)}: a zip archive of {members} members (at most"
            f" {MAX_ZIP_MEMBERS} are accepted); refused"
        )
    if directory_size > MAX_ZIP_DIRECTORY:
        raise ReportError(
            f"{_shown(name)}: a zip central directory of {directory_size} octets (at most"
            f" {MAX_ZIP_DIRECTORY} are accepted); refused"
        )


def _unzip(name: str | None, data: bytes, budget: _Budget, *, depth: int) -> list[Payload]:
    """The payloads of the members of zip ``data`` within ``budget``."""
    _zip_directory(name, data)
    payloads: list[Payload] = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            if len(members) > MAX_ZIP_MEMBERS:
                raise ReportError(
                    f"{_shown(name)}: a zip archive of {len(members)} members (at most"
                    f" {MAX_ZIP_MEMBERS} are accepted); refused"
                )
            for info in members:
                content = _read_member(archive, info, f"{_shown(name)}: {info.filename}", budget)
                if _sniff(content) is not None:
                    payloads.extend(_open(info.filename, content, budget, depth=depth + 1))
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,  # a compression method zipfile lacks
        RuntimeError,  # an encrypted member
        EOFError,
        ValueError,
        OSError,
        zlib.error,
    ) as exc:
        raise ReportError(f"{_shown(name)}: damaged or unreadable zip archive ({exc})") from exc
    if not payloads:
        listed = ", ".join(info.filename for info in members) or "none"
        raise ReportError(f"{_shown(name)}: the zip archive holds no XML (members: {listed})")
    return payloads


# -- messages ------------------------------------------------------------------------------


def _from_message(data: bytes, budget: _Budget) -> list[Payload]:
    """The payloads of every report part of the message ``data``."""
    # The email package parses anything into some message, but its lazy
    # header parser has raised these on hostile parameter values; they are
    # translated here so that no input ends in a traceback.
    try:
        message = email.message_from_bytes(data, policy=email.policy.default)
        parts = [(part, part.get_content_type(), _filename(part)) for part in _leaves(message)]
        found = [
            (name or ctype, _body(part))
            for part, ctype, name in parts
            if ctype in REPORT_TYPES or (name or "").lower().endswith(REPORT_SUFFIXES)
        ]
    except (email.errors.MessageError, LookupError, ValueError, TypeError, IndexError) as exc:
        raise ReportError(f"the message cannot be read: {exc}") from exc

    payloads = []
    for name, content in found:
        if content:
            payloads.extend(_open(name, content, budget, depth=0))
    if payloads:
        return payloads

    types = [ctype for _, ctype, _ in parts]
    if "message/feedback-report" in types:
        raise ReportError(
            "no aggregate report in the message: it is a failure report (ARF,"
            " message/feedback-report, RFC 9991), which is not stored"
        )
    if found:
        raise ReportError("no aggregate report in the message: its report parts are empty")
    raise ReportError(
        "no aggregate report in the message: no part is gzip, zip or XML"
        f" (parts: {', '.join(types) or 'none'})"
    )


def _leaves(message: email.message.Message) -> Iterator[email.message.Message]:
    """The non-multipart parts of ``message``, not looking inside embedded messages."""
    pending = [message]
    while pending:
        part = pending.pop(0)
        if part.get_content_maintype() == "multipart" and part.is_multipart():
            pending[:0] = [
                child for child in part.get_payload() if isinstance(child, email.message.Message)
            ]
        else:
            yield part


def _filename(part: email.message.Message) -> str | None:
    """The part's file name (``filename``, else the older ``name`` parameter)."""
    name = part.get_filename() or part.get_param("name")
    if isinstance(name, tuple):  # an RFC 2231 value the policy did not decode
        name = email.utils.collapse_rfc2231_value(name)
    text = str(name).strip() if name else ""
    return text or None


def _body(part: email.message.Message) -> bytes:
    """The part's octets with the transfer encoding undone."""
    content = part.get_payload(decode=True)
    return content if isinstance(content, bytes) else b""
