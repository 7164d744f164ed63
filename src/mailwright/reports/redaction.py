"""Redacting a message's header for a failure report (RFC 6590, RFC 9991 §7).

A DMARC failure report shows a Domain Owner how a message that used its
domain travelled and why it failed. What it needs for that is the trace
(Received, DKIM-Signature, Authentication-Results, Message-ID) and the
domains; what it must not get is other people's correspondence. So a report
carries the header only, never the body, and the header is redacted first:

* every addr-spec keeps its domain, but its local part becomes a token
  (``redacted-`` and ten base32 characters);
* display names are removed from address fields (From, To, Cc, ...), which
  keep only ``<token@domain>`` for each address found;
* the Subject (and Exchange's copy of it, Thread-Topic) is removed, and so
  are the header copies a DKIM or ARC signature may carry in ``z=``;
* ``http`` and ``https`` become ``hxxp`` and ``hxxps`` (RFC 9991 §7.3), so
  that no one clicks through to a phishing site from a report.

Alternatives weighed. RFC 6590 §3 lets a report generator replace a local
part with a fixed string or with a hash of it. A fixed marker is the most
private, but it makes the From and To of one report indistinguishable and
hides that two reports concern the same mailbox, which is what a Domain
Owner looks for when one sender's mail keeps failing. A plain hash of the
local part can be reversed by trying likely names. We use a keyed hash
(HMAC-SHA256) of the local part: identical local parts give identical
tokens (within a report and across reports), and without the key nobody
can test a guess. The key is random per process unless the operator gives
one (:attr:`Redaction.secret`), so by default tokens are stable only for
the life of the process: two reports sent a day apart after a restart do
not link. The local part is hashed as written (local parts are
case-sensitive, RFC 5321 §2.4).

Fields identifying messages (Message-ID, In-Reply-To, References,
Content-ID) are kept as they are: their ``@`` does not join a mailbox to a
domain, and the Message-ID is how the Domain Owner finds the message in its
own logs. In every other field, local parts are found by pattern: a quoted
string or a run of characters that are not RFC 5322 specials, followed by
``@``. In structured fields such as Authentication-Results or
DKIM-Signature, a leading ``name=`` right after white space, ``;`` or
``(`` (``smtp.mailfrom=``, ``i=``, ``envelope-from=``) is kept, so that the
field still reads as what it was.
"""

from __future__ import annotations

import base64
import email.errors
import email.header
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from mailwright.auth.message import HeaderField, parse_message

#: Every token starts with this, so a reader sees that the local part was redacted.
TOKEN_PREFIX = "redacted-"

#: Fields holding addresses, whose display names are removed (RFC 5322 §3.6.2, §3.6.3,
#: §3.6.6; Return-Path §3.6.7; the rest are common trace fields written by MTAs).
ADDRESS_FIELDS = frozenset(
    {
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "bcc",
        "resent-from",
        "resent-sender",
        "resent-to",
        "resent-cc",
        "resent-bcc",
        "return-path",
        "author",
        "delivered-to",
        "x-original-to",
        "envelope-to",
        "x-envelope-to",
        "x-envelope-from",
        "errors-to",
        "disposition-notification-to",
    }
)

#: Fields identifying messages, kept as they are (RFC 5322 §3.6.4, RFC 2045 §7).
ID_FIELDS = frozenset(
    {"message-id", "in-reply-to", "references", "resent-message-id", "content-id"}
)

#: The subject and its copies, removed when :attr:`Redaction.remove_subject` is set.
SUBJECT_FIELDS = frozenset({"subject", "thread-topic"})

#: Signature fields whose ``z=`` tag copies header fields, quoted-printable, where "@"
#: is "=40" (RFC 6376 §3.5, RFC 8617 §4.1.2): the copies are emptied.
SIGNATURE_FIELDS = frozenset({"dkim-signature", "arc-message-signature"})

#: Header octets a report carries at most; fields past this are left out.
MAX_HEADER_OCTETS = 64 * 1024

# An addr-spec's local part starts where a run of atom characters starts (so the
# search stays linear on long runs without "@"), and may follow "name=" in
# structured fields. Non-ASCII characters count as atom characters (RFC 6532).
_START = r"(?<![^\s\"(),:;<>\[\]\\])"
_LOCAL = r"(?P<local>\"(?:[^\"\\\r\n]|\\.)*\"|[^\s\"(),:;<>@\[\]\\]+)"
_DOMAIN = r"(?P<domain>\[[^\[\]\\\s]*\]|[^\s\"(),:;<>@\[\]\\]+)"
_PREFIX = r"(?:(?<![^\s;(])(?P<prefix>[A-Za-z][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*=))?"
_ADDRESS = re.compile(_START + _LOCAL + "@" + _DOMAIN)
_ADDRESS_IN_TEXT = re.compile(_START + _PREFIX + _LOCAL + "@" + _DOMAIN)

#: An address field without any address: empty, the null path, or an empty group.
_NO_ADDRESS = re.compile(r"\s*(?:<\s*>|[^:\"<>@,;]*:\s*;)?\s*")

_COPIED_HEADERS = re.compile(r"(^|;)(\s*)z\s*=[^;]*")  # a tag-spec, so after ";" (or first)
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=")
_URL_SCHEME = re.compile(r"\b([Hh])[Tt][Tt]([Pp][Ss]?)(?=://)")


def _random_secret() -> bytes:
    return secrets.token_bytes(32)


@dataclass(frozen=True, slots=True)
class Redaction:
    """How a header is redacted before it goes into a report; the defaults are the safe choice.

    ``secret`` keys the hash that turns local parts into tokens; it is random
    (per instance, so per process for :data:`DEFAULT_REDACTION`) unless given.
    Give a fixed secret of at least 16 octets to keep tokens stable across
    restarts and receiver processes; never publish it.
    ``remove_subject`` drops Subject and Thread-Topic; ``remove_display_names``
    leaves address fields with bare ``<token@domain>``; ``defang_urls``
    writes ``hxxp`` for ``http``.

    Raises :class:`ValueError` for a secret shorter than 16 octets.
    """

    secret: bytes = field(default_factory=_random_secret, repr=False)
    remove_subject: bool = True
    remove_display_names: bool = True
    defang_urls: bool = True

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise ValueError(f"a redaction secret needs 16 octets or more, got {len(self.secret)}")

    def token(self, local_part: str) -> str:
        """The token for ``local_part``: the same local part always gives the same token."""
        raw = local_part.encode("utf-8", "surrogateescape")
        digest = hmac.new(self.secret, raw, hashlib.sha256).digest()
        return TOKEN_PREFIX + base64.b32encode(digest).decode("ascii")[:10].lower()

    def address(self, address: str) -> str:
        """``address`` with its local part replaced by a token; no ``@``: the whole is one."""
        local, at, domain = address.rpartition("@")
        if not at:
            return self.token(address) if address else address
        return f"{self.token(local)}@{domain}" if local else address

    def text(self, value: str) -> str:
        """``value`` with the local part of every address in it replaced (structured text)."""
        if "@" in value:
            value = _ADDRESS_IN_TEXT.sub(self._replace_in_text, value)
        if "=?" in value:
            value = _ENCODED_WORD.sub(self._replace_encoded_word, value)
        if self.defang_urls:
            value = _URL_SCHEME.sub(r"\1xx\2", value)
        return value

    def header(self, message: bytes, *, limit: int = MAX_HEADER_OCTETS) -> tuple[bytes, int]:
        """The redacted header section of ``message`` and how many fields were left out.

        Nothing after the empty line is used. Lines of the header section
        without a colon (a message without the empty line, say) are left out
        as well: they may be body text. Fields past ``limit`` octets are left
        out and counted. Every line ends in CRLF; a bare CR becomes a space.
        """
        kept: list[bytes] = []
        size = 0
        omitted = 0
        for header in parse_message(message).headers:
            redacted = self.field(header)
            if redacted is None:
                continue
            if size + len(redacted) > limit:
                omitted += 1
                continue
            kept.append(redacted)
            size += len(redacted)
        return b"".join(kept), omitted

    def field(self, header: HeaderField) -> bytes | None:
        """One header field redacted, ending in CRLF; None when it is left out."""
        name = header.lower_name
        if not name or (self.remove_subject and name in SUBJECT_FIELDS):
            return None
        if name in ID_FIELDS:
            return _crlf(header.raw)

        raw = header.raw.decode("utf-8", "surrogateescape")
        written_name, _, value = raw.partition(":")
        if name in SIGNATURE_FIELDS and "z" in value:
            value = _COPIED_HEADERS.sub(r"\1\2z=", value)
        value = self._address_field(value) if name in ADDRESS_FIELDS else self.text(value)
        return _crlf((written_name + ":" + value).encode("utf-8", "surrogateescape"))

    def _address_field(self, value: str) -> str:
        """An address field's value: its addresses redacted, display names removed if asked."""
        if not self.remove_display_names:
            return _ADDRESS.sub(self._replace, value)

        unfolded = value.replace("\r\n", "").replace("\n", "")
        found = [f"<{self._replace(match)}>" for match in _ADDRESS.finditer(unfolded)]
        if not found:
            # No address at all: keep "<>" and empty groups, hide anything else (a name).
            return value if _NO_ADDRESS.fullmatch(unfolded) else " <redacted>\r\n"
        return " " + ",\r\n ".join(found) + "\r\n"

    def _replace(self, match: re.Match[str]) -> str:
        return f"{self.token(match['local'])}@{match['domain']}"

    def _replace_in_text(self, match: re.Match[str]) -> str:
        return (match["prefix"] or "") + self._replace(match)

    def _replace_encoded_word(self, match: re.Match[str]) -> str:
        """An RFC 2047 encoded-word, re-encoded with its addresses redacted when it has any.

        An address split over two encoded-words is not recognised. A word that
        cannot be decoded (an unknown charset) could hide anything, so it is
        replaced whole.
        """
        word = match.group(0)
        try:
            ((data, charset),) = email.header.decode_header(word)
            text = data.decode(charset or "ascii", "replace") if isinstance(data, bytes) else data
        except (ValueError, LookupError, email.errors.HeaderParseError):
            return "=?us-ascii?q?redacted?="
        if "@" not in text or not _ADDRESS_IN_TEXT.search(text):
            return word
        redacted = _ADDRESS_IN_TEXT.sub(self._replace_in_text, text)
        return email.header.Header(redacted, "utf-8").encode(linesep="\r\n")


#: The redaction a report uses unless told otherwise: safe defaults, a random secret.
DEFAULT_REDACTION = Redaction()


def _crlf(raw: bytes) -> bytes:
    """``raw`` with every line ending in CRLF (bare LF from files too), no bare CR left."""
    lines = raw.replace(b"\r\n", b"\n").rstrip(b"\n").split(b"\n")
    return b"\r\n".join(line.rstrip(b"\r").replace(b"\r", b" ") for line in lines) + b"\r\n"
