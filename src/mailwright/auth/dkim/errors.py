"""The exceptions of DKIM: raised only where a caller configures something wrong.

Verification never raises on what a message or DNS holds: a bad signature or
key record becomes a result with a reason (see :mod:`.result`). What does
raise is setting up a signer with a key or an option we refuse to use, which
is an operator's mistake to report at start-up, not at the first message.
"""

from __future__ import annotations

from mailwright.errors import MailwrightError


class DkimError(MailwrightError):
    """Root of the errors the DKIM package raises on purpose."""


class SignerConfigError(DkimError, ValueError):
    """A :class:`~.sign.Signer` was asked for something we will not do.

    Examples: rsa-sha1 (RFC 8301 §3.1), an RSA key under 1024 bits (RFC 8301
    §3.2), a key that does not match the algorithm, a domain or selector that
    is not a DNS name. The message names the offending value.
    """


class KeyLoadError(SignerConfigError):
    """A private key could not be read: not PEM, not a raw Ed25519 seed, wrong password."""
