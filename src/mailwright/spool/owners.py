"""Who has claimed work: owner tokens backed by lock files, for crash recovery.

Every open :class:`~mailwright.spool.Spool` is an *owner*: a random token and
a file ``owners/<token>.lock`` on which it holds an exclusive ``flock`` for as
long as it is open. Recipients it claims are marked active with its token.

Recovery asks the kernel rather than a clock: when an owner's lock file can
be locked by someone else, its process is gone (``flock`` locks die with the
process, even on ``kill -9``), and its active recipients go straight back to
the queue. An owner that is alive, say the delivery process while the
reception process opens the same spool, keeps its claims. No lease timeout to
tune, and no window in which a slow but live delivery is done twice.

Only local file systems are supported: ``flock`` over NFS is not reliable,
and neither is SQLite's WAL there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from pathlib import Path

OWNERS_DIR = "owners"


def _lock_path(directory: Path, token: str) -> Path:
    return directory / OWNERS_DIR / f"{token}.lock"


class OwnerLock:
    """This process's token and the lock that proves it alive."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.token = f"{os.getpid()}-{secrets.token_hex(6)}"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Create the lock file and hold its lock. Raises :class:`OSError`."""
        folder = self.directory / OWNERS_DIR
        folder.mkdir(exist_ok=True)

        # Lock under a temporary name, then rename: nobody ever sees the file unlocked
        # and mistakes this live owner for a dead one.
        temporary = folder / f".{self.token}.tmp"
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(temporary, _lock_path(self.directory, self.token))
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file and drop the lock."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            _lock_path(self.directory, self.token).unlink()
        os.close(self._fd)
        self._fd = None


class DeadOwner:
    """A dead owner's lock, held while its claims are released.

    Use as a context manager; on exit the lock file is removed and closed.
    """

    def __init__(self, directory: Path, token: str, fd: int | None) -> None:
        self.directory = directory
        self.token = token
        self._fd = fd

    def __enter__(self) -> DeadOwner:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(FileNotFoundError):
            _lock_path(self.directory, self.token).unlink()
        if self._fd is not None:
            os.close(self._fd)


def find_dead(directory: Path, token: str) -> DeadOwner | None:
    """Return a :class:`DeadOwner` when ``token``'s process is gone, else None.

    An owner without a lock file is dead too: the file exists, locked, from
    before the owner's first claim until it has released its claims.
    """
    path = _lock_path(directory, token)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return DeadOwner(directory, token, None)

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return DeadOwner(directory, token, fd)


def remove_stale_locks(directory: Path, keep: str) -> int:
    """Delete lock files of dead owners other than ``keep``; return how many."""
    removed = 0
    folder = directory / OWNERS_DIR
    if not folder.is_dir():
        return 0
    for path in folder.glob("*.lock"):
        token = path.name.removesuffix(".lock")
        if token == keep:
            continue
        dead = find_dead(directory, token)
        if dead is not None:
            with dead:
                removed += 1
    return removed
