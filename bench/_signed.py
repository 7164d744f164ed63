"""The key of the relay benchmark with signing, and the check that what arrived is signed.

Both relays sign with the same rsa-2048 key, written once per benchmark run (PKCS#1 PEM,
mode 0600, readable by mailwright's loader and by OpenDKIM). After a run the sink's dump
(`smtp-sink -D`) is read message by message: every message must carry a DKIM-Signature
field by `sender.test`, and a sample spread over the run is verified cryptographically
with mailwright's verifier against the public key, so a relay that passes mail through
unsigned, or signs it wrongly, fails the run loudly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailwright.auth.dkim import Outcome, format_key_record, verify
from mailwright.dns.mx import LookupStatus
from mailwright.dns.queries import Answer, Query, run_sync

DOMAIN = "sender.test"
SELECTOR = "bench"
KEY_NAME = f"{SELECTOR}._domainkey.{DOMAIN}"
_RECORD_START = b"X-Client-Addr: "


@dataclass
class SigningKey:
    """The private key file both relays sign with, and its published record."""

    path: Path
    record: str


@dataclass
class SignatureCheck:
    """What the dump held: messages, how many were signed, how many of a sample verified."""

    messages: int
    signed: int
    sampled: int
    verified: int
    failures: list[str]

    def problem(self, expected: int) -> str:
        """Why the run's signing is not as required, or '' when every message is signed."""
        if self.messages != expected:
            return f"sink dump holds {self.messages} messages, expected {expected}"
        if self.signed != self.messages:
            return f"only {self.signed} of {self.messages} messages carry a DKIM-Signature"
        if self.verified != self.sampled:
            shown = "; ".join(self.failures[:3])
            return f"{self.sampled - self.verified} of {self.sampled} signatures fail: {shown}"
        return ""


def write_key(folder: Path) -> SigningKey:
    """A fresh rsa-2048 key in `folder`/dkim.key (mode 0600) and its TXT record."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = folder / "dkim.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return SigningKey(path, format_key_record(key))


def check_dump(dump: Path, key: SigningKey, sample: int = 50) -> SignatureCheck:
    """Count the signed messages in an `smtp-sink -D` dump and verify about `sample` of them."""
    answer = Answer(
        Query.of(KEY_NAME, "TXT"), LookupStatus.ANSWER, (key.record.encode(),), ttl=3600.0
    )
    messages = split_dump(dump)
    signed = sum(1 for message in messages if _has_signature(message))
    step = max(1, len(messages) // sample) if messages else 1
    chosen = messages[::step][:sample]
    failures: list[str] = []
    now = time.time()
    for raw in chosen:
        content = without_sink_fields(raw).replace(b"\n", b"\r\n")
        results = run_sync(verify(content, now=now), lambda query: answer)
        passing = [r for r in results if r.result is Outcome.PASS and r.domain == DOMAIN]
        if not passing:
            failures.append(", ".join(f"{r.result}: {r.reason}" for r in results) or "unsigned")
    verified = len(chosen) - len(failures)
    return SignatureCheck(len(messages), signed, len(chosen), verified, failures)


def split_dump(dump: Path) -> list[bytes]:
    """The dump's records, one per message (each starts with the sink's X-Client-Addr)."""
    try:
        data = dump.read_bytes()
    except FileNotFoundError:
        return []
    parts = data.split(b"\n" + _RECORD_START)
    if not parts[0].startswith(_RECORD_START):
        return []
    parts[0] = parts[0][len(_RECORD_START) :]
    return [_RECORD_START + part for part in parts]


def _header(raw: bytes) -> bytes:
    return raw.split(b"\n\n", 1)[0]


def _has_signature(raw: bytes) -> bool:
    return any(line[:15].lower() == b"dkim-signature:" for line in _header(raw).split(b"\n"))


def without_sink_fields(raw: bytes) -> bytes:
    """The message as the relay sent it: the sink's own X- fields at the top removed."""
    lines = raw.split(b"\n")
    start = 0
    while start < len(lines) and lines[start].startswith(b"X-") and b":" in lines[start]:
        start += 1
    return b"\n".join(lines[start:])
