"""Local delivery into Maildir folders.

Layout: mail for ``LOCAL@DOMAIN`` under a ``maildir:BASE`` route goes to the
Maildir ``BASE/DOMAIN/LOCAL/`` with its ``tmp``, ``new`` and ``cur``
subdirectories, created on first delivery (mode 0700). DOMAIN is lower-cased;
LOCAL keeps its case (RFC 5321 §2.4: local parts are case-sensitive), so
``Bob@`` and ``bob@`` are different mailboxes. A local part or domain that
could leave BASE or hide itself (empty, ``.``/``..``, starting with a dot,
holding ``/``, ``\\``, NUL or control characters, longer than 255 octets) is
refused with 550 5.1.1: a recipient address never names a path.

The Maildir protocol (as qmail defined it) makes delivery safe without locks:
each message is written under a unique name in ``tmp/``, fsync'd, then
renamed into ``new/``; readers only look in ``new/`` and ``cur/``, so they
never see a partial file. We fsync ``new/`` after the rename, so a delivery
reported with 250 survives a power cut. Unique names are
``SECONDS.MMICROSECONDSPpidQcounterRrandom.HOST,S=SIZE`` (the ``,S=`` size
is the Maildir++ convention quota tools read).

Each copy begins with ``Return-Path: <sender>`` and ``Delivered-To:
recipient`` (RFC 5321 §4.4: the final delivery adds Return-Path), written
with the content in one ``writev`` so the content is never copied.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import os
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from mailwright.envelope import Envelope, Recipient
from mailwright.smtp import replies
from mailwright.smtp.replies import Reply

log = logging.getLogger("mailwright.delivery")

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_SUBDIRS = ("tmp", "new", "cur")
_NAME_MAX = 255


class MailboxNameError(ValueError):
    """A recipient address cannot name a Maildir (it would escape the base or hide)."""


def mailbox_path(base: Path, address: str) -> Path:
    """The Maildir of ``address`` under ``base``: ``base/DOMAIN/LOCAL``.

    Raises :class:`MailboxNameError` naming the address when the local part
    or the domain is unusable as a directory name (see the module docstring).
    """
    local, at, domain = address.rpartition("@")
    if not at:
        raise MailboxNameError(f"{address!r} has no domain")
    local_dir = _safe_component(address, local)
    domain_dir = _safe_component(address, domain.lower())

    path = base / domain_dir / local_dir
    # Defence in depth: the checks above already keep us inside base.
    if os.path.commonpath([base, path]) != str(base):
        raise MailboxNameError(f"{address!r} leaves the maildir base")
    return path


class MaildirDelivery:
    """Delivers messages into Maildirs under ``base``.

    ``hostname`` goes into the unique file names; ``fsync`` may be turned off
    for benchmarks only (a crash could then lose mail we reported delivered).
    """

    def __init__(
        self,
        base: str | Path,
        *,
        hostname: str,
        fsync: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base = Path(os.path.abspath(base))
        self.hostname = hostname.replace("/", "\\057").replace(":", "\\072") or "localhost"
        self.fsync = fsync
        self._clock = clock
        self._counter = itertools.count(1)
        self._pid = os.getpid()

    async def deliver(
        self, envelope: Envelope, content: bytes, recipients: Sequence[Recipient] | None = None
    ) -> list[Reply]:
        """Deliver ``content`` to each recipient (default: all of the envelope's).

        Returns one reply per recipient, in order: 250 2.0.0 delivered, 550
        5.1.1 for an unusable mailbox name, 452 4.3.1 when the disk or quota
        is full, 451 4.3.0 for other local errors. Never raises for a
        recipient's failure. The disk work runs in a worker thread.
        """
        targets = list(envelope.recipients if recipients is None else recipients)
        return await asyncio.to_thread(self.deliver_blocking, envelope.sender, content, targets)

    def deliver_blocking(
        self, sender: str, content: bytes, recipients: Sequence[Recipient]
    ) -> list[Reply]:
        """The blocking body of :meth:`deliver`: one Maildir write per recipient."""
        return_path = _header_value(sender)
        results: list[Reply] = []
        for recipient in recipients:
            results.append(self._deliver_one(return_path, content, recipient))
        return results

    def _deliver_one(self, return_path: str, content: bytes, recipient: Recipient) -> Reply:
        try:
            maildir = mailbox_path(self.base, recipient.address)
        except MailboxNameError as exc:
            log.warning("delivery.maildir.refused recipient=%r reason=%s", recipient.address, exc)
            return replies.MAILBOX_UNUSABLE

        prefix = (
            f"Return-Path: <{return_path}>\r\nDelivered-To: {recipient.address}\r\n"
        ).encode()
        try:
            name = self._write(maildir, prefix, content)
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                log.error("delivery.maildir.disk_full maildir=%s error=%s", maildir, exc)
                return replies.MAILDIR_DISK_FULL
            log.error("delivery.maildir.failed maildir=%s error=%s", maildir, exc)
            return replies.MAILDIR_LOCAL_ERROR

        log.debug("delivery.maildir.delivered recipient=%s file=%s", recipient.address, name)
        return replies.MAILDIR_DELIVERED

    def _write(self, maildir: Path, prefix: bytes, content: bytes) -> str:
        """Write one message with the Maildir protocol; returns its file name."""
        name = self._unique_name(len(prefix) + len(content))
        tmp_path = maildir / "tmp" / name
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(tmp_path, flags, 0o600)
        except FileNotFoundError:
            self._create(maildir)
            fd = os.open(tmp_path, flags, 0o600)

        try:
            try:
                _write_all(fd, prefix, content)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp_path, maildir / "new" / name)
        except BaseException:
            _unlink_quietly(tmp_path)
            raise

        if self.fsync:
            _fsync_directory(maildir / "new")
        return name

    def _create(self, maildir: Path) -> None:
        """Create the Maildir and make the new directory entries durable."""
        missing = [parent for parent in (maildir.parent, maildir) if not parent.exists()]
        for sub in _SUBDIRS:
            os.makedirs(maildir / sub, mode=0o700, exist_ok=True)
        if self.fsync:
            for directory in (*missing, maildir):
                _fsync_directory(directory.parent)
            _fsync_directory(maildir)

    def _unique_name(self, size: int) -> str:
        now = self._clock()
        seconds = int(now)
        micros = int((now - seconds) * 1_000_000)
        serial = next(self._counter)
        random = secrets.token_hex(4)
        return f"{seconds}.M{micros}P{self._pid}Q{serial}R{random}.{self.hostname},S={size}"


def _safe_component(address: str, part: str) -> str:
    """``part`` if it is safe as one directory name, else MailboxNameError."""
    if not part or part in (".", "..") or part.startswith("."):
        raise MailboxNameError(f"{address!r}: {part!r} cannot name a mailbox")
    if "/" in part or "\\" in part or any(ord(char) < 0x20 or char == "\x7f" for char in part):
        raise MailboxNameError(f"{address!r}: {part!r} holds a path separator or control")
    if len(part.encode("utf-8", "surrogateescape")) > _NAME_MAX:
        raise MailboxNameError(f"{address!r}: {part!r} is longer than {_NAME_MAX} octets")
    return part


def _header_value(text: str) -> str:
    """``text`` safe inside a header line: CR and LF removed."""
    return text.replace("\r", "").replace("\n", "")


def _write_all(fd: int, *chunks: bytes) -> None:
    """Write every chunk with ``writev``, resuming after partial writes."""
    views = [memoryview(chunk) for chunk in chunks if chunk]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
