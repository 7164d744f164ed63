"""What hooks see: one context object per stage, and what they may change in it.

Every hook takes exactly one argument, the context of its stage:

========================  ==================  ===============================================
hook                      argument            when
========================  ==================  ===============================================
``on_connect``            :class:`Connection`   a client connected, before the greeting
``on_ehlo``               :class:`Hello`        EHLO or HELO
``on_auth``               :class:`Auth`         after AUTH credentials were checked
``on_mail``               :class:`Transaction`  MAIL FROM (``spf`` is known when checked)
``on_rcpt``               :class:`RecipientCheck` each RCPT TO
``on_message``            :class:`Message`      end of data, before the 250
``on_queue``              :class:`Message`      accepted: choose route, queue, metadata
``on_delivery``           :class:`DeliveryOutcome` each recipient delivered, deferred, bounced
``on_bounce``             :class:`Bounce`       a DSN is about to be queued
========================  ==================  ===============================================

Contexts are plain objects; reading them costs nothing. A :class:`Message`
collects edits (headers added or removed, metadata, route) that are applied
only when the message is accepted. ``metadata`` set on a :class:`Connection`
is copied into every transaction of that connection, and a transaction's
into its message's envelope, where it is stored with the message (tenant,
campaign, queue...) and reaches the delivery hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailwright.envelope import Envelope
from mailwright.smtp.replies import Reply

if TYPE_CHECKING:
    from mailwright.auth.evaluate import Verdict
    from mailwright.auth.spf import SpfResult


@dataclass(slots=True)
class Connection:
    """One SMTP connection: who, where, and what is known about it so far."""

    session_id: str
    peer_ip: str
    peer_port: int
    local_ip: str
    local_port: int
    listener: str  # the listener's role: "inbound" or "submission"
    tls: bool = False
    helo: str | None = None
    auth_user: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Hello:
    """EHLO or HELO with the client's name."""

    connection: Connection
    kind: str  # "EHLO" or "HELO"
    name: str


@dataclass(slots=True)
class Auth:
    """An AUTH attempt after the credentials were checked; reject to refuse it anyway."""

    connection: Connection
    mechanism: str
    username: str
    succeeded: bool


@dataclass(slots=True)
class Transaction:
    """MAIL FROM and what follows it, up to the end of the message.

    ``sender`` is the reverse-path (empty for bounces). ``spf`` and
    ``helo_spf`` are the SPF results for the MAIL FROM (or HELO for a bounce)
    and the HELO identity when the policies asked for authentication.
    """

    connection: Connection
    sender: str
    params: dict[str, str | None]
    recipients: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    spf: SpfResult | None = None
    helo_spf: SpfResult | None = None


@dataclass(slots=True)
class RecipientCheck:
    """One RCPT TO, before it is added to the transaction."""

    transaction: Transaction
    address: str

    @property
    def connection(self) -> Connection:
        """The transaction's connection."""
        return self.transaction.connection


@dataclass(slots=True)
class HeaderEdit:
    """One header change a hook asked for."""

    action: str  # "add" or "remove"
    name: str
    value: str = ""
    matches: Callable[[str], bool] | None = None


class Message:
    """A complete message at the end of data: read it, decide, edit it.

    ``headers`` are the header fields as received, ``(name, value)`` with
    the value unfolded and stripped; ``content`` the raw octets. ``auth`` is
    the authentication verdict (SPF, DKIM, ARC, DMARC) when the policies asked
    for one, else None. Edits are kept until the message is accepted:

    * :meth:`add_header` prepends a field (above those received, below our
      ``Received:``);
    * :meth:`remove_header` drops received fields by name, optionally only
      those whose value ``matches``;
    * ``metadata`` is stored with the message; ``route`` (a route string such
      as ``maildir:/srv/quarantine`` or ``smtp://10.0.0.5:25``) sends every
      recipient there instead of the configured route.
    """

    __slots__ = ("_header_list", "auth", "content", "edits", "envelope", "route", "transaction")

    def __init__(
        self,
        transaction: Transaction,
        envelope: Envelope,
        content: bytes,
        auth: Verdict | None = None,
    ) -> None:
        self.transaction = transaction
        self.envelope = envelope
        self.content = content
        self.auth = auth
        self.edits: list[HeaderEdit] = []
        self.route: str | None = None
        self._header_list: list[tuple[str, str]] | None = None

    @property
    def connection(self) -> Connection:
        """The connection the message came over."""
        return self.transaction.connection

    @property
    def metadata(self) -> dict[str, str]:
        """The envelope's metadata (tenant, campaign, queue, ...), stored with the message."""
        return self.envelope.metadata

    @property
    def recipients(self) -> list[str]:
        """The envelope recipients."""
        return [recipient.address for recipient in self.envelope.recipients]

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The received header fields, ``(name, unfolded value)``, in order (parsed once)."""
        if self._header_list is None:
            self._header_list = parse_headers(self.content)
        return self._header_list

    def header(self, name: str) -> str | None:
        """The first field called ``name`` (any case), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def header_all(self, name: str) -> list[str]:
        """Every field called ``name`` (any case), in order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def add_header(self, name: str, value: str) -> None:
        """Prepend ``name: value`` (folded if over 998 octets).

        Raises ValueError for a bad name, a line break or NUL in the value,
        or a word too long for one line: the hook fails where it erred.
        """
        format_field(name, value)
        self.edits.append(HeaderEdit("add", name, value))

    def remove_header(self, name: str, matches: Callable[[str], bool] | None = None) -> None:
        """Drop every received ``name`` field (those whose value ``matches``, when given).

        ``matches`` gets the value as :attr:`headers` shows it (unfolded and
        stripped). Fields added by :meth:`add_header` are never removed.
        """
        check_field(name, "")
        self.edits.append(HeaderEdit("remove", name, matches=matches))


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What happened to one recipient (informational: the outcome is already recorded).

    ``status`` is ``delivered``, ``deferred``, ``bounced`` or ``expired``.
    """

    queue_id: str
    recipient: str
    status: str
    reply: Reply | None
    remote_host: str | None
    attempts: int
    metadata: dict[str, str]


@dataclass(slots=True)
class Bounce:
    """A delivery status notification about to be queued; :func:`discard` drops it.

    ``original`` is the envelope of the message it reports on; ``envelope``
    and ``content`` the DSN itself (to the original sender).
    """

    queue_id: str
    original: Envelope
    envelope: Envelope
    content: bytes


STAGES = (
    "on_connect",
    "on_ehlo",
    "on_auth",
    "on_mail",
    "on_rcpt",
    "on_message",
    "on_queue",
    "on_delivery",
    "on_bounce",
)
"""Every hook name, in the order of a message's life."""


#: The longest line RFC 5322 §2.1.1 allows, without its CRLF.
MAX_LINE = 998

#: Where added fields are folded when they would be longer than :data:`MAX_LINE`.
FOLD_AT = 78


def check_field(name: str, value: str) -> None:
    """Raise ValueError unless ``name`` is a field name (RFC 5322 §3.6.8), ``value`` one line."""
    if not name or any(not 33 <= ord(char) <= 126 or char == ":" for char in name):
        raise ValueError(f"{name!r} is not a header field name")
    if "\r" in value or "\n" in value:
        raise ValueError(f"the value of {name} holds a line break")
    if "\x00" in value:
        raise ValueError(f"the value of {name} holds a NUL")


def format_field(name: str, value: str) -> bytes:
    """``name: value`` and CRLF, folded at spaces when longer than :data:`MAX_LINE` octets.

    Raises ValueError for a bad name or value, or a word too long to fold
    into lines of at most :data:`MAX_LINE` octets.
    """
    check_field(name, value)
    line = f"{name}: {value}"
    if len(line.encode()) <= MAX_LINE:
        return f"{line}\r\n".encode()

    # Greedy folding at spaces (RFC 5322 §2.2.3): each continuation starts with one.
    first = current = f"{name}:"
    lines: list[str] = []
    for word in (word for word in value.split(" ") if word):
        if current != first and len(current.encode()) + 1 + len(word.encode()) > FOLD_AT:
            lines.append(current)
            current = ""
        current += f" {word}"
    lines.append(current)
    if any(len(folded.encode()) > MAX_LINE for folded in lines):
        raise ValueError(f"the value of {name} has a word longer than {MAX_LINE} octets")
    return "".join(f"{folded}\r\n" for folded in lines).encode()


def unfold(value: str) -> str:
    """A field value as hooks see it: folding removed, each line stripped (RFC 5322 §2.2.3)."""
    return " ".join(part for part in (piece.strip() for piece in value.split("\r\n")) if part)


def split_header(content: bytes) -> tuple[list[bytes], bytes]:
    """The raw header fields of ``content`` and what follows them, octets unchanged.

    Each field keeps its continuation lines (those starting with white
    space) and CRLFs. The header ends at the first empty line; ``rest``
    starts with it, so ``b"".join(fields) + rest == content`` always holds.
    A line without a colon is kept as a field of its own, nameless, rather
    than ending the header: that is how :mod:`mailwright.auth.message`
    splits it, so hooks see the same From field DMARC checks.
    """
    fields: list[bytes] = []
    position, size = 0, len(content)
    while position < size:
        end = content.find(b"\r\n", position)
        stop = size if end < 0 else end + 2
        line = content[position:stop]
        if line == b"\r\n":
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
        position = stop
    return fields, content[position:]


def parse_headers(content: bytes) -> list[tuple[str, str]]:
    """The header fields of ``content``: ``(name, value)``, values unfolded and stripped.

    Octets that are not UTF-8 are replaced; lines that are not fields (no
    colon) are left out. The fields are those of :func:`split_header`.
    """
    fields, _ = split_header(content)
    return [pair for pair in map(field_of, fields) if pair[0]]


def field_of(raw: bytes) -> tuple[str, str]:
    """``(name, unfolded value)`` of one raw field; the name is empty without a colon."""
    name, colon, value = raw.decode("utf-8", "replace").partition(":")
    if not colon:
        return "", unfold(name)
    return name.strip(), unfold(value)
