"""Writing a notification email as bytes, ready for the MTA queue and for DKIM signing.

The message is written directly rather than through :class:`email.message.EmailMessage`:
the stdlib folder re-parses what it folds (so a subject that happens to hold
``=?utf-8?q?...?=`` text is decoded on the way out) and would split a long
List-Unsubscribe URI into encoded words. Written by hand, every field is one
logical header whose folds sit only at white space that was already there,
so unfolding (RFC 5322 §2.2.3) gives back exactly the value, and every line
stays within 998 octets (§2.1.1), aiming at 78. The one place the stdlib
folder is used is a non-ASCII display name, where its phrase encoder is
what we want.

What goes in:

* Date, From, To, Subject (RFC 2047 encoded words when not ASCII), Message-ID,
  MIME-Version (RFC 2045);
* for commercial mail, ``List-Unsubscribe: <https://...>, <mailto:...>``
  (RFC 2369 §3.2) and, with an HTTP(S) URI, ``List-Unsubscribe-Post:
  List-Unsubscribe=One-Click`` (RFC 8058 §3.1); List-Id (RFC 2919) when given.
  The DKIM signer always signs both List-Unsubscribe fields (RFC 8058 §4);
* ``multipart/alternative`` with text/plain and text/html (RFC 2046 §5.1.4), or
  text/plain alone; UTF-8, sent as 7bit when ASCII with short lines, else
  quoted-printable, or base64 when most of it is not ASCII. The boundary
  starts with ``=_``, which neither encoding can produce.

Values that would break the header (CR, LF, NUL in addresses, URIs or extra
fields) are refused with :class:`HeaderError`, never cleaned: they mean the
caller let unchecked input through.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.header import Header, decode_header, make_header
from email.headerregistry import Address
from email.policy import SMTP
from email.policy import default as _default_policy
from email.utils import format_datetime, formataddr
from urllib.parse import quote

from mailwright.notify.errors import InvalidInput
from mailwright.notify.render import RenderedEmail

#: The longest line RFC 5322 §2.1.1 allows, without its CRLF.
MAX_LINE = 998

#: Where folding aims (RFC 5322 §2.1.1 "SHOULD").
FOLD_AT = 78

#: Fields that build_message writes itself and extra headers may not repeat.
OWN_FIELDS = frozenset(
    {
        "date",
        "from",
        "to",
        "subject",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    }
)

_ADDRESS_PARSER = _default_policy.header_factory
_ADDRESS_FOLDER = SMTP.clone(refold_source="all", max_line_length=FOLD_AT)
_FIELD_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 §3.6.8 ftext
_BREAKING = re.compile(r"[\r\n\x00]")
_URI = re.compile(r"[!-~]+")
_PIECES = re.compile(r"\s*\S+")
# Tokens are at least 50 characters (tokens.py); shorter words are not tokens.
_MAILTO_SUBJECT = re.compile(r"\bunsubscribe(?:\s+|%20)([A-Za-z0-9_-]{20,})", re.IGNORECASE)

# RFC 6068 §2: qchar = unreserved / pct-encoded / some-delims; "," separates
# addresses in "to" and "=" and "&" delimit hfields, so they are encoded.
_ADDRESS_SAFE = "!$'()*+;:@"
_VALUE_SAFE = "!$'()*+,;:@"


class HeaderError(InvalidInput):
    """A value that cannot be written into a header field safely; the detail names it."""


def build_message(
    *,
    from_addr: str,
    to: str,
    rendered: RenderedEmail,
    message_id: str,
    now: float,
    list_id: str | None,
    unsubscribe_https: str | None,
    unsubscribe_mailto: str | None,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The message as RFC 5322 octets with CRLF line ends.

    ``from_addr`` and ``to`` are an address or ``Name <address>``;
    ``message_id`` is given with or without its angle brackets. Raises
    :class:`HeaderError` for an address, message id, list id, URI or extra
    field that cannot be written, an extra field that repeats one written
    here, or a value too long to fold into 998-octet lines.
    """
    lines = [
        _field("Date", format_datetime(datetime.fromtimestamp(now, UTC))),
        _mailbox_field("From", from_addr, "from_addr"),
        _mailbox_field("To", to, "to"),
    ]
    lines.append(_subject(rendered.subject))
    lines.append(_field("Message-ID", _message_id(message_id)))

    if list_id is not None:
        lines.append(_field("List-Id", _list_id(list_id)))
    uris = _unsubscribe_uris(unsubscribe_https, unsubscribe_mailto)
    if uris:
        lines.append(_field("List-Unsubscribe", ", ".join(f"<{uri}>" for uri in uris)))
    if unsubscribe_https is not None:
        lines.append(_field("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    lines += [_extra(name, value) for name, value in extra_headers]
    lines.append(b"MIME-Version: 1.0\r\n")

    text = _part("text/plain", rendered.text)
    if rendered.html is None:
        return b"".join(lines) + text

    html = _part("text/html", rendered.html)
    boundary = _boundary(text, html)
    lines.append(_field("Content-Type", f'multipart/alternative; boundary="{boundary}"'))
    delimiter = b"--" + boundary.encode("ascii")
    # The CRLF before each delimiter belongs to it (RFC 2046 §5.1.1): each part's
    # own last line end is kept by writing one more.
    body = [b"\r\n", delimiter, b"\r\n", text, b"\r\n", delimiter, b"\r\n", html, b"\r\n"]
    body += [delimiter, b"--\r\n"]
    return b"".join(lines) + b"".join(body)


def mailto_uri(address: str, token: str) -> str:
    """``mailto:ADDRESS?subject=unsubscribe%20TOKEN``, percent-encoded as RFC 6068 §2 asks."""
    if _BREAKING.search(address) or not address:
        raise HeaderError(f"mailto address {address!r} cannot be written")
    to = quote(address, safe=_ADDRESS_SAFE)
    return f"mailto:{to}?subject={quote(f'unsubscribe {token}', safe=_VALUE_SAFE)}"


def token_from_mailto_subject(subject: str) -> str | None:
    """The token in the Subject of a mail sent through :func:`mailto_uri`, or None.

    Takes the field value as received: encoded words are decoded, and a
    prefix a client adds ("Re:", "[External]") is tolerated.
    """
    try:
        text = str(make_header(decode_header(subject)))
    except (HeaderParseError, LookupError, UnicodeError, binascii.Error, ValueError):
        text = subject

    found = _MAILTO_SUBJECT.search(" ".join(text.split()))
    return found.group(1) if found else None


# -- header fields --------------------------------------------------------------------


def _field(name: str, value: str) -> bytes:
    """``Name: value`` folded at existing white space, ending in CRLF; ASCII values only."""
    if _BREAKING.search(value):  # callers check their input; this guards the header itself
        raise HeaderError(f"{name} holds a line break")
    pieces = _PIECES.findall(value)
    lines = [f"{name}:"]
    for number, piece in enumerate(pieces):
        if number == 0:
            piece = " " + piece.lstrip()
        elif len(lines[-1]) + len(piece) > FOLD_AT:
            lines.append("")
        lines[-1] += piece

    if any(len(line) > MAX_LINE for line in lines):
        raise HeaderError(f"{name} holds a word too long for a {MAX_LINE}-octet line")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _subject(subject: str) -> bytes:
    """The Subject field: folded ASCII, or RFC 2047 encoded words for anything else."""
    text = " ".join(subject.split())
    plain = text.isascii() and "=?" not in text
    if plain and all(len(word) < MAX_LINE - len("Subject: ") for word in text.split()):
        return _field("Subject", text)

    encoded = Header(text, "utf-8", maxlinelen=FOLD_AT, header_name="Subject")
    return ("Subject: " + encoded.encode(linesep="\r\n") + "\r\n").encode("ascii")


def _mailbox_field(field: str, value: str, what: str) -> bytes:
    """A From or To field holding ``value`` as one mailbox: IDNA domain, encoded display name.

    A non-ASCII display name is folded by the stdlib's address folder, which
    encodes only the words that need it and breaks between words (so even
    decoders that do not join adjacent encoded words read it right).
    """
    if _BREAKING.search(value):
        raise HeaderError(f"{what} {value!r} holds a line break")
    parsed = _ADDRESS_PARSER("To", value)
    if len(parsed.addresses) != 1 or parsed.defects:
        raise HeaderError(f"{what} {value!r} is not one address")
    mailbox = parsed.addresses[0]
    if not mailbox.username or not mailbox.domain:
        raise HeaderError(f"{what} {value!r} is not an address")

    if not mailbox.username.isascii():
        # TODO: a non-ASCII local part needs SMTPUTF8 and RFC 6532 headers,
        # which the notification channel does not negotiate yet.
        raise HeaderError(f"{what} {value!r} has a non-ASCII local part")
    domain = mailbox.domain
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise HeaderError(f"{what} {value!r} has a domain IDNA cannot encode") from exc
    address = Address(username=mailbox.username, domain=domain).addr_spec
    name = mailbox.display_name
    if name.isascii():
        return _field(field, formataddr((name, address)))

    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    folded: bytes = _ADDRESS_FOLDER.fold(field, f'"{quoted}" <{address}>').encode("ascii")
    if any(len(line) > MAX_LINE for line in folded.split(b"\r\n")):
        raise HeaderError(f"{what} {value!r} has a display name too long to fold")
    return folded


def _message_id(value: str) -> str:
    inner = value[1:-1] if value.startswith("<") and value.endswith(">") else value
    if not _URI.fullmatch(inner) or "@" not in inner or any(c in inner for c in "<>"):
        raise HeaderError(f"message id {value!r} is not id-left@id-right")
    return f"<{inner}>"


def _list_id(value: str) -> str:
    """RFC 2919 §3: ``[phrase] <list-label.namespace>``; a bare label gets its brackets."""
    if _BREAKING.search(value) or not value.isascii():
        raise HeaderError(f"list id {value!r} must be ASCII on one line")
    if "<" in value:
        if not re.fullmatch(r"[^<>]*<[!-;=?-~]+>", value):
            raise HeaderError(f"list id {value!r} is not [phrase] <label.namespace>")
        return value
    if not re.fullmatch(r"[!-;=?-~]+\.[!-;=?-~]+", value):
        raise HeaderError(f"list id {value!r} is not a dotted label")
    return f"<{value}>"


def _unsubscribe_uris(https: str | None, mailto: str | None) -> list[str]:
    """The List-Unsubscribe URIs, HTTPS first, each checked to fit inside angle brackets.

    XXX(RFC 8058 §3.1): an ``http://`` one-click URI is accepted, for a
    laptop or a test setup whose links are ``http://127.0.0.1:8025``
    (``[http] public_url`` unset); mailbox providers ignore one-click then.
    """
    uris: list[str] = []
    for uri, schemes in ((https, ("https://", "http://")), (mailto, ("mailto:",))):
        if uri is None:
            continue
        if not uri.lower().startswith(schemes) or not _URI.fullmatch(uri):
            raise HeaderError(f"unsubscribe URI {uri!r} is not a {schemes[0]} URI without spaces")
        if "<" in uri or ">" in uri:
            raise HeaderError(f"unsubscribe URI {uri!r} holds an angle bracket")
        uris.append(uri)
    return uris


def _extra(name: str, value: str) -> bytes:
    """An extra field the caller asked for, refused when it repeats or breaks the header."""
    if not _FIELD_NAME.fullmatch(name) or name.lower() in OWN_FIELDS:
        raise HeaderError(f"extra header {name!r} is not a field name that may be added")
    if _BREAKING.search(value):
        raise HeaderError(f"extra header {name} holds a line break")
    if value.isascii():
        return _field(name, value)

    encoded = Header(value, "utf-8", maxlinelen=FOLD_AT, header_name=name)
    return (f"{name}: " + encoded.encode(linesep="\r\n") + "\r\n").encode("ascii")


# -- body parts -----------------------------------------------------------------------


def _part(content_type: str, text: str) -> bytes:
    """A MIME entity: its Content-Type and Content-Transfer-Encoding, a blank line, the body."""
    encoding, body = _encode(text)
    head = (
        f'Content-Type: {content_type}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    )
    return head.encode("ascii") + body


def _encode(text: str) -> tuple[str, bytes]:
    """The body in the lightest encoding that keeps it intact, lines ending in CRLF.

    7bit for ASCII without control characters and lines of at most 998
    octets; quoted-printable when most is ASCII; base64 otherwise (QP would
    triple the size of, say, Cyrillic or Japanese text).
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").split("\n")
    normal = "\n".join(lines) + "\n"
    data = normal.encode("utf-8")

    printable = all(c == "\t" or " " <= c <= "~" for line in lines for c in line)
    if printable and all(len(line) <= MAX_LINE for line in lines):
        return "7bit", data.replace(b"\n", b"\r\n")
    unusual = sum(1 for octet in data if octet > 0x7E or (octet < 0x20 and octet not in b"\t\n"))
    if unusual * 3 < len(data):
        encoded = binascii.b2a_qp(data, quotetabs=False, istext=True)
        return "quoted-printable", encoded.replace(b"\n", b"\r\n")
    return "base64", base64.encodebytes(data).replace(b"\n", b"\r\n")


def _boundary(*parts: bytes) -> str:
    """A multipart boundary found in none of ``parts``."""
    while True:
        boundary = "=_mw_" + secrets.token_hex(16)
        if not any(boundary.encode("ascii") in part for part in parts):
            return boundary
