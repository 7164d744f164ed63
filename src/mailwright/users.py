"""Submission credentials: user names and scrypt password hashes in one file.

The file holds one ``name:hash`` per line (blank lines and ``#`` comments are
allowed). A hash reads ``$scrypt$n=16384,r=8,p=1$SALT$KEY`` with SALT and KEY
in unpadded base64, so the cost parameters travel with each hash and can be
raised later without invalidating older ones. scrypt (RFC 7914) is memory-hard,
which makes offline guessing of a stolen file expensive; it is in hashlib, so
no dependency is needed.

Writers (the ``mailwright user`` commands) hold an exclusive ``flock`` on a
sidecar ``.lock`` file, write a temporary file with mode 0600 in the same
folder and rename it over the old one, so the server never reads a half
written file. The server's :class:`UserStore` re-reads the file whenever its
modification time, size or inode changed, so a user added while it runs can
log in at once.

:meth:`UserStore.verify` costs tens of milliseconds of CPU by design; the
server calls it through ``asyncio.to_thread``. It is thread-safe.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mailwright.errors import UserStoreError

# Letters, digits and . _ @ + - (so e-mail addresses work as names); no ':' (the
# field separator), no spaces or control characters (RFC 4616 §2 authcid is any
# UTF-8, but names in a line-based file and in logs must stay plain).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")

_HASH = re.compile(r"^\$scrypt\$n=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$")

SALT_BYTES = 16
KEY_BYTES = 32


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost parameters (RFC 7914 §2): CPU/memory cost ``n``, block size ``r``, ``p``."""

    n: int = 16384
    r: int = 8
    p: int = 1

    @property
    def maxmem(self) -> int:
        """Memory scrypt needs (128 * r * n, plus slack), passed to hashlib."""
        return 128 * self.r * self.n * (self.p + 1) + (1 << 20)


def validate_name(name: str) -> str:
    """Return ``name`` when it is a valid user name, else raise :class:`UserStoreError`."""
    if not _NAME.fullmatch(name):
        raise UserStoreError(
            f"invalid user name {name!r}: use 1 to 128 letters, digits and . _ @ + - "
            "starting with a letter or digit"
        )
    return name


def hash_password(password: str, params: ScryptParams | None = None) -> str:
    """A ``$scrypt$...`` string for ``password`` with a fresh random salt."""
    params = params or ScryptParams()
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, params)
    return f"$scrypt$n={params.n},r={params.r},p={params.p}${_b64(salt)}${_b64(key)}"


def check_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches ``encoded``; the comparison takes constant time.

    A malformed hash never matches. Raises nothing.
    """
    match = _HASH.fullmatch(encoded)
    if match is None:
        return False
    params = ScryptParams(int(match[1]), int(match[2]), int(match[3]))
    try:
        salt = _unb64(match[4])
        expected = _unb64(match[5])
        key = _derive(password, salt, params, len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(key, expected)


def _derive(password: str, salt: bytes, params: ScryptParams, length: int = KEY_BYTES) -> bytes:
    # TODO: passwords are compared as given (UTF-8), without SASLprep (RFC 4013);
    # a user typing a differently composed accent on another device would fail.
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=params.n,
        r=params.r,
        p=params.p,
        maxmem=params.maxmem,
        dklen=length,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


class UserStore:
    """The credential file at ``path``; a missing file is an empty store.

    ``params`` sets the scrypt cost of hashes written from now on (tests use a
    low ``n``); existing hashes keep their own parameters.
    """

    def __init__(self, path: str | os.PathLike[str], params: ScryptParams | None = None) -> None:
        self.path = Path(path)
        self.params = params or ScryptParams()
        self._lock = threading.Lock()
        self._users: dict[str, str] = {}
        self._signature: tuple[int, int, int] | None = None
        self._decoy: str | None = None

    # -- reading ----------------------------------------------------------------

    def names(self) -> list[str]:
        """All user names, sorted. Raises :class:`UserStoreError` for a corrupt file."""
        return sorted(self._current())

    def __contains__(self, name: object) -> bool:
        return name in self._current()

    def verify(self, name: str, password: str) -> bool:
        """True when ``name`` exists and ``password`` is its password.

        CPU-heavy (scrypt) and thread-safe: call it through ``asyncio.to_thread``.
        Raises :class:`UserStoreError` only when the file cannot be read.
        """
        encoded = self._current().get(name)
        if encoded is None:
            # An unknown name costs as much as a known one: no user enumeration by timing.
            if self._decoy is None:
                self._decoy = hash_password(secrets.token_hex(8), self.params)
            check_password(password, self._decoy)
            return False
        return check_password(password, encoded)

    def _current(self) -> dict[str, str]:
        """The users, re-read when the file changed since the last read."""
        with self._lock:
            signature = self._stat()
            if signature != self._signature:
                self._users = self._read() if signature is not None else {}
                self._signature = signature
            return self._users

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise UserStoreError(f"{self.path}: cannot read: {error.strerror}") from error
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read(self) -> dict[str, str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as error:
            raise UserStoreError(f"{self.path}: cannot read: {error}") from error
        return parse_users(text, str(self.path))

    # -- writing ----------------------------------------------------------------

    def add(self, name: str, password: str) -> None:
        """Add a user. Raises :class:`UserStoreError` if the name is invalid or taken."""
        validate_name(name)
        _check_password_text(password)
        encoded = hash_password(password, self.params)
        with self._editing() as users:
            if name in users:
                raise UserStoreError(f"user {name!r} already exists")
            users[name] = encoded

    def set_password(self, name: str, password: str) -> None:
        """Replace a user's password. Raises :class:`UserStoreError` if there is no such user."""
        _check_password_text(password)
        encoded = hash_password(password, self.params)
        with self._editing() as users:
            if name not in users:
                raise UserStoreError(f"no user {name!r}")
            users[name] = encoded

    def delete(self, name: str) -> None:
        """Remove a user. Raises :class:`UserStoreError` if there is no such user."""
        with self._editing() as users:
            if name not in users:
                raise UserStoreError(f"no user {name!r}")
            del users[name]

    @contextlib.contextmanager
    def _editing(self) -> Iterator[dict[str, str]]:
        """Lock the file against other writers, yield its users, write them back."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            users = dict(self._read())
            yield users
            self._write(users)
        finally:
            os.close(fd)  # closing releases the lock

    def _write(self, users: dict[str, str]) -> None:
        text = "".join(f"{name}:{encoded}\n" for name, encoded in sorted(users.items()))
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        _fsync_dir(self.path.parent)


def parse_users(text: str, source: str = "<users>") -> dict[str, str]:
    """Parse the file format; raises :class:`UserStoreError` naming the line at fault."""
    users: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, encoded = line.partition(":")
        if not colon or not _NAME.fullmatch(name) or not _HASH.fullmatch(encoded):
            raise UserStoreError(f"{source}:{number}: expected NAME:$scrypt$... ")
        if name in users:
            raise UserStoreError(f"{source}:{number}: user {name!r} appears twice")
        users[name] = encoded
    return users


def _check_password_text(password: str) -> None:
    if not password:
        raise UserStoreError("the password is empty")
    if "\n" in password or "\r" in password or "\0" in password:
        raise UserStoreError("the password holds a line break or NUL")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
