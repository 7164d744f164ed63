"""The exceptions of ARC: raised only for a caller's mistake, never for what a message holds.

Validation never raises: a broken or forged chain is a ``fail`` with a
reason (see :mod:`.result`). Sealing raises when it is set up with a key or
an option we refuse to use (at start-up, where an operator sees it), or
when a call hands it inconsistent input, such as a chain validation result
that cannot belong to the message. A message that cannot be sealed because
of what it carries (a chain already marked failed, 50 sets) is not an
error: :meth:`~.seal.Sealer.seal` says so with a :class:`~.seal.NotSealed`.
"""

from __future__ import annotations

from mailwright.errors import MailwrightError


class ArcError(MailwrightError):
    """Root of the errors the ARC package raises on purpose."""


class SealerConfigError(ArcError, ValueError):
    """A :class:`~.seal.Sealer` was asked for something we will not do.

    Examples: an RSA key under 1024 bits (RFC 8301 §3.2), rsa-sha1, a domain
    or selector that is not a DNS name, an authserv-id that is not a token,
    an ARC-Seal or Authentication-Results field in the signed header list
    (RFC 8617 §4.1.2). The message names the offending value; a DKIM key
    error is kept as ``__cause__``.
    """


class SealError(ArcError, ValueError):
    """A call to :meth:`~.seal.Sealer.seal` got input that cannot be right.

    Examples: an Authentication-Results payload that does not parse (RFC
    8601), or a chain status that contradicts the message (``none`` for a
    message that carries ARC header fields, ``pass`` for a chain whose
    structure is broken).
    """
