"""Signing messages with DKIM (RFC 6376 §5, RFC 8301, RFC 8463, RFC 8058).

A :class:`Signer` holds one loaded key and the choices made for a domain and
selector; it is built once (at start-up, where a bad key or option should
stop us) and reused for every message, so each signature costs two hashes
and one private-key operation in OpenSSL.

Which fields are signed. The fields RFC 6376 §5.4.1 recommends, and those
its §5.4 operations note adds (Sender and the MIME fields), plus Message-ID,
each as many times as it occurs. From is listed once more than it occurs,
so that no From can be added without breaking the signature (RFC 6376
§8.15). List-Unsubscribe and List-Unsubscribe-Post are always signed when
present, as RFC 8058 §4 requires for one-click unsubscription. Fields that
are absent are not listed (apart from the extra From), so that a later hop
adding, say, a Cc does not break the signature.

What is never done: l= (it lets anyone append to a signed body), rsa-sha1
and RSA keys under 1024 bits (RFC 8301 §3.1, §3.2; refused at
construction). z= is not written either.
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from collections.abc import Callable, Iterable

from mailwright.auth.dkim.algorithms import (
    Algorithm,
    PrivateKey,
    sign_digest,
    signing_algorithm,
)
from mailwright.auth.dkim.canonical import Canonicalization, format_canonicalization
from mailwright.auth.dkim.errors import SignerConfigError
from mailwright.auth.dkim.hashing import body_digest, header_digest, select_headers
from mailwright.auth.dkim.keys import MIN_RSA_BITS, load_private_key
from mailwright.auth.dkim.signature import is_dns_name
from mailwright.auth.message import Message, parse_message

#: Signed when present, in this order: RFC 6376 §5.4.1, its §5.4 note, Message-ID.
DEFAULT_HEADERS: tuple[str, ...] = (
    "from",
    "reply-to",
    "subject",
    "date",
    "to",
    "cc",
    "resent-date",
    "resent-from",
    "resent-sender",
    "resent-to",
    "resent-cc",
    "in-reply-to",
    "references",
    "list-id",
    "list-help",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-subscribe",
    "list-post",
    "list-owner",
    "list-archive",
    "sender",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-id",
    "content-description",
    "content-disposition",
)

#: Always signed when present, whatever the configured list (RFC 8058 §4).
ALWAYS_SIGNED: tuple[str, ...] = ("list-unsubscribe", "list-unsubscribe-post")

#: Listed once more than they occur, so that none can be added.
OVERSIGNED: tuple[str, ...] = ("from",)

#: Lines of the DKIM-Signature field are kept to this many characters.
DEFAULT_WIDTH = 78


class Signer:
    """Signs messages for one domain and selector with one key.

    ``key`` is a loaded key or its text (see
    :func:`~.keys.load_private_key`). ``algorithm`` defaults to the key's
    (rsa-sha256 or ed25519-sha256). ``headers`` replaces
    :data:`DEFAULT_HEADERS` (From is added if missing; :data:`ALWAYS_SIGNED`
    are always added). ``identity`` is written as i= (it must be in
    ``domain`` or below); ``expire_after`` seconds, if given, sets x=.
    ``clock`` gives the signing time in seconds since the epoch.

    Raises :class:`~.errors.SignerConfigError` (or its subclass
    :class:`~.errors.KeyLoadError`) for a key that cannot be read, rsa-sha1,
    an RSA key under 1024 bits, a key that does not fit the algorithm, a
    domain or selector that is not a DNS name, an identity outside the
    domain, or an expiry that is not positive.
    """

    def __init__(
        self,
        *,
        domain: str,
        selector: str,
        key: PrivateKey | bytes | str,
        algorithm: Algorithm | str | None = None,
        header_canon: Canonicalization = Canonicalization.RELAXED,
        body_canon: Canonicalization = Canonicalization.RELAXED,
        headers: Iterable[str] | None = None,
        identity: str | None = None,
        expire_after: float | None = None,
        clock: Callable[[], float] = time.time,
        password: bytes | None = None,
        width: int = DEFAULT_WIDTH,
    ) -> None:
        self.key = key if not isinstance(key, bytes | str) else load_private_key(key, password)
        chosen = signing_algorithm(self.key, algorithm, MIN_RSA_BITS)
        if isinstance(chosen, str):
            raise SignerConfigError(chosen)
        self.algorithm = chosen
        self.domain = _dns_name(domain, "domain")
        self.selector = _dns_name(selector, "selector")
        self.identity = _identity(identity, self.domain)
        if expire_after is not None and expire_after <= 0:
            raise SignerConfigError(f"expire_after={expire_after} is not a positive duration")
        self.expire_after = expire_after
        self.header_canon = header_canon
        self.body_canon = body_canon
        self.headers = _header_list(DEFAULT_HEADERS if headers is None else headers)
        self.clock = clock
        self.width = width

    def header_names(self, message: Message) -> list[str]:
        """The h= list for ``message``: present fields as often as they occur, From once more."""
        counts = Counter(field.lower_name for field in message.headers)
        names: list[str] = []
        for name in self.headers:
            # counts.get, not counts[name]: Counter answers a missing name
            # through a Python-level __missing__, and most names are missing.
            times = counts.get(name, 0) + (name in OVERSIGNED)
            if times:
                names += [name] * times
        return names

    def sign(self, content: bytes | Message) -> bytes:
        """The DKIM-Signature field to prepend to ``content``, folded, ending in CRLF.

        ``content`` is the message as it will be sent (header and body);
        bare LF line ends are read as CRLF. Never raises for what the
        message holds.
        """
        message = content if isinstance(content, Message) else parse_message(content)
        names = self.header_names(message)

        body_hash, _ = body_digest(message.body, self.body_canon, self.algorithm.hash_name)
        now = int(self.clock())
        tags = [
            ("v", "1"),
            ("a", self.algorithm.value),
            ("c", format_canonicalization(self.header_canon, self.body_canon)),
            ("d", self.domain),
            ("s", self.selector),
            ("t", str(now)),
        ]
        if self.expire_after is not None:
            tags.append(("x", str(now + int(self.expire_after))))
        if self.identity is not None:
            tags.append(("i", self.identity))

        folder = _Folder("DKIM-Signature:", self.width)
        for name, value in tags:
            folder.add(f"{name}={value};")
        folder.add_list("h=", names, ":", ";")
        folder.add(f"bh={base64.b64encode(body_hash).decode('ascii')};")
        folder.add("b=", new_line=True)
        unsigned = folder.text()

        fields = select_headers(message.headers, names)
        digest = header_digest(fields, unsigned, self.header_canon, self.algorithm.hash_name)
        signature = sign_digest(self.key, self.algorithm, digest)
        folder.add_run(base64.b64encode(signature).decode("ascii"))
        return folder.text() + b"\r\n"


class _Folder:
    """Builds a header field from atoms, breaking lines before an atom that would not fit.

    Continuation lines start with one space. Breaks are only ever placed
    where FWS is allowed: between tags, after a colon of h=, and inside a
    base64 value.
    """

    def __init__(self, name: str, width: int) -> None:
        self.width = width
        self.lines = [name]

    def add(self, atom: str, space: bool = True, new_line: bool = False) -> None:
        """Append ``atom``, after a space, or at the start of a new line if it does not fit."""
        piece = " " + atom if space else atom
        if new_line or len(self.lines[-1]) + len(piece) > self.width:
            self.lines.append(" " + atom)
        else:
            self.lines[-1] += piece

    def add_list(self, prefix: str, items: list[str], separator: str, end: str) -> None:
        """Append ``prefix`` and ``items`` joined by ``separator``, breakable after each one."""
        if not items:
            self.add(prefix + end)
            return
        last = len(items) - 1
        for number, item in enumerate(items):
            atom = (prefix if number == 0 else "") + item + (end if number == last else separator)
            self.add(atom, space=number == 0)

    def add_run(self, value: str) -> None:
        """Append ``value`` right after the last atom, spilling onto new lines as needed."""
        while value:
            room = self.width - len(self.lines[-1])
            if room <= 0:
                self.lines.append(" ")
                room = self.width - 1
            self.lines[-1] += value[:room]
            value = value[room:]

    def text(self) -> bytes:
        """The field so far, lines joined by CRLF, without a final line ending."""
        return "\r\n".join(self.lines).encode("ascii")


def _dns_name(value: str, what: str) -> str:
    if not is_dns_name(value):
        raise SignerConfigError(f"{what} {value!r} is not a DNS name")
    return value


def _identity(identity: str | None, domain: str) -> str | None:
    # TODO: an identity needing dkim-quoted-printable (non-ASCII, ";", "=", spaces)
    # is refused; encoding it would allow RFC 8616 addresses as i=.
    if identity is None:
        return None
    _, at, where = identity.rpartition("@")
    inside = where.lower() == domain.lower() or where.lower().endswith("." + domain.lower())
    if not at or not inside or any(c in identity for c in " \t\r\n;=") or not identity.isascii():
        raise SignerConfigError(f"identity {identity!r} is not an address in {domain} or below")
    return identity


def _header_list(names: Iterable[str]) -> tuple[str, ...]:
    """The configured names in lower case, From first if missing, RFC 8058 fields added."""
    listed = list(dict.fromkeys(name.strip().lower() for name in names))
    if any(not name or ":" in name or not name.isascii() for name in listed):
        raise SignerConfigError(f"header list {listed!r} holds an invalid field name")
    if "from" not in listed:
        listed.insert(0, "from")
    listed.extend(name for name in ALWAYS_SIGNED if name not in listed)
    return tuple(listed)
