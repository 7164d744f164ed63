"""SMTP replies as values.

Every reply mailwright sends is a :class:`Reply`: a three-digit code (RFC 5321
§4.2), an enhanced status code (RFC 3463, announced by RFC 2034's
ENHANCEDSTATUSCODES) and one or more lines of text. The constructor checks that
the two codes agree in class (a 5xx reply cannot carry ``4.x.x``), so a wrong
pairing fails where it is written, not on the wire. The named constants below
are the replies the engines send on their own; policy code builds others with
:class:`Reply` or :meth:`Reply.with_text`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply: ``code``, optional enhanced ``status`` and ``lines`` of text.

    Raises :class:`ValueError` when the code is not 2xx to 5xx, the enhanced
    status is malformed or of another class than the code, or a line holds CR
    or LF (which would let text inject a second reply).
    """

    code: int
    status: str | None
    lines: tuple[str, ...]
    # The wire form, made on first use: the named replies go out millions of times.
    _wire: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _wire_plain: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __init__(self, code: int, status: str | None, *lines: str) -> None:
        if not 200 <= code <= 599:
            raise ValueError(f"reply code {code} is not between 200 and 599")
        if status is not None:
            if not _ENHANCED.match(status):
                raise ValueError(f"enhanced status {status!r} is not class.subject.detail")
            if code // 100 in (2, 4, 5) and int(status[0]) != code // 100:
                raise ValueError(f"enhanced status {status} does not match reply code {code}")
        text = lines or ("",)
        for line in text:
            if "\r" in line or "\n" in line:
                raise ValueError(f"reply text {line!r} holds a line break")
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "lines", tuple(text))
        object.__setattr__(self, "_wire", None)
        object.__setattr__(self, "_wire_plain", None)

    @property
    def text(self) -> str:
        """The text lines joined by newlines (for logs and events)."""
        return "\n".join(self.lines)

    @property
    def is_positive(self) -> bool:
        """True for 2xx and 3xx replies."""
        return self.code < 400

    @property
    def is_transient(self) -> bool:
        """True for 4xx replies: try again later."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """True for 5xx replies: do not try again."""
        return self.code >= 500

    def with_text(self, *lines: str) -> Reply:
        """The same codes with other text."""
        return Reply(self.code, self.status, *lines)

    def to_bytes(self, *, enhanced: bool = True) -> bytes:
        """Serialise for the wire, one ``code-`` line per line but the last.

        With ``enhanced`` false the status is left out (for a client that did
        not say EHLO, RFC 2034 §3 only applies to EHLO sessions).
        """
        cached = self._wire if enhanced else self._wire_plain
        if cached is not None:
            return cached
        wire = self._serialise(enhanced)
        object.__setattr__(self, "_wire" if enhanced else "_wire_plain", wire)
        return wire

    def _serialise(self, enhanced: bool) -> bytes:
        prefix = f"{self.status} " if enhanced and self.status else ""
        out = []
        last = len(self.lines) - 1
        for index, line in enumerate(self.lines):
            sep = " " if index == last else "-"
            out.append(f"{self.code}{sep}{prefix}{line}\r\n")
        return "".join(out).encode("utf-8")

    def __str__(self) -> str:
        prefix = f"{self.status} " if self.status else ""
        return f"{self.code} {prefix}{self.text}"


# --- Replies the server engine sends on its own (RFC 5321 §4.2.2, RFC 3463) -----

SERVICE_CLOSING = Reply(221, "2.0.0", "Bye")
AUTH_OK = Reply(235, "2.7.0", "Authentication succeeded")
OK = Reply(250, "2.0.0", "OK")
SENDER_OK = Reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
RESET_OK = Reply(250, "2.0.0", "Reset OK")
NOOP_OK = Reply(250, "2.0.0", "OK")
MESSAGE_ACCEPTED = Reply(250, "2.0.0", "Message accepted")
VRFY_CANNOT = Reply(252, "2.5.0", "Cannot VRFY user, but will accept message")
AUTH_CONTINUE = Reply(334, None, "")
START_DATA = Reply(354, None, "End data with <CR><LF>.<CR><LF>")
READY_TLS = Reply(220, "2.0.0", "Ready to start TLS")

SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down")
TIMEOUT = Reply(421, "4.4.2", "Timeout, closing connection")
TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "Too many connections, try again later")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "Too many errors, closing connection")
TEMP_FAILURE = Reply(451, "4.3.0", "Temporary failure, try again later")
LOCAL_ERROR = Reply(451, "4.3.0", "Local error in processing")
SPOOL_FULL = Reply(452, "4.3.1", "Insufficient system storage")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")
TLS_UNAVAILABLE = Reply(454, "4.7.0", "TLS not available")
AUTH_TEMP_FAILURE = Reply(454, "4.7.0", "Temporary authentication failure")

SYNTAX_ERROR = Reply(500, "5.5.2", "Syntax error, command unrecognised")
LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long")
PARAM_SYNTAX = Reply(501, "5.5.4", "Syntax error in parameters or arguments")
BAD_SENDER_SYNTAX = Reply(501, "5.1.7", "Bad sender address syntax")
BAD_RECIPIENT_SYNTAX = Reply(501, "5.1.3", "Bad recipient address syntax")
NOT_IMPLEMENTED = Reply(502, "5.5.1", "Command not implemented")
BAD_SEQUENCE = Reply(503, "5.5.1", "Bad sequence of commands")
PARAM_NOT_IMPLEMENTED = Reply(504, "5.5.4", "Command parameter not implemented")
AUTH_MECHANISM_UNKNOWN = Reply(504, "5.5.4", "Unrecognised authentication mechanism")
AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")
ENCRYPTION_REQUIRED = Reply(538, "5.7.11", "Encryption required for requested authentication")
AUTH_FAILED = Reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_CANCELLED = Reply(501, "5.0.0", "Authentication cancelled")
RELAY_DENIED = Reply(550, "5.7.1", "Relaying denied")
NO_VALID_RECIPIENTS = Reply(554, "5.5.1", "No valid recipients")
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
UTF8_REQUIRED = Reply(553, "5.6.7", "SMTPUTF8 required for a non-ASCII address")
EIGHTBIT_REQUIRED = Reply(554, "5.6.1", "8BITMIME not declared")
BARE_LINE_ENDING = Reply(550, "5.6.11", "Bare CR or LF in message data, use CRLF line endings")
SERVICE_UNAVAILABLE = Reply(554, "5.3.2", "Service not available")

# --- Added for the server engine (sequence errors, AUTH, BDAT, HELP) ------------

HELP = Reply(214, "2.0.0", "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT")
CHUNK_OK = Reply(250, "2.0.0", "Chunk received")
AUTH_CHALLENGE_USERNAME = Reply(334, None, "VXNlcm5hbWU6")  # base64 "Username:"
AUTH_CHALLENGE_PASSWORD = Reply(334, None, "UGFzc3dvcmQ6")  # base64 "Password:"
HELLO_FIRST = Reply(503, "5.5.1", "Send EHLO or HELO first")
MAIL_FIRST = Reply(503, "5.5.1", "Need MAIL before RCPT, DATA or BDAT")
NESTED_MAIL = Reply(503, "5.5.1", "Sender already given, RSET first")
TRANSACTION_IN_PROGRESS = Reply(503, "5.5.1", "Not allowed during a mail transaction")
ALREADY_AUTHENTICATED = Reply(503, "5.5.1", "Already authenticated")
TLS_ALREADY_ACTIVE = Reply(503, "5.5.1", "TLS already active")
DATA_AFTER_BDAT = Reply(503, "5.5.1", "DATA not allowed with BDAT or BODY=BINARYMIME")
GREETING_REFUSED = Reply(503, "5.5.1", "Service refused, only QUIT is accepted")
AUTH_BAD_BASE64 = Reply(501, "5.5.2", "Cannot decode base64 response")
AUTH_MALFORMED = Reply(501, "5.5.2", "Malformed authentication response")
BDAT_SYNTAX = Reply(501, "5.5.4", "Syntax: BDAT chunk-size [LAST]")
HELLO_SYNTAX = Reply(501, "5.5.4", "Syntax: EHLO domain or address-literal")
ADDRESS_TOO_LONG = Reply(501, "5.1.0", "Address too long")
UNKNOWN_PARAMETER = Reply(555, "5.5.4", "MAIL FROM/RCPT TO parameter not recognised")
BAD_PARAMETER_VALUE = Reply(501, "5.5.4", "Invalid value of a MAIL FROM/RCPT TO parameter")


# --- Next-hop resolution and local delivery (RFC 5321 §5, RFC 7505, RFC 3463) ---

NULL_MX = Reply(556, "5.1.10", "Recipient domain does not accept mail (null MX)")
DOMAIN_NOT_FOUND = Reply(550, "5.1.2", "Recipient domain not found")
BAD_DOMAIN = Reply(550, "5.1.2", "Recipient domain name is not valid")
DNS_TEMP_FAILURE = Reply(451, "4.4.3", "Temporary DNS failure, try again later")
NO_MAIL_EXCHANGER_ADDRESS = Reply(550, "5.4.4", "No address found for any mail exchanger")
MAIL_LOOP = Reply(554, "5.4.6", "Mail for this domain loops back to myself")
MAILDIR_DELIVERED = Reply(250, "2.0.0", "Delivered to maildir")
MAILDIR_DISK_FULL = Reply(452, "4.3.1", "Mailbox disk full")
MAILDIR_LOCAL_ERROR = Reply(451, "4.3.0", "Local error writing to maildir")
MAILBOX_UNUSABLE = Reply(550, "5.1.1", "Mailbox name not usable")


# --- Administration (mailwright queue bounce) ---

RETURNED_BY_ADMIN = Reply(550, "5.0.0", "Returned to the sender by the mail administrator")
