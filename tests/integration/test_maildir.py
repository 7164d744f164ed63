"""Maildir delivery on a real file system."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from mailwright.delivery import maildir as maildir_module
from mailwright.delivery.maildir import MailboxNameError, MaildirDelivery, mailbox_path
from mailwright.envelope import Envelope, Recipient
from mailwright.smtp import replies

pytestmark = pytest.mark.integration

CONTENT = b"From: alice@example.test\r\nSubject: Hi\r\n\r\nHello \xe9\r\n"


def envelope(*addresses: str) -> Envelope:
    """Alice's envelope to ``addresses``."""
    return Envelope("alice@example.test", [Recipient(a) for a in addresses])


def delivered(maildir: Path) -> list[bytes]:
    """The contents of the files in ``maildir/new``."""
    return [path.read_bytes() for path in sorted((maildir / "new").iterdir())]


def everything_under(path: Path) -> list[Path]:
    """Every file and directory below ``path``."""
    return list(path.rglob("*"))


async def test_message_lands_in_new_with_return_path_and_delivered_to(tmp_path: Path) -> None:
    """Each recipient gets a file in DOMAIN/LOCAL/new starting with the two trace headers."""
    agent = MaildirDelivery(tmp_path, hostname="mx.example.test")

    results = await agent.deliver(envelope("bob@Local.Test", "carol@local.test"), CONTENT)

    assert results == [replies.MAILDIR_DELIVERED, replies.MAILDIR_DELIVERED]
    assert delivered(tmp_path / "local.test" / "bob") == [
        b"Return-Path: <alice@example.test>\r\nDelivered-To: bob@Local.Test\r\n" + CONTENT
    ]
    assert delivered(tmp_path / "local.test" / "carol")[0].endswith(CONTENT)
    assert {p.name for p in (tmp_path / "local.test" / "bob").iterdir()} == {"tmp", "new", "cur"}
    assert list((tmp_path / "local.test" / "bob" / "tmp").iterdir()) == []


async def test_null_sender_gets_an_empty_return_path(tmp_path: Path) -> None:
    """A bounce (sender <>) is stored with Return-Path: <>."""
    agent = MaildirDelivery(tmp_path, hostname="mx.example.test")

    await agent.deliver(Envelope("", [Recipient("bob@local.test")]), CONTENT)

    assert delivered(tmp_path / "local.test" / "bob")[0].startswith(b"Return-Path: <>\r\n")


async def test_file_names_are_unique_and_carry_the_size(tmp_path: Path) -> None:
    """Repeated deliveries make distinct files whose names end in ,S=SIZE."""
    agent = MaildirDelivery(tmp_path, hostname="mx/odd:host")

    for _ in range(5):
        await agent.deliver(envelope("bob@local.test"), CONTENT)

    names = [p.name for p in (tmp_path / "local.test" / "bob" / "new").iterdir()]
    size = (tmp_path / "local.test" / "bob" / "new" / names[0]).stat().st_size
    assert len(set(names)) == 5
    assert all(name.endswith(f",S={size}") for name in names)
    assert all("/" not in name and ":" not in name and "\\057" in name for name in names)


async def test_only_the_chosen_recipients_are_delivered(tmp_path: Path) -> None:
    """An explicit recipient list overrides the envelope's recipients."""
    agent = MaildirDelivery(tmp_path, hostname="mx.example.test")
    env = envelope("bob@local.test", "carol@local.test")

    results = await agent.deliver(env, CONTENT, [env.recipients[1]])

    assert results == [replies.MAILDIR_DELIVERED]
    assert not (tmp_path / "local.test" / "bob").exists()


@pytest.mark.parametrize(
    "address",
    [
        "../escape@local.test",
        "..@local.test",
        ".@local.test",
        ".hidden@local.test",
        "a/b@local.test",
        "a\\b@local.test",
        "nul\x00@local.test",
        "tab\tline@local.test",
        "bob@../../etc",
        "bob@sub/dir",
        "@local.test",
        "nodomain",
        "x" * 256 + "@local.test",
    ],
)
async def test_local_part_cannot_escape_the_base_directory(tmp_path: Path, address: str) -> None:
    """Path traversal regression: unusable names get 550 5.1.1 and nothing is written."""
    base = tmp_path / "mail"
    agent = MaildirDelivery(base, hostname="mx.example.test")

    results = await agent.deliver(envelope(address), CONTENT)

    assert results == [replies.MAILBOX_UNUSABLE]
    assert everything_under(tmp_path) in ([], [base])


def test_mailbox_path_keeps_local_part_case_and_lowers_domain(tmp_path: Path) -> None:
    """Local parts are case-sensitive (RFC 5321 §2.4); domains are not."""
    assert (
        mailbox_path(tmp_path, "Bob.Smith@Example.TEST") == tmp_path / "example.test" / "Bob.Smith"
    )
    with pytest.raises(MailboxNameError, match="escape"):
        mailbox_path(tmp_path, "../escape@example.test")


async def test_disk_full_is_452_431_and_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC while writing answers 452 4.3.1 and removes the file from tmp."""

    def full(fd: int, buffers: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "writev", full)
    agent = MaildirDelivery(tmp_path, hostname="mx.example.test")

    results = await agent.deliver(envelope("bob@local.test"), CONTENT)

    assert results == [replies.MAILDIR_DISK_FULL]
    assert list((tmp_path / "local.test" / "bob" / "tmp").iterdir()) == []
    assert list((tmp_path / "local.test" / "bob" / "new").iterdir()) == []


async def test_unwritable_maildir_is_a_transient_local_error(tmp_path: Path) -> None:
    """A file where the domain directory should be gives 451 4.3.0, others still delivered."""
    (tmp_path / "broken.test").write_text("not a directory")
    agent = MaildirDelivery(tmp_path, hostname="mx.example.test")

    results = await agent.deliver(envelope("bob@broken.test", "bob@local.test"), CONTENT)

    assert results == [replies.MAILDIR_LOCAL_ERROR, replies.MAILDIR_DELIVERED]


async def test_large_message_is_written_whole(tmp_path: Path) -> None:
    """A multi-megabyte message arrives complete (writev resumes after partial writes)."""
    big = b"Subject: big\r\n\r\n" + b"0123456789abcdef" * 300_000
    agent = MaildirDelivery(tmp_path, hostname="mx.example.test", fsync=False)

    await agent.deliver(envelope("bob@local.test"), big)

    assert delivered(tmp_path / "local.test" / "bob")[0].endswith(big)


def test_write_all_resumes_after_partial_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """_write_all keeps writing when writev accepts only a few octets at a time."""
    written = bytearray()

    def slow_writev(fd: int, buffers: list[memoryview]) -> int:
        first = bytes(buffers[0][:3])
        written.extend(first)
        return len(first)

    monkeypatch.setattr(os, "writev", slow_writev)

    maildir_module._write_all(0, b"Header: x\r\n", b"", b"body\r\n")

    assert bytes(written) == b"Header: x\r\nbody\r\n"
