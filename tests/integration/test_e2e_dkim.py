"""End to end: ``mailwright serve`` DKIM-signs outbound mail, and dkimpy verifies it.

Mail goes in over SMTP from loopback (an internal host by default) and out to
Postfix's smtp-sink; the signatures on what smtp-sink received are verified
by dkimpy, the reference implementation, against the published key records.
SIGHUP reloads the keys: the selector rotation an operator does without a
restart.
"""

from __future__ import annotations

import re
import signal
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from tests.peers import MailwrightProcess, SmtpSink, free_port, running

from mailwright.auth.dkim import PrivateKey, format_key_record

pytestmark = [pytest.mark.integration, pytest.mark.postfix]

DOMAIN = "sender.test"


def _write_key(path: Path, key: PrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


class Keys:
    """Generated keys by selector, and dkimpy's DNS lookup that publishes them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.keys: dict[str, PrivateKey] = {}

    def add(self, selector: str, key: PrivateKey) -> Path:
        self.keys[selector] = key
        return _write_key(self.folder / f"{selector}.key", key)

    def dnsfunc(self, name: bytes, timeout: int = 5) -> bytes | None:
        for selector, key in self.keys.items():
            if name.rstrip(b".") == f"{selector}._domainkey.{DOMAIN}".encode():
                return format_key_record(key).encode("ascii")
        return None


def _config(sink_port: int, inbound: int, signing: str) -> str:
    return f"""
[server]
hostname = "mx.mailwright.test"
spool = "var/spool"
receivers = 1

[[listener]]
role = "inbound"
address = "127.0.0.1:{inbound}"

[domains]
relay = ["example.test"]

[routes]
"example.test" = "smtp://127.0.0.1:{sink_port}"

[queue]
retry_intervals = ["1s"]

{signing}
"""


def _sign_entries(*entries: tuple[str, str, Path]) -> str:
    return "\n".join(
        f'[[dkim.sign]]\ndomain = "{DOMAIN}"\nselector = "{selector}"\n'
        f'key = "{path}"\nalgorithm = "{algorithm}"\n'
        for selector, algorithm, path in entries
    )


def _message(subject: str, author: str = f"a@{DOMAIN}") -> bytes:
    return (
        f"From: Alice <{author}>\r\nTo: b@example.test\r\nSubject: {subject}\r\n"
        f"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
        f"Message-ID: <{subject}@{DOMAIN}>\r\n\r\nHello,\r\n\r\nthis is signed.\r\n"
    ).encode()


def _send(port: int, message: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        assert client.sendmail(f"a@{DOMAIN}", ["b@example.test"], message) == {}


def _crlf(content: bytes) -> bytes:
    """smtp-sink dumps LF line ends; DKIM is computed on CRLF."""
    return re.sub(rb"\r?\n", b"\r\n", content)


def _selectors(content: bytes) -> list[str]:
    """The s= of each DKIM-Signature field, top first."""
    found = []
    for field in _signature_fields(content):
        match = re.search(rb"(?:^|[;\s])s=([^;\s]+)", field.split(b":", 1)[1])
        assert match is not None, field
        found.append(match[1].decode())
    return found


def _signature_fields(content: bytes) -> list[bytes]:
    header = content.split(b"\r\n\r\n", 1)[0]
    fields = re.split(rb"\r\n(?![ \t])", header)
    return [field for field in fields if field.lower().startswith(b"dkim-signature:")]


def _verify_all(content: bytes, keys: Keys) -> list[bool]:
    """dkimpy's verdict for each DKIM-Signature field, top first."""
    count = len(_signature_fields(content))
    checker = dkim.DKIM(content)
    return [checker.verify(idx=index, dnsfunc=keys.dnsfunc) for index in range(count)]


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SmtpSink]:
    with SmtpSink(tmp_path) as running_sink:
        yield running_sink


def test_internal_mail_leaves_with_an_rsa_and_an_ed25519_signature_dkimpy_verifies(
    tmp_path: Path, sink: SmtpSink
) -> None:
    """Two entries for the From domain give two signatures; both verify, d= is the domain."""
    keys = Keys(tmp_path)
    rsa_key = keys.add("r2026", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    ed_key = keys.add("e2026", ed25519.Ed25519PrivateKey.generate())
    inbound = free_port()
    signing = _sign_entries(("r2026", "rsa", rsa_key), ("e2026", "ed25519", ed_key))
    process = MailwrightProcess(tmp_path, _config(sink.port, inbound, signing))

    with running(process, ("127.0.0.1", inbound)):
        _send(inbound, _message("signed1"))
        [got] = sink.wait_for(1)

    content = _crlf(got.content)
    fields = _signature_fields(content)
    assert len(fields) == 2
    assert all(re.search(rb"\bd=sender\.test;", field) for field in fields)
    assert sorted(_selectors(content)) == ["e2026", "r2026"]
    assert _verify_all(content, keys) == [True, True]
    # Signed headers: the author and subject are covered, so changing them breaks both.
    tampered = content.replace(b"Subject: signed1", b"Subject: signed2")
    assert _verify_all(tampered, keys) == [False, False]


def test_a_subdomain_author_is_signed_with_the_parent_domain_key(
    tmp_path: Path, sink: SmtpSink
) -> None:
    """From news.sender.test is signed with d=sender.test, which relaxed DMARC aligns."""
    keys = Keys(tmp_path)
    key = keys.add("r1", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    inbound = free_port()
    process = MailwrightProcess(
        tmp_path, _config(sink.port, inbound, _sign_entries(("r1", "rsa", key)))
    )

    with running(process, ("127.0.0.1", inbound)):
        _send(inbound, _message("sub1", author=f"news@news.{DOMAIN}"))
        [got] = sink.wait_for(1)

    content = _crlf(got.content)
    [field] = _signature_fields(content)
    assert re.search(rb"\bd=sender\.test;", field)
    assert _verify_all(content, keys) == [True]


def test_mail_from_outside_internal_hosts_is_not_signed(tmp_path: Path, sink: SmtpSink) -> None:
    """With no internal hosts, unauthenticated mail is relayed unsigned, even from our domain."""
    keys = Keys(tmp_path)
    key = keys.add("r1", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    inbound = free_port()
    signing = "[dkim]\ninternal_hosts = []\n\n" + _sign_entries(("r1", "rsa", key))
    process = MailwrightProcess(tmp_path, _config(sink.port, inbound, signing))

    with running(process, ("127.0.0.1", inbound)):
        _send(inbound, _message("forged1"))
        [got] = sink.wait_for(1)

    assert _signature_fields(_crlf(got.content)) == []
    assert b"Subject: forged1" in got.content


def _subject(content: bytes) -> bytes:
    match = re.search(rb"^Subject: (\w+)", content, re.M)
    assert match is not None
    return match[1]


def _wait_for_log(process: MailwrightProcess, text: str, count: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while process.log.read_text().count(text) < count:
        assert time.monotonic() < deadline, f"no {text!r} in {process.log.read_text()}"
        time.sleep(0.05)


def test_sighup_rotates_the_selector_without_a_restart(tmp_path: Path, sink: SmtpSink) -> None:
    """Rewrite the entry for a new selector, send SIGHUP: the next message uses the new key."""
    keys = Keys(tmp_path)
    old = keys.add("s1", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    new = keys.add("s2", ed25519.Ed25519PrivateKey.generate())
    inbound = free_port()
    process = MailwrightProcess(
        tmp_path, _config(sink.port, inbound, _sign_entries(("s1", "rsa", old)))
    )

    with running(process, ("127.0.0.1", inbound)):
        _send(inbound, _message("before"))
        sink.wait_for(1)
        process.config.write_text(
            _config(sink.port, inbound, _sign_entries(("s2", "ed25519", new)))
        )
        assert process.process is not None
        pid = process.process.pid
        process.process.send_signal(signal.SIGHUP)
        _wait_for_log(process, "dkim.reloaded", 1)
        _send(inbound, _message("after"))
        messages = sink.wait_for(2)
        assert process.process is not None
        assert process.process.pid == pid

    by_subject = {_subject(m.content): _crlf(m.content) for m in messages}
    assert _selectors(by_subject[b"before"]) == ["s1"]
    assert _selectors(by_subject[b"after"]) == ["s2"]
    assert _verify_all(by_subject[b"before"], keys) == [True]
    assert _verify_all(by_subject[b"after"], keys) == [True]


def test_sighup_with_a_broken_key_keeps_the_old_keys(tmp_path: Path, sink: SmtpSink) -> None:
    """A reload that fails is logged, and signing goes on with the keys in use."""
    keys = Keys(tmp_path)
    good = keys.add("s1", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    broken = tmp_path / "broken.key"
    broken.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    inbound = free_port()
    process = MailwrightProcess(
        tmp_path, _config(sink.port, inbound, _sign_entries(("s1", "rsa", good)))
    )

    with running(process, ("127.0.0.1", inbound)):
        process.config.write_text(
            _config(sink.port, inbound, _sign_entries(("s9", "rsa", broken)))
        )
        assert process.process is not None
        process.process.send_signal(signal.SIGHUP)
        _wait_for_log(process, "server.reload_failed", 1)
        _send(inbound, _message("still"))
        [got] = sink.wait_for(1)

    content = _crlf(got.content)
    assert _selectors(content) == ["s1"]
    assert _verify_all(content, keys) == [True]
    assert "broken.key" in process.log.read_text()
