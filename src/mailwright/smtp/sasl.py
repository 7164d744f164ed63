"""Server side of the SASL exchanges AUTH offers: PLAIN and LOGIN.

RFC 4954 §4 carries SASL in SMTP: ``AUTH mechanism [initial-response]``,
then ``334 challenge`` / base64 response lines until the server decides. A
response of ``*`` cancels (501), undecodable base64 gets 501 5.5.2. PLAIN
(RFC 4616) sends ``authzid NUL authcid NUL passwd`` in one response; LOGIN
(draft-murchison-sasl-login) asks for user name and password in turn.

:class:`SaslExchange` is sans-IO: it turns response text into either the next
challenge to send or the finished :class:`Credentials`. It never checks a
password; the adapter's handler does.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field

from mailwright.errors import MailwrightError
from mailwright.smtp import replies
from mailwright.smtp.replies import Reply

MECHANISMS = frozenset({"PLAIN", "LOGIN"})


class SaslError(MailwrightError):
    """The exchange failed on the client's side; :attr:`reply` is the answer (501)."""

    def __init__(self, reply: Reply, detail: str) -> None:
        self.reply = reply
        self.detail = detail
        super().__init__(detail)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the client claimed; ``authzid`` is ``""`` when it asked for none."""

    mechanism: str
    authzid: str
    username: str
    password: str = field(repr=False)


def decode_response(text: str) -> bytes:
    """Decode one base64 response; ``=`` is the empty response (RFC 4954 §4).

    Raises :class:`SaslError` with 501 5.5.2 for anything not strict base64.
    """
    if text == "=":
        return b""
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise SaslError(replies.AUTH_BAD_BASE64, "response is not base64") from None


def _text(raw: bytes, what: str) -> str:
    """UTF-8 text of a decoded field (RFC 4616 §2), or :class:`SaslError`."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslError(replies.AUTH_MALFORMED, f"{what} is not UTF-8") from None


def parse_plain(response: bytes) -> Credentials:
    """Split a PLAIN response into its three fields (RFC 4616 §2).

    Raises :class:`SaslError` (501 5.5.2) unless it holds exactly two NULs and a
    non-empty user name and password.
    """
    fields = response.split(b"\0")
    if len(fields) != 3 or not fields[1] or not fields[2]:
        raise SaslError(replies.AUTH_MALFORMED, "PLAIN response needs authzid NUL user NUL pass")
    authzid, username, password = (_text(value, "PLAIN field") for value in fields)
    return Credentials("PLAIN", authzid, username, password)


class SaslExchange:
    """One AUTH exchange for ``mechanism`` (``PLAIN`` or ``LOGIN``)."""

    def __init__(self, mechanism: str) -> None:
        if mechanism not in MECHANISMS:
            raise ValueError(f"SASL mechanism {mechanism!r} is not supported")
        self.mechanism = mechanism
        self._username: str | None = None

    def start(self, initial: str | None) -> Reply | Credentials:
        """Begin with the optional initial response; return a challenge or credentials."""
        if initial is None:
            if self.mechanism == "PLAIN":
                return replies.AUTH_CONTINUE
            return replies.AUTH_CHALLENGE_USERNAME
        return self._answer(decode_response(initial))

    def step(self, line: str) -> Reply | Credentials:
        """Take one response line; ``*`` cancels with :class:`SaslError` (501 5.0.0)."""
        if line == "*":
            raise SaslError(replies.AUTH_CANCELLED, "client cancelled AUTH")
        return self._answer(decode_response(line))

    def _answer(self, response: bytes) -> Reply | Credentials:
        if self.mechanism == "PLAIN":
            return parse_plain(response)
        if self._username is None:
            self._username = _text(response, "LOGIN user name")
            if not self._username:
                raise SaslError(replies.AUTH_MALFORMED, "empty LOGIN user name")
            return replies.AUTH_CHALLENGE_PASSWORD
        return Credentials("LOGIN", "", self._username, _text(response, "LOGIN password"))
