"""Reverse-paths, forward-paths and ESMTP parameters of MAIL and RCPT.

Implements the grammar of RFC 5321 §4.1.2 (``Path``, ``Mailbox``, quoted
local parts, address literals of §4.1.3), RFC 6531 §3.3 (non-ASCII mailboxes,
accepted only when the transaction declared SMTPUTF8), RFC 1870 (``SIZE``),
RFC 6152 and RFC 3030 (``BODY``), RFC 3461 §4 (``NOTIFY``, ``ORCPT``, ``RET``,
``ENVID`` with xtext) and RFC 4954 §5 (``AUTH=``, accepted and ignored).

Source routes (``<@relay,@relay:user@domain>``) are parsed and dropped, as
RFC 5321 Appendix C says a server should. Addresses are returned as received,
without angle brackets: a quoted local part stays quoted and case is kept.

Every failure raises a subclass of :class:`CommandArgumentError` carrying the
reply to send, so the session answers without knowing what went wrong.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from mailwright.errors import MailwrightError
from mailwright.smtp import replies
from mailwright.smtp.replies import Reply

MAX_LOCAL_PART = 64  # RFC 5321 §4.5.3.1.1
MAX_DOMAIN = 255  # RFC 5321 §4.5.3.1.2
MAX_PATH = 256  # RFC 5321 §4.5.3.1.3
MAX_ENVID = 100  # RFC 3461 §4.4

# atext of RFC 5322 §3.2.3; RFC 6531 §3.3 adds every non-ASCII character.
_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-"
_DOT_STRING_ASCII = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*")
_DOT_STRING_UTF8 = re.compile(rf"[{_ATEXT}\u0080-\U0010ffff]+(?:\.[{_ATEXT}\u0080-\U0010ffff]+)*")
# Quoted-string: qtextSMTP is %d32-33 / %d35-91 / %d93-126, quoted-pair is "\" %d32-126.
_QUOTED_ASCII = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"')
_QUOTED_UTF8 = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[\x20-\x7e])*"')
# sub-domain = Let-dig [Ldh-str]; U-labels (RFC 6531) admit non-ASCII letters.
_LABEL_ASCII = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?")
_LABEL_UTF8 = re.compile(
    r"[A-Za-z0-9\u0080-\U0010ffff](?:[A-Za-z0-9\-\u0080-\U0010ffff]*[A-Za-z0-9\u0080-\U0010ffff])?"
)
_GENERAL_LITERAL = re.compile(r"[A-Za-z0-9\-]*[A-Za-z0-9]:[\x21-\x5a\x5e-\x7e]+")
_ESMTP_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*")
# esmtp-value: any CHAR but "=", SP and controls; RFC 6531 §3.3 adds UTF-8.
_ESMTP_VALUE_ASCII = re.compile(r"[\x21-\x3c\x3e-\x7e]+")
_ESMTP_VALUE_UTF8 = re.compile(r"[\x21-\x3c\x3e-\x7e\u0080-\U0010ffff]+")
# xtext (RFC 3461 §4): "!".."~" except "+" and "=", or "+" and two upper-case hex digits.
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*")
_XTEXT_HEX = re.compile(r"\+([0-9A-F]{2})")
_ADDR_TYPE = re.compile(rf"[{_ATEXT}]+")

_BODY_TYPES = frozenset({"7BIT", "8BITMIME", "BINARYMIME"})
_NOTIFY_VALUES = frozenset({"SUCCESS", "FAILURE", "DELAY"})


class CommandArgumentError(MailwrightError):
    """The argument of MAIL or RCPT is wrong; :attr:`reply` says how to answer."""

    def __init__(self, reply: Reply, detail: str) -> None:
        self.reply = reply
        self.detail = detail
        super().__init__(f"{detail} ({reply.code} {reply.status})")


class PathSyntaxError(CommandArgumentError):
    """A reverse- or forward-path does not follow RFC 5321 §4.1.2."""


class Utf8RequiredError(CommandArgumentError):
    """A non-ASCII address was given without SMTPUTF8 (RFC 6531 §3.4: 553 5.6.7)."""


class ParameterError(CommandArgumentError):
    """An ESMTP parameter is malformed (501), unknown (555) or its value is refused."""


@dataclass(frozen=True, slots=True)
class MailArguments:
    """What a ``MAIL FROM:`` command asked for.

    ``address`` is the reverse-path without brackets, ``""`` for the null
    path. ``params`` holds every parameter, keyword upper-cased, value as
    received (``None`` for a keyword without value).
    """

    address: str
    params: dict[str, str | None]
    smtputf8: bool = False
    body: str = "7BIT"
    size: int | None = None
    ret: str | None = None
    envid: str | None = None


@dataclass(frozen=True, slots=True)
class RcptArguments:
    """What a ``RCPT TO:`` command asked for (``notify`` and ``orcpt`` per RFC 3461)."""

    address: str
    params: dict[str, str | None]
    notify: tuple[str, ...] = ()
    orcpt: str | None = None


# --- Paths -----------------------------------------------------------------------------


def parse_path(text: str, *, utf8: bool, null_ok: bool) -> str:
    """Parse ``<[A-d-l:]Mailbox>`` (or ``<>`` when ``null_ok``) and return the mailbox.

    ``utf8`` admits RFC 6531 non-ASCII mailboxes. Raises :class:`PathSyntaxError`
    (with a 501 reply meant for a forward-path; callers re-label it for a
    reverse-path) and :class:`Utf8RequiredError`.
    """
    if len(text) < 2 or text[0] != "<" or text[-1] != ">":
        raise PathSyntaxError(replies.BAD_RECIPIENT_SYNTAX, f"path {text!r} lacks <>")
    inner = text[1:-1]
    if not inner:
        if null_ok:
            return ""
        raise PathSyntaxError(replies.BAD_RECIPIENT_SYNTAX, "null path not allowed here")
    if len(text.encode("utf-8")) > MAX_PATH:
        raise PathSyntaxError(replies.ADDRESS_TOO_LONG, f"path of {len(text)} characters")

    if inner[0] == "@":
        colon = inner.find(":")
        if colon < 0:
            raise PathSyntaxError(replies.BAD_RECIPIENT_SYNTAX, f"source route in {text!r}")
        for hop in inner[:colon].split(","):
            if not hop.startswith("@") or not _is_domain(hop[1:], utf8=False):
                raise PathSyntaxError(replies.BAD_RECIPIENT_SYNTAX, f"source route in {text!r}")
        inner = inner[colon + 1 :]

    if not utf8 and not inner.isascii():
        raise Utf8RequiredError(replies.UTF8_REQUIRED, f"non-ASCII address {inner!r}")
    return parse_mailbox(inner, utf8=utf8)


def parse_mailbox(text: str, *, utf8: bool) -> str:
    """Check ``Local-part "@" (Domain / address-literal)`` and return it unchanged.

    Raises :class:`PathSyntaxError` naming the part at fault.
    """
    at = text.rfind("@")
    if at <= 0:
        raise PathSyntaxError(replies.BAD_RECIPIENT_SYNTAX, f"no local part or domain: {text!r}")
    local, domain = text[:at], text[at + 1 :]

    dot_string = _DOT_STRING_UTF8 if utf8 else _DOT_STRING_ASCII
    quoted = _QUOTED_UTF8 if utf8 else _QUOTED_ASCII
    if not (dot_string.fullmatch(local) or quoted.fullmatch(local)):
        raise PathSyntaxError(replies.BAD_RECIPIENT_SYNTAX, f"bad local part {local!r}")
    if len(local.encode("utf-8")) > MAX_LOCAL_PART:
        raise PathSyntaxError(replies.ADDRESS_TOO_LONG, f"local part of {len(local)} characters")

    if domain.startswith("["):
        if not _is_address_literal(domain):
            raise PathSyntaxError(replies.BAD_RECIPIENT_SYNTAX, f"bad address literal {domain!r}")
    elif not _is_domain(domain, utf8=utf8):
        raise PathSyntaxError(replies.BAD_RECIPIENT_SYNTAX, f"bad domain {domain!r}")
    return text


def _is_domain(text: str, *, utf8: bool) -> bool:
    """True when ``text`` is ``sub-domain *("." sub-domain)`` of at most 255 octets."""
    if not text or len(text.encode("utf-8")) > MAX_DOMAIN:
        return False
    label = _LABEL_UTF8 if utf8 else _LABEL_ASCII
    return all(label.fullmatch(part) for part in text.split("."))


def _is_address_literal(text: str) -> bool:
    """True for ``[IPv4]``, ``[IPv6:addr]`` or a general literal (RFC 5321 §4.1.3)."""
    if len(text) < 3 or not text.endswith("]"):
        return False
    inner = text[1:-1]
    try:
        if inner[:5].upper() == "IPV6:":
            ipaddress.IPv6Address(inner[5:])
            return True
        if ":" not in inner:
            ipaddress.IPv4Address(inner)
            return True
    except ValueError:
        return False
    return _GENERAL_LITERAL.fullmatch(inner) is not None


# --- Parameters --------------------------------------------------------------------------


def split_path(argument: str, prefix: str) -> tuple[str, str]:
    """Split ``FROM:<path> params`` into the path and the parameter text.

    ``prefix`` is ``"FROM:"`` or ``"TO:"``, matched without regard to case.
    Spaces after the colon are tolerated (a common client mistake). Raises
    :class:`PathSyntaxError` when the prefix or the angle brackets are missing.
    """
    if argument[: len(prefix)].upper() != prefix:
        raise PathSyntaxError(replies.PARAM_SYNTAX, f"expected {prefix} in {argument!r}")
    rest = argument[len(prefix) :].lstrip(" ")
    if not rest.startswith("<"):
        raise PathSyntaxError(replies.BAD_RECIPIENT_SYNTAX, f"path lacks <> in {argument!r}")

    # A quoted local part may hold ">" or spaces: find the closing bracket after it.
    position = 1
    if rest.startswith('<"') or (rest.startswith("<@") and ':"' in rest):
        quote = rest.find('"')
        position = quote + 1
        while position < len(rest):
            char = rest[position]
            if char == "\\":
                position += 2
                continue
            if char == '"':
                break
            position += 1
    close = rest.find(">", position)
    if close < 0:
        raise PathSyntaxError(replies.BAD_RECIPIENT_SYNTAX, f"path lacks > in {argument!r}")
    path, params = rest[: close + 1], rest[close + 1 :]
    if params and not params.startswith(" "):
        raise PathSyntaxError(replies.PARAM_SYNTAX, f"text after path in {argument!r}")
    return path, params.strip(" ")


def parse_params(text: str, *, utf8: bool) -> dict[str, str | None]:
    """Parse ``esmtp-param *(SP esmtp-param)`` into a dict keyed by upper-cased keyword.

    Raises :class:`ParameterError` (501 5.5.4) for a malformed or repeated parameter.
    """
    params: dict[str, str | None] = {}
    value_pattern = _ESMTP_VALUE_UTF8 if utf8 else _ESMTP_VALUE_ASCII
    for item in text.split(" "):
        if not item:
            continue
        keyword, has_value, value = item.partition("=")
        if not _ESMTP_KEYWORD.fullmatch(keyword):
            raise ParameterError(replies.PARAM_SYNTAX, f"bad parameter keyword {keyword!r}")
        if has_value and not value_pattern.fullmatch(value):
            raise ParameterError(replies.PARAM_SYNTAX, f"bad value for {keyword}: {value!r}")
        key = keyword.upper()
        if key in params:
            raise ParameterError(replies.PARAM_SYNTAX, f"parameter {key} given twice")
        params[key] = value if has_value else None
    return params


def parse_mail_arguments(argument: str, *, extensions: frozenset[str]) -> MailArguments:
    """Parse the argument of MAIL (``FROM:<path> params``), RFC 5321 §4.1.1.2.

    ``extensions`` names what the server offered in EHLO (``SIZE``, ``8BITMIME``,
    ``BINARYMIME``, ``SMTPUTF8``, ``DSN``, ``AUTH``); a parameter of an extension
    not offered gets 555. Raises a :class:`CommandArgumentError` subclass whose
    reply uses 5.1.7 for a bad reverse-path.
    """
    try:
        path, param_text = split_path(argument, "FROM:")
    except PathSyntaxError as error:
        reply = error.reply
        if reply is replies.BAD_RECIPIENT_SYNTAX:  # a reverse-path, so 5.1.7 (RFC 3463)
            reply = replies.BAD_SENDER_SYNTAX
        raise PathSyntaxError(reply, error.detail) from None
    params = parse_params(param_text, utf8="SMTPUTF8" in extensions)

    smtputf8 = False
    body = "7BIT"
    size = ret = envid = None
    for key, value in params.items():
        if key not in _MAIL_PARAM_EXTENSION or _MAIL_PARAM_EXTENSION[key] not in extensions:
            raise ParameterError(replies.UNKNOWN_PARAMETER, f"MAIL parameter {key} not offered")
        if key == "SMTPUTF8":
            if value is not None:
                raise ParameterError(replies.PARAM_SYNTAX, "SMTPUTF8 takes no value")
            smtputf8 = True
        elif key == "SIZE":
            size = _parse_size(value)
        elif key == "BODY":
            body = _parse_body(value, extensions)
        elif key == "RET":
            ret = _parse_ret(value)
        elif key == "ENVID":
            envid = _parse_envid(value)
        elif key == "AUTH" and (value is None or not is_xtext(value)):
            raise ParameterError(replies.BAD_PARAMETER_VALUE, f"AUTH={value!r} is not xtext")

    try:
        address = parse_path(path, utf8=smtputf8, null_ok=True)
    except PathSyntaxError as error:
        reply = error.reply
        if reply is replies.BAD_RECIPIENT_SYNTAX:
            reply = replies.BAD_SENDER_SYNTAX
        raise PathSyntaxError(reply, error.detail) from None
    return MailArguments(address, params, smtputf8, body, size, ret, envid)


def parse_rcpt_arguments(
    argument: str, *, extensions: frozenset[str], smtputf8: bool
) -> RcptArguments:
    """Parse the argument of RCPT (``TO:<path> params``), RFC 5321 §4.1.1.3.

    ``smtputf8`` is true when the transaction's MAIL carried SMTPUTF8. The bare
    ``<Postmaster>`` (any case) is accepted as RFC 5321 §4.1.1.3 requires.
    Raises a :class:`CommandArgumentError` subclass.
    """
    path, param_text = split_path(argument, "TO:")
    params = parse_params(param_text, utf8=smtputf8)

    notify: tuple[str, ...] = ()
    orcpt = None
    for key, value in params.items():
        if key not in _RCPT_PARAM_EXTENSION or _RCPT_PARAM_EXTENSION[key] not in extensions:
            raise ParameterError(replies.UNKNOWN_PARAMETER, f"RCPT parameter {key} not offered")
        if key == "NOTIFY":
            notify = _parse_notify(value)
        elif key == "ORCPT":
            orcpt = _parse_orcpt(value)

    if path[1:-1].lower() == "postmaster":
        return RcptArguments(path[1:-1], params, notify, orcpt)
    address = parse_path(path, utf8=smtputf8, null_ok=False)
    return RcptArguments(address, params, notify, orcpt)


_MAIL_PARAM_EXTENSION = {
    "SIZE": "SIZE",
    "BODY": "8BITMIME",
    "SMTPUTF8": "SMTPUTF8",
    "RET": "DSN",
    "ENVID": "DSN",
    "AUTH": "AUTH",
}
_RCPT_PARAM_EXTENSION = {"NOTIFY": "DSN", "ORCPT": "DSN"}


def _parse_size(value: str | None) -> int:
    """SIZE=digits (RFC 1870 §6); at most 20 digits to bound int()."""
    if value is None or not value.isdigit() or not value.isascii() or len(value) > 20:
        raise ParameterError(replies.BAD_PARAMETER_VALUE, f"SIZE={value!r} is not a number")
    return int(value)


def _parse_body(value: str | None, extensions: frozenset[str]) -> str:
    """BODY=7BIT / 8BITMIME (RFC 6152) / BINARYMIME (RFC 3030, only with CHUNKING)."""
    body = (value or "").upper()
    if body not in _BODY_TYPES:
        raise ParameterError(replies.BAD_PARAMETER_VALUE, f"BODY={value!r} is unknown")
    if body == "BINARYMIME" and "BINARYMIME" not in extensions:
        raise ParameterError(replies.UNKNOWN_PARAMETER, "BODY=BINARYMIME not offered")
    return body


def _parse_ret(value: str | None) -> str:
    """RET=FULL or RET=HDRS (RFC 3461 §4.3)."""
    ret = (value or "").upper()
    if ret not in ("FULL", "HDRS"):
        raise ParameterError(replies.BAD_PARAMETER_VALUE, f"RET={value!r} is not FULL or HDRS")
    return ret


def _parse_envid(value: str | None) -> str:
    """ENVID=xtext of at most 100 characters (RFC 3461 §4.4), kept as received."""
    if value is None or len(value) > MAX_ENVID or not is_xtext(value):
        raise ParameterError(replies.BAD_PARAMETER_VALUE, f"ENVID={value!r} is not valid xtext")
    return value


def _parse_notify(value: str | None) -> tuple[str, ...]:
    """NOTIFY=NEVER or a list of SUCCESS, FAILURE, DELAY (RFC 3461 §4.1)."""
    items = tuple(item.upper() for item in (value or "").split(","))
    if items == ("NEVER",):
        return items
    if (
        not items
        or not all(item in _NOTIFY_VALUES for item in items)
        or len(set(items)) != len(items)
    ):
        raise ParameterError(replies.BAD_PARAMETER_VALUE, f"NOTIFY={value!r} is invalid")
    return items


def _parse_orcpt(value: str | None) -> str:
    """ORCPT=addr-type;xtext (RFC 3461 §4.2), kept as received."""
    addr_type, semicolon, address = (value or "").partition(";")
    if not semicolon or not _ADDR_TYPE.fullmatch(addr_type) or not address:
        raise ParameterError(replies.BAD_PARAMETER_VALUE, f"ORCPT={value!r} is invalid")
    if not is_xtext(address):
        # TODO: RFC 6533 utf-8-addr-xtext is not accepted, so an SMTPUTF8 client's
        # non-ASCII ORCPT is refused; it matters only for internationalised DSNs.
        raise ParameterError(replies.BAD_PARAMETER_VALUE, f"ORCPT={value!r} is not xtext")
    return value or ""


# --- xtext ---------------------------------------------------------------------------


def is_xtext(text: str) -> bool:
    """True when ``text`` is valid xtext (RFC 3461 §4)."""
    return _XTEXT.fullmatch(text) is not None


def xtext_decode(text: str) -> str:
    """Decode xtext (``+XX`` hex escapes); raises :class:`ValueError` if it is not xtext."""
    if not is_xtext(text):
        raise ValueError(f"{text!r} is not xtext")
    return _XTEXT_HEX.sub(lambda match: chr(int(match.group(1), 16)), text)


def xtext_encode(text: str) -> str:
    """Encode ASCII text as xtext: ``+``, ``=``, controls and space become ``+XX``.

    Raises :class:`ValueError` for non-ASCII text, which xtext cannot carry.
    """
    if not text.isascii():
        raise ValueError(f"{text!r} is not ASCII")
    return "".join(
        char if "!" <= char <= "~" and char not in "+=" else f"+{ord(char):02X}" for char in text
    )
