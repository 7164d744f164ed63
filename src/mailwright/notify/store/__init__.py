"""The notification store: where recipients, consent, preferences and notifications live.

:func:`open_store` picks the backend from the configured URL; the interface
is :class:`~mailwright.notify.store.base.NotifyStore`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from mailwright.notify.errors import StoreError
from mailwright.notify.store.base import NotifyStore

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(.*)$", re.DOTALL)

_FORMS = "sqlite:///abs/path.db, sqlite:relative/path.db, a path, or postgresql://…"


def open_store(url: str, *, clock: Callable[[], float] = time.time) -> NotifyStore:
    """The store a URL names, not yet opened (call ``await store.open()``).

    Accepted: ``sqlite:///abs/path.db``, ``sqlite:relative/path.db``, a bare
    path (SQLite), and ``postgresql://…`` or ``postgres://…`` (libpq URLs).
    Raises :class:`~mailwright.notify.errors.StoreError` for anything else,
    naming the URL.
    """
    text = url.strip()
    if not text:
        raise StoreError(f"empty notification store URL: use {_FORMS}")

    match = _SCHEME.match(text)
    scheme = match.group(1).lower() if match else ""
    rest = match.group(2) if match else text

    if scheme in ("postgresql", "postgres"):
        if not rest.startswith("//"):
            raise StoreError(f"bad notification store URL {url!r}: use postgresql://HOST/DB")
        from mailwright.notify.store.postgres import PostgresStore

        return PostgresStore(text, clock=clock)

    if scheme == "sqlite":
        path = _sqlite_path(url, rest)
    elif match and rest.startswith("//"):
        raise StoreError(f"unsupported notification store URL {url!r}: use {_FORMS}")
    else:
        path = text

    from mailwright.notify.store.sqlite import SqliteStore

    return SqliteStore(path, clock=clock)


def _sqlite_path(url: str, rest: str) -> str:
    """The file of a ``sqlite:`` URL: ``///abs`` is absolute, no slashes is relative."""
    if rest.startswith("///"):
        path = rest[2:]
    elif rest.startswith("//"):
        raise StoreError(
            f"bad notification store URL {url!r}: sqlite:// takes no host;"
            " use sqlite:///abs/path.db or sqlite:relative/path.db"
        )
    else:
        path = rest
    if not path or path.endswith("/"):
        raise StoreError(f"bad notification store URL {url!r}: it names no file")
    return path


__all__ = ["NotifyStore", "StoreError", "open_store"]
