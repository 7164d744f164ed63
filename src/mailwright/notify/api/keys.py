"""API keys: how they are made, stored and checked.

A key reads ``mw_<id>_<secret>``: the id (32 hex digits, chosen by the
store) finds the stored key in one indexed lookup, and the secret (32
URL-safe characters, 192 bits from :mod:`secrets`) proves it. Only the
SHA-256 of the secret is stored, so a stolen database holds no usable key; a
plain hash suffices because the secret is random and long, unlike a password,
so no slow key-derivation function is needed. The full key is shown once,
when it is created.

Checking a key costs one store lookup; :class:`KeyCache` keeps successful
lookups for a few seconds, so a client sending many requests costs one lookup
per window. The secret is compared on every request (in constant time),
cached or not; the cache only saves the lookup. A revoked key therefore keeps
working for at most the cache's lifetime.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable

from mailwright.notify.errors import StoreError, Unauthorized
from mailwright.notify.store.base import ApiKey, NotifyStore

PREFIX = "mw"
SECRET_BYTES = 24  # 32 characters of URL-safe base64

# The id never holds "_"; the secret (URL-safe base64) may.
_KEY = re.compile(r"mw_([0-9A-Za-z-]{1,64})_([A-Za-z0-9_-]{32})")


def hash_secret(secret: str) -> str:
    """The stored form of a key's secret: SHA-256, hex."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def format_key(key_id: str, secret: str) -> str:
    """The full key as the client sends it: ``mw_<id>_<secret>``."""
    return f"{PREFIX}_{key_id}_{secret}"


async def create_key(store: NotifyStore, name: str, now: float) -> tuple[ApiKey, str]:
    """Create and store a key named ``name``; the key and its full text, shown once.

    Raises :class:`StoreError` when the store hands out an id that cannot be
    part of a key (it must not contain ``_``).
    """
    secret = secrets.token_urlsafe(SECRET_BYTES)
    key = await store.create_api_key(name, hash_secret(secret), now)

    full = format_key(key.id, secret)
    if _KEY.fullmatch(full) is None:
        raise StoreError(f"the store gave API key {name!r} the unusable id {key.id!r}")
    return key, full


class KeyCache:
    """Keys found recently, by id, with their secret hashes; entries live ``ttl`` seconds.

    Only successful lookups are kept, so the cache holds at most one entry per
    live key; ``size`` bounds it anyway.
    """

    def __init__(
        self, ttl: float = 5.0, size: int = 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._entries: dict[str, tuple[float, ApiKey, str]] = {}

    def get(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The cached key and hash, or None when absent or stale."""
        entry = self._entries.get(key_id)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self._entries[key_id]
            return None
        return entry[1], entry[2]

    def put(self, key: ApiKey, secret_hash: str) -> None:
        """Remember a key found in the store, evicting the oldest entry when full."""
        if len(self._entries) >= self.size and key.id not in self._entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key.id] = (self.clock() + self.ttl, key, secret_hash)

    def forget(self, key_id: str) -> None:
        """Drop a key, so that revoking it through this process takes effect at once."""
        self._entries.pop(key_id, None)


def bearer_token(header_value: str | None) -> str:
    """The credentials of an ``Authorization: Bearer …`` header (RFC 6750 §2.1).

    Raises :class:`Unauthorized` for a missing header or another scheme.
    """
    if not header_value:
        raise Unauthorized("this request needs an API key: Authorization: Bearer KEY")

    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be: Bearer KEY")
    return token.strip()


async def authenticate(
    store: NotifyStore, header_value: str | None, *, cache: KeyCache | None = None
) -> ApiKey:
    """The live key an ``Authorization`` header value presents.

    Raises :class:`Unauthorized` when the header is missing or not a bearer
    token, the key is malformed, unknown or revoked, or the secret is wrong;
    the message never says which part of a well-formed key was wrong.
    """
    match = _KEY.fullmatch(bearer_token(header_value))
    if match is None:
        raise Unauthorized("the API key is malformed: it reads mw_<id>_<secret>")
    key_id, secret = match.groups()

    found = cache.get(key_id) if cache is not None else None
    if found is None:
        found = await store.api_key(key_id)
        if found is not None and cache is not None and found[0].revoked_at is None:
            cache.put(*found)

    # Hash even for an unknown id, so that timing tells unknown ids from wrong secrets less.
    presented = hash_secret(secret)
    key, stored = found if found is not None else (None, "0" * 64)
    if key is None or not hmac.compare_digest(presented, stored) or key.revoked_at is not None:
        raise Unauthorized("the API key is not valid")
    return key
