"""The exception hierarchy of mailwright.

One root, :class:`MailwrightError`, and one family per area. Errors raised by
dnspython, the OS or SQLite are translated at the boundary into one of these,
with the original kept as ``__cause__``. Errors that imply an SMTP answer carry
it as :attr:`reply`, so an adapter can send it without knowing the error.
"""

from __future__ import annotations


class MailwrightError(Exception):
    """Root of every error mailwright raises on purpose."""


class ConfigError(MailwrightError):
    """A configuration file is unreadable or wrong.

    The message names the file, the line (when known) and the key at fault, as
    ``FILE:LINE: KEY: what is wrong``.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.key = key
        self.detail = message
        where = path or "<config>"
        if line is not None:
            where = f"{where}:{line}"
        prefix = f"{where}: {key}: " if key else f"{where}: "
        super().__init__(prefix + message)


class SpoolError(MailwrightError):
    """The spool could not store or read a message."""


class SpoolFullError(SpoolError):
    """The spool's disk is full; the message was not accepted (452 4.3.1)."""


class DeliveryError(MailwrightError):
    """A delivery attempt failed in a way that is not an SMTP reply."""


class RouteError(ConfigError):
    """A route in ``[routes]`` cannot be understood."""


class UserStoreError(MailwrightError):
    """The credential store is unreadable or a user name is invalid."""


class ReportError(MailwrightError):
    """A DMARC report cannot be read: not a report, damaged beyond recovery, or too large.

    The message names what is missing or wrong (``no <policy_published>``,
    ``report.xml.gz decompresses to more than 50 MiB``), so the operator can
    tell a reporter's mistake from an attack.
    """
