"""Which accepted messages the server signs, and with which keys (server/signing.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mailwright.auth.dkim import Signature, SignerConfigError, parse_signature
from mailwright.auth.message import parse_message
from mailwright.config import DkimConfig, DkimSignConfig
from mailwright.envelope import Envelope, Recipient
from mailwright.server.signing import OutboundSigning


def _key(path: Path) -> Path:
    key = ed25519.Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _config(
    tmp_path: Path, *domains: str, internal: tuple[str, ...] = ("10.0.0.0/8",)
) -> DkimConfig:
    entries = tuple(
        DkimSignConfig(domain, f"s{index}", _key(tmp_path / f"{index}.key"), "ed25519")
        for index, domain in enumerate(domains)
    )
    return DkimConfig(sign=entries, internal_hosts=internal)


def _envelope(client_ip: str = "10.1.2.3", auth_user: str | None = None) -> Envelope:
    return Envelope(
        "a@example.test", [Recipient("b@else.test")], client_ip=client_ip, auth_user=auth_user
    )


def _message(from_value: str = "a@example.test") -> bytes:
    return f"From: {from_value}\r\nSubject: hi\r\n\r\nbody\r\n".encode()


def _signed_domains(fields: bytes) -> list[tuple[str, str]]:
    message = parse_message(fields + b"\r\n")
    found = []
    for field in message.fields("DKIM-Signature"):
        signature = parse_signature(field.value)
        assert isinstance(signature, Signature), signature
        found.append((signature.domain, signature.selector))
    return found


def test_internal_host_mail_is_signed_with_every_entry_of_its_domain(tmp_path: Path) -> None:
    """Two entries for the From domain give two fields, in configuration order."""
    signing = OutboundSigning(_config(tmp_path, "example.test", "example.test", "other.test"))

    fields = signing.signatures(_envelope(), _message())

    assert _signed_domains(fields) == [("example.test", "s0"), ("example.test", "s1")]
    assert signing.signed == 1


def test_a_subdomain_author_uses_the_nearest_parent_with_entries(tmp_path: Path) -> None:
    """news.example.test has no entry of its own: example.test signs; an exact entry wins."""
    signing = OutboundSigning(_config(tmp_path, "example.test", "deep.news.example.test"))

    parent = signing.signatures(_envelope(), _message("x@news.example.test"))
    exact = signing.signatures(_envelope(), _message("x@deep.news.example.test"))

    assert _signed_domains(parent) == [("example.test", "s0")]
    assert _signed_domains(exact) == [("deep.news.example.test", "s1")]


@pytest.mark.parametrize(
    ("envelope", "signed"),
    [
        (_envelope("10.9.9.9"), True),
        (_envelope("192.0.2.1"), False),
        (_envelope("192.0.2.1", auth_user="alice"), True),
        (_envelope(""), False),
        (_envelope("not-an-ip"), False),
    ],
)
def test_only_internal_or_authenticated_clients_are_signed(
    tmp_path: Path, envelope: Envelope, signed: bool
) -> None:
    """Mail from outside the internal networks is never signed unless the client logged in."""
    signing = OutboundSigning(_config(tmp_path, "example.test"))

    assert bool(signing.signatures(envelope, _message())) is signed


@pytest.mark.parametrize(
    "from_value",
    [
        "a@unrelated.test",
        "a@example.test, b@other.test",
        "undisclosed-recipients:;",
        "a@notexample.test",
    ],
)
def test_no_single_author_in_a_signed_domain_means_no_signature(
    tmp_path: Path, from_value: str
) -> None:
    """Another domain, authors in two domains, none, or a look-alike suffix: no signature."""
    signing = OutboundSigning(_config(tmp_path, "example.test"))

    assert signing.signatures(_envelope(), _message(from_value)) == b""


def test_several_authors_of_one_domain_are_signed(tmp_path: Path) -> None:
    """From with two addresses in the signed domain has one Author Domain: it is signed."""
    signing = OutboundSigning(_config(tmp_path, "example.test"))
    content = _message("a@example.test, B <b@Example.Test>")

    assert _signed_domains(signing.signatures(_envelope(), content)) == [("example.test", "s0")]


def test_two_from_fields_are_not_signed(tmp_path: Path) -> None:
    """A message with two From fields is malformed (RFC 5322 §3.6): no signature."""
    signing = OutboundSigning(_config(tmp_path, "example.test"))
    content = b"From: a@example.test\r\nFrom: a@example.test\r\n\r\nbody\r\n"

    assert signing.signatures(_envelope(), content) == b""


def test_reload_swaps_keys_and_a_failed_reload_keeps_the_old_ones(tmp_path: Path) -> None:
    """A new table takes over whole; a key that fails to load leaves the old table in use."""
    signing = OutboundSigning(_config(tmp_path, "example.test"))
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    signing.reload(_config(fresh, "other.test"))

    assert signing.signatures(_envelope(), _message()) == b""
    assert _signed_domains(signing.signatures(_envelope(), _message("a@other.test"))) == [
        ("other.test", "s0")
    ]

    broken = tmp_path / "broken.key"
    broken.write_text("junk")
    bad = DkimConfig.__new__(DkimConfig)  # skip the config's own check, as a raced file would
    object.__setattr__(bad, "sign", (_unchecked_entry(broken),))
    object.__setattr__(bad, "internal_hosts", ("10.0.0.0/8",))
    with pytest.raises(SignerConfigError):
        signing.reload(bad)
    assert signing.signatures(_envelope(), _message("a@other.test")) != b""


def _unchecked_entry(key: Path) -> DkimSignConfig:
    entry = DkimSignConfig.__new__(DkimSignConfig)
    for name, value in (
        ("domain", "example.test"),
        ("selector", "s9"),
        ("key", key),
        ("algorithm", "ed25519"),
        ("expire", None),
    ):
        object.__setattr__(entry, name, value)
    return entry


def test_no_entries_means_disabled(tmp_path: Path) -> None:
    """Without [[dkim.sign]] the server skips signing altogether."""
    signing = OutboundSigning(DkimConfig())

    assert not signing.enabled
    assert signing.signatures(_envelope(), _message()) == b""
