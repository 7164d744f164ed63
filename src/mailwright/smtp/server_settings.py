"""What a server session offers: its settings and the EHLO keywords they imply.

Kept apart from the state machine so that the adapter (which builds settings
per listener and per connection) and the engine read one definition of which
extension is on when (RFC 5321 §4.1.1.1, RFC 1869 §4).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from mailwright.smtp.data import BareLineEndings
from mailwright.smtp.replies import Reply


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """What one server session offers and tolerates.

    Limits follow RFC 5321 §4.5.3.1 where it sets them: a command line of at
    least 512 octets (extensions need more: AUTH responses may run to 12288,
    RFC 4954 §4), 100 recipients at least. ``max_data_line`` counts CRLF; the
    RFC's 1000 is exceeded by real mail often enough that the default is
    lenient. ``max_errors`` client errors are answered; the next one closes
    the session with 421 4.7.0.

    AUTH is offered when ``auth_mechanisms`` is not empty and either
    ``auth_allowed`` (the adapter sets it on loopback) or TLS is active, so
    ``auth_allowed=False`` hides AUTH until STARTTLS. ``auth_required`` makes
    MAIL before AUTH fail with 530 5.7.0 (submission, RFC 6409 §4.3).
    """

    hostname: str
    max_message_size: int = 25 * 1024 * 1024
    max_recipients: int = 1000
    max_command_line: int = 2048
    max_data_line: int = 8192
    max_errors: int = 10
    bare_line_endings: BareLineEndings = "reject"
    offer_starttls: bool = True
    tls_active: bool = False
    auth_mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN")
    auth_allowed: bool = False
    auth_required: bool = False
    chunking: bool = True
    smtputf8: bool = True
    eightbitmime: bool = True
    pipelining: bool = True
    dsn: bool = True


def auth_offered(settings: SessionSettings, *, tls_active: bool) -> bool:
    """True when AUTH may be used on this connection now."""
    return bool(settings.auth_mechanisms) and (settings.auth_allowed or tls_active)


@functools.lru_cache(maxsize=64)
def parameter_extensions(settings: SessionSettings, *, tls_active: bool) -> frozenset[str]:
    """Extensions whose MAIL/RCPT parameters are accepted after EHLO.

    The names are those :func:`mailwright.smtp.address.parse_mail_arguments` expects.
    Cached: settings are frozen, and every MAIL and RCPT asks.
    """
    names = {"SIZE"}
    if settings.eightbitmime:
        names.add("8BITMIME")
    if settings.chunking:
        names.add("BINARYMIME")
    if settings.smtputf8:
        names.add("SMTPUTF8")
    if settings.dsn:
        names.add("DSN")
    if auth_offered(settings, tls_active=tls_active):
        names.add("AUTH")
    return frozenset(names)


def ehlo_lines(settings: SessionSettings, *, tls_active: bool) -> list[str]:
    """The lines of the EHLO reply: our name, then one keyword per extension."""
    lines = [settings.hostname]
    if settings.pipelining:
        lines.append("PIPELINING")  # RFC 2920
    lines.append(f"SIZE {settings.max_message_size}")  # RFC 1870
    if settings.eightbitmime:
        lines.append("8BITMIME")  # RFC 6152
    if settings.smtputf8:
        lines.append("SMTPUTF8")  # RFC 6531
    lines.append("ENHANCEDSTATUSCODES")  # RFC 2034
    if settings.chunking:
        lines += ["CHUNKING", "BINARYMIME"]  # RFC 3030
    if settings.dsn:
        lines.append("DSN")  # RFC 3461
    if settings.offer_starttls and not tls_active:
        lines.append("STARTTLS")  # RFC 3207
    if auth_offered(settings, tls_active=tls_active):
        lines.append("AUTH " + " ".join(settings.auth_mechanisms))  # RFC 4954
    lines.append("HELP")
    return lines


@functools.lru_cache(maxsize=64)
def ehlo_reply(settings: SessionSettings, *, tls_active: bool) -> Reply:
    """The 250 reply to EHLO; cached, so its wire form is built once per listener."""
    return Reply(250, None, *ehlo_lines(settings, tls_active=tls_active))
