"""Sealed link tokens: opaque, tamper-proof, expiring claims that travel in URLs.

Every link mailwright puts in a message (one-click unsubscribe, the
preference centre, the mailto unsubscribe subject, the automatic-digest
revert) carries a token instead of a session. The recipient needs no cookie
and no login, so the token alone must prove that mailwright wrote it, for
which purpose, and until when.

Why encryption and not just a signature: an HMAC-signed token would show the
recipient id and address to anyone who sees the URL (mail gateways, link
scanners, logs of web proxies). AES-256-GCM gives both: the claims are
unreadable, and any change to the token fails the tag check. The purpose
(``"unsubscribe"``, ``"preferences"``, ...) is the associated data, so a token
sealed for one purpose never opens for another, although the purpose itself
is not written into the token.

Layout, before unpadded urlsafe base64 (RFC 4648 §5)::

    version (1 octet) | nonce (12) | AES-GCM( expiry (8, big-endian s) | JSON claims ) | tag (16)

The version octet is also in the associated data; it leaves room for key
rotation. The claims are compact JSON, so a typical unsubscribe token
(recipient, category, address, channel) stays well under 200 characters.
Nonces are random: at 96 bits, 2^32 tokens under one key keep the collision
risk far below 2^-32 (NIST SP 800-38D §8.3).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import re
import secrets
import struct
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mailwright.notify.errors import InvalidToken, NotifyError

log = logging.getLogger(__name__)

Claim = str | int | float | bool

#: Octets of an AES-256 key.
KEY_BYTES = 32

#: Tokens longer than this are refused before any decoding (they come from URLs).
MAX_TOKEN_CHARS = 1024

_VERSION = 1
_NONCE_BYTES = 12
_TAG_BYTES = 16
_EXPIRY = struct.Struct(">Q")
_SMALLEST = 1 + _NONCE_BYTES + _EXPIRY.size + _TAG_BYTES
_URLSAFE = re.compile(r"[A-Za-z0-9_-]*")


class ExpiredToken(InvalidToken):
    """A genuine token whose lifetime has run out (the page may offer a fresh link)."""


class TokenKeyError(NotifyError):
    """The token key file cannot be created or read, or holds a key of the wrong size."""


# TODO: one key only; replacing it invalidates every link already sent.
# Rotation would keep old keys for opening, selected by the version octet.
class TokenBox:
    """Seals and opens link tokens with one AES-256-GCM key.

    Raises :class:`TokenKeyError` when ``key`` is not 32 octets.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise TokenKeyError(f"a token key has {KEY_BYTES} octets, not {len(key)}")
        self._aead = AESGCM(key)

    @classmethod
    def from_file(cls, path: Path) -> TokenBox:
        """The box whose key is in ``path``, creating a random key there if it is missing.

        The key is written to a temporary file (mode 0600) in the same
        directory, synced, and linked into place with ``link(2)``, which fails
        when the name exists: a reader never sees a half-written key, and when
        two processes start together both end up with the one that was linked
        first. Raises :class:`TokenKeyError` naming the file when it cannot be
        read or created or does not hold exactly 32 octets.
        """
        try:
            return cls._read(path)
        except FileNotFoundError:
            pass

        _create_key_file(path)
        try:
            return cls._read(path)
        except FileNotFoundError as exc:
            raise TokenKeyError(f"token key file {path} vanished after it was created") from exc

    @classmethod
    def _read(cls, path: Path) -> TokenBox:
        """Load the key in ``path``; FileNotFoundError passes through for the caller."""
        try:
            key = path.read_bytes()
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise TokenKeyError(f"token key file {path} cannot be read: {exc}") from exc

        if len(key) != KEY_BYTES:
            raise TokenKeyError(
                f"token key file {path} holds {len(key)} octets, not {KEY_BYTES}: "
                "restore it from a backup or remove it to make a new key "
                "(which invalidates every link already sent)"
            )
        if mode & 0o077:
            log.warning("notify.tokens.key_readable path=%s mode=%o", path, mode & 0o777)
        return cls(key)

    def seal(self, purpose: str, claims: dict[str, Claim], *, now: float, ttl: float) -> str:
        """A token holding ``claims`` for ``purpose``, valid for ``ttl`` seconds from ``now``.

        Raises ValueError for a claim that is not a string, number or boolean,
        a non-positive ``ttl``, or claims too large for a token of
        :data:`MAX_TOKEN_CHARS`.
        """
        if ttl <= 0:
            raise ValueError(f"ttl={ttl} is not a positive duration")
        for name, value in claims.items():
            if not isinstance(name, str) or not isinstance(value, str | int | float):
                raise ValueError(f"claim {name!r} is not a string, number or boolean")

        expiry = _EXPIRY.pack(int(now + ttl))
        payload = expiry + json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
        nonce = secrets.token_bytes(_NONCE_BYTES)
        head = bytes([_VERSION])
        sealed = self._aead.encrypt(nonce, payload, head + purpose.encode())

        token = base64.urlsafe_b64encode(head + nonce + sealed).rstrip(b"=").decode("ascii")
        if len(token) > MAX_TOKEN_CHARS:
            raise ValueError(f"claims make a token of {len(token)} characters, too long for a URL")
        return token

    def open(self, purpose: str, token: str, *, now: float) -> dict[str, Claim]:
        """The claims of ``token`` if it was sealed with this key for ``purpose`` and is live.

        Raises :class:`~mailwright.notify.errors.InvalidToken` (or its
        subclass :class:`ExpiredToken`), with a detail saying whether the
        token was too long, not base64, truncated, did not verify (forged,
        damaged, another purpose or another key: deliberately not told
        apart), or expired.
        """
        raw = _decode(token)
        if raw[0] != _VERSION:
            raise InvalidToken("the token does not verify")

        head, nonce, sealed = raw[:1], raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES :]
        try:
            payload = self._aead.decrypt(nonce, sealed, head + purpose.encode())
        except InvalidTag:
            raise InvalidToken("the token does not verify") from None

        (expiry,) = _EXPIRY.unpack_from(payload)
        if now >= expiry:
            raise ExpiredToken("the link has expired")
        claims = json.loads(payload[_EXPIRY.size :])
        if not isinstance(claims, dict):  # only a key holder could seal this
            raise InvalidToken("the token does not verify")
        return claims


def _decode(token: str) -> bytes:
    """The octets of an unpadded urlsafe base64 token, checked for length and alphabet."""
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidToken(f"the token is longer than {MAX_TOKEN_CHARS} characters")
    if not _URLSAFE.fullmatch(token) or len(token) % 4 == 1:
        raise InvalidToken("the token is not urlsafe base64")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("the token is not urlsafe base64") from None
    if len(raw) < _SMALLEST:
        raise InvalidToken("the token is truncated")
    return raw


def _create_key_file(path: Path) -> None:
    """Write a fresh random key to ``path`` unless another process got there first."""
    try:
        fd, temporary = tempfile.mkstemp(prefix=".tokenkey-", dir=path.parent)
    except OSError as exc:
        raise TokenKeyError(f"token key file {path} cannot be created: {exc}") from exc

    try:
        with os.fdopen(fd, "wb") as file:
            file.write(secrets.token_bytes(KEY_BYTES))
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return  # another process linked its key first: use that one
        except OSError as exc:
            raise TokenKeyError(f"token key file {path} cannot be created: {exc}") from exc
        _sync_directory(path.parent)
        log.info("notify.tokens.key_created path=%s", path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _sync_directory(directory: Path) -> None:
    """Make the new directory entry durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
