"""Notification messages as bytes: headers, folding, MIME parts, unsubscribe fields, DKIM."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from functools import cache
from urllib.parse import parse_qs, unquote, urlsplit

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailwright.auth.dkim import DEFAULT_HEADERS, Signer, format_key_record
from mailwright.notify.email import (
    HeaderError,
    build_message,
    mailto_uri,
    token_from_mailto_subject,
)
from mailwright.notify.render import RenderedEmail

NOW = 1_700_000_000.0
TOKEN = "AQxY-z_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_" * 2
HTTPS = f"https://prefs.example.com/v1/unsubscribe/{TOKEN}"
MAILTO = f"mailto:unsubscribe@example.com?subject=unsubscribe%20{TOKEN}"
RENDERED = RenderedEmail(
    subject="Your weekly newsletter",
    text="Hello,\nthis week's news.\n",
    html="<html><body><p>Hello, this week's news.</p></body></html>",
)


def build(**changes: object) -> bytes:
    """A commercial message with both unsubscribe URIs, with some arguments changed."""
    arguments: dict[str, object] = {
        "from_addr": "News <news@example.com>",
        "to": "reader@example.org",
        "rendered": RENDERED,
        "message_id": "n-1.1700000000@example.com",
        "now": NOW,
        "list_id": "newsletter.example.com",
        "unsubscribe_https": HTTPS,
        "unsubscribe_mailto": MAILTO,
    }
    arguments.update(changes)
    return build_message(**arguments)  # type: ignore[arg-type]


def parse(message: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def header_block(message: bytes) -> bytes:
    return message.split(b"\r\n\r\n", 1)[0] + b"\r\n"


# -- the whole message ----------------------------------------------------------------


def test_message_parses_back_with_every_field() -> None:
    """The message parses with the stdlib and carries every field it should."""
    parsed = parse(build())

    assert parsed["Date"] == "Tue, 14 Nov 2023 22:13:20 +0000"
    assert parsed["From"] == "News <news@example.com>"
    assert parsed["To"] == "reader@example.org"
    assert parsed["Subject"] == "Your weekly newsletter"
    assert parsed["Message-ID"] == "<n-1.1700000000@example.com>"
    assert parsed["MIME-Version"] == "1.0"
    assert parsed["List-Id"] == "<newsletter.example.com>"
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed.defects == []


def test_parts_are_text_then_html_in_utf8() -> None:
    """The alternatives come text first, then HTML, and decode to what was rendered."""
    parsed = parse(build())

    parts = list(parsed.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in parts)
    text = parts[0].get_content()
    assert isinstance(text, str)
    assert text.replace("\r\n", "\n") == RENDERED.text
    assert "<p>Hello, this week's news.</p>" in parts[1].get_content()


def test_text_only_message_is_a_single_part() -> None:
    """Without HTML the message is text/plain itself, with no multipart wrapper."""
    rendered = RenderedEmail(subject="Code", text="Your code is 123456\n", html=None)

    parsed = parse(
        build(rendered=rendered, list_id=None, unsubscribe_https=None, unsubscribe_mailto=None)
    )

    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content().replace("\r\n", "\n") == "Your code is 123456\n"
    for field in ("List-Id", "List-Unsubscribe", "List-Unsubscribe-Post"):
        assert parsed[field] is None


def test_every_line_ends_in_crlf_and_fits_998_octets() -> None:
    """No bare LF or CR, no line over 998 octets, even with long URIs and subjects."""
    long = RenderedEmail(subject="word " * 100, text=("x" * 3000 + "\n") * 3, html="<p>" * 500)

    message = build(rendered=long)

    assert b"\n" not in message.replace(b"\r\n", b"")
    assert b"\r" not in message.replace(b"\r\n", b"")
    assert max(len(line) for line in message.split(b"\r\n")) <= 998
    assert message.endswith(b"\r\n")


def test_header_lines_aim_at_78_characters() -> None:
    """Folded fields keep their lines within 78 characters where white space allows."""
    message = build(rendered=RenderedEmail("word " * 60, "x", None))

    subject = re.search(rb"^Subject:.*?\r\n(?! )", message, re.MULTILINE | re.DOTALL)
    assert subject is not None
    assert all(len(line) <= 78 for line in subject.group(0).split(b"\r\n"))
    assert parse(message)["Subject"] == ("word " * 60).strip()


# -- the subject and addresses --------------------------------------------------------


def test_non_ascii_subject_is_encoded_and_decodes_back() -> None:
    """A non-ASCII subject is written as RFC 2047 encoded words and reads back unchanged."""
    subject = "Grüße aus Köln — Ihre Benachrichtigungen für heute " * 3

    message = build(rendered=RenderedEmail(subject, "x", None))

    assert header_block(message).isascii()
    assert b"=?utf-8?" in header_block(message)
    assert parse(message)["Subject"] == subject.strip()


def test_subject_that_looks_encoded_is_kept_literally() -> None:
    """Text that looks like an encoded word is encoded itself, so it reads back as written."""
    subject = "About =?utf-8?q?this?= syntax"

    assert parse(build(rendered=RenderedEmail(subject, "x", None)))["Subject"] == subject


def test_display_names_and_domains_are_encoded() -> None:
    """A non-ASCII display name becomes an encoded word and a non-ASCII domain IDNA."""
    message = build(from_addr="Jürgen Müller <news@exämple.com>", to='"Doe, Ann" <a@example.org>')

    parsed = parse(message)
    assert header_block(message).isascii()
    assert parsed["From"] == "Jürgen Müller <news@xn--exmple-cua.com>"
    assert parsed["To"] == '"Doe, Ann" <a@example.org>'


def test_long_non_ascii_display_name_is_folded_into_short_words() -> None:
    """A long UTF-8 display name becomes several encoded words on lines of at most 78."""
    name = "Jürgen Müller von und zu Irgendwo, Benachrichtigungen der Gemeinde Köln-Süd"

    message = build(from_addr=f'"{name}" <news@example.com>')

    field = re.search(rb"^From:.*?\r\n(?! )", message, re.MULTILINE | re.DOTALL)
    assert field is not None
    assert all(len(line) <= 78 for line in field.group(0).split(b"\r\n"))
    assert parse(message)["From"].addresses[0].display_name == name


@pytest.mark.parametrize(
    "to",
    [
        "reader@example.org\r\nBcc: everyone@example.org",
        "reader@example.org\nBcc: everyone@example.org",
        "a@example.org, b@example.org",
        "not an address",
        "jürgen@example.org",
    ],
)
def test_unusable_recipients_are_refused(to: str) -> None:
    """Header injection, several addresses, no address or a UTF-8 local part are refused."""
    with pytest.raises(HeaderError):
        build(to=to)


def test_message_id_gets_brackets_and_must_be_well_formed() -> None:
    """A bare message id is bracketed; one with spaces or no @ is refused."""
    assert parse(build(message_id="<a@b>"))["Message-ID"] == "<a@b>"
    with pytest.raises(HeaderError):
        build(message_id="a b@c")
    with pytest.raises(HeaderError):
        build(message_id="no-at-sign")


def test_list_id_with_a_phrase_is_kept() -> None:
    """A list id given with its phrase is written as given."""
    parsed = parse(build(list_id="Weekly news <newsletter.example.com>"))

    assert parsed["List-Id"] == "Weekly news <newsletter.example.com>"


# -- List-Unsubscribe -----------------------------------------------------------------


def test_list_unsubscribe_is_one_logical_field_with_both_uris() -> None:
    """Both URIs sit in one List-Unsubscribe field, HTTPS first, with the one-click field."""
    message = build()

    parsed = parse(message)
    assert parsed.get_all("List-Unsubscribe") == [f"<{HTTPS}>, <{MAILTO}>"]
    assert parsed.get_all("List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]
    assert message.count(b"List-Unsubscribe:") == 1


def test_only_mailto_means_no_one_click_field() -> None:
    """Without an HTTPS URI there is no List-Unsubscribe-Post (RFC 8058 §3.1)."""
    parsed = parse(build(unsubscribe_https=None))

    assert parsed["List-Unsubscribe"] == f"<{MAILTO}>"
    assert parsed["List-Unsubscribe-Post"] is None


def test_plain_http_is_allowed_for_local_setups() -> None:
    """An http:// one-click URI (a laptop's loopback links) is written with its Post field."""
    parsed = parse(build(unsubscribe_https="http://127.0.0.1:8025/u/T"))

    assert parsed["List-Unsubscribe"] == f"<http://127.0.0.1:8025/u/T>, <{MAILTO}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_only_https_still_gets_one_click() -> None:
    """An HTTPS URI alone gives List-Unsubscribe and List-Unsubscribe-Post."""
    parsed = parse(build(unsubscribe_mailto=None))

    assert parsed["List-Unsubscribe"] == f"<{HTTPS}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


@pytest.mark.parametrize(
    ("https", "mailto"),
    [
        ("ftp://prefs.example.com/u/x", None),
        ("https://prefs.example.com/u/x y", None),
        ("https://prefs.example.com/u/x>, <https://evil", None),
        (None, "https://not-mailto.example"),
        (None, "mailto:a@example.com\r\nBcc: x"),
    ],
)
def test_bad_unsubscribe_uris_are_refused(https: str | None, mailto: str | None) -> None:
    """A one-click URI not on HTTP(S), spaces, brackets or line breaks in a URI are refused."""
    with pytest.raises(HeaderError):
        build(unsubscribe_https=https, unsubscribe_mailto=mailto)


# -- extra header fields --------------------------------------------------------------


def test_extra_headers_are_written() -> None:
    """Extra fields appear as given, non-ASCII values as encoded words."""
    parsed = parse(build(extra_headers=[("X-Notification", "n-1"), ("X-Note", "Grüße")]))

    assert parsed["X-Notification"] == "n-1"
    assert parsed["X-Note"] == "Grüße"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Subject", "again"),
        ("list-unsubscribe", "<https://evil>"),
        ("X-A", "a\r\nBcc: x"),
        ("Bad Name", "x"),
        ("X:Y", "x"),
    ],
)
def test_bad_extra_headers_are_refused(name: str, value: str) -> None:
    """Repeating our fields, line breaks and invalid field names are refused."""
    with pytest.raises(HeaderError):
        build(extra_headers=[(name, value)])


# -- body encodings -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Plain ASCII text.\nTwo lines.\n", "7bit"),
        ("Grüße, und ein schönes Wochenende!\n", "quoted-printable"),
        ("x" * 1200 + "\n", "quoted-printable"),
        ("Привет! Ваши уведомления за сегодня.\n", "base64"),
        ("日本語のお知らせです。\n", "base64"),
    ],
)
def test_body_encoding_fits_the_text(text: str, encoding: str) -> None:
    """Short ASCII goes 7bit, mostly-Latin QP, other scripts base64; all decode back."""
    parsed = parse(build(rendered=RenderedEmail("s", text, None)))

    assert parsed["Content-Transfer-Encoding"] == encoding
    assert parsed.get_content().replace("\r\n", "\n") == text


# -- mailto -----------------------------------------------------------------------------


def test_mailto_uri_carries_the_token_in_the_subject() -> None:
    """The mailto URI percent-encodes the subject and parses back to the token."""
    uri = mailto_uri("unsubscribe@example.com", TOKEN)

    assert uri == MAILTO
    parts = urlsplit(uri)
    assert parts.scheme == "mailto"
    assert parts.path == "unsubscribe@example.com"
    subject = parse_qs(parts.query)["subject"][0]
    assert token_from_mailto_subject(subject) == TOKEN


def test_mailto_uri_encodes_what_rfc_6068_reserves() -> None:
    """'%', '?', '#', ',', '&' and '=' in the address are percent-encoded; '+' is not."""
    uri = mailto_uri("odd%?#,&=+name@example.com", "T")

    to = uri.removeprefix("mailto:").split("?subject=")[0]
    assert to == "odd%25%3F%23%2C%26%3D+name@example.com"
    assert unquote(to) == "odd%?#,&=+name@example.com"


@pytest.mark.parametrize(
    ("subject", "token"),
    [
        (f"unsubscribe {TOKEN}", TOKEN),
        (f"Re: UNSUBSCRIBE   {TOKEN}", TOKEN),
        (f"unsubscribe%20{TOKEN}", TOKEN),
        ("=?utf-8?q?unsubscribe_abcdefghij-KLMNOPQRST=5F123?=", "abcdefghij-KLMNOPQRST_123"),
        (
            "=?utf-8?b?dW5zdWJzY3JpYmUgYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo=?=",
            "abcdefghijklmnopqrstuvwxyz",
        ),
        ("Please unsubscribe me", None),
        ("Hello", None),
        ("", None),
    ],
)
def test_token_is_found_in_received_subjects(subject: str, token: str | None) -> None:
    """The token is read from the subject as clients send it, prefixed or encoded."""
    assert token_from_mailto_subject(subject) == token


# -- DKIM -------------------------------------------------------------------------------


@cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pkcs1_pem() -> bytes:
    return rsa_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def dns(name: bytes, timeout: int = 5) -> bytes | None:
    """The key record of sel._domainkey.example.com, as dkimpy's DNS hook returns it."""
    if name.decode().rstrip(".") == "sel._domainkey.example.com":
        return format_key_record(rsa_key()).encode("ascii")
    return None


def signed_fields(signature: bytes) -> list[str]:
    tags = b"".join(signature.split()).decode()
    found = re.search(r"(?:^|;)h=([^;]*)", tags.removeprefix("DKIM-Signature:"))
    assert found is not None
    return found.group(1).lower().split(":")


def test_dkimpy_signature_over_the_unsubscribe_fields_verifies() -> None:
    """dkimpy signs the message including both List-Unsubscribe fields, and it verifies."""
    message = build()
    include = [
        b"from",
        b"to",
        b"subject",
        b"date",
        b"message-id",
        b"list-id",
        b"list-unsubscribe",
        b"list-unsubscribe-post",
        b"mime-version",
        b"content-type",
    ]

    signature = dkim.sign(message, b"sel", b"example.com", pkcs1_pem(), include_headers=include)

    assert {"list-unsubscribe", "list-unsubscribe-post"} <= set(signed_fields(signature))
    assert dkim.verify(signature + message, dnsfunc=dns)


def test_our_signer_covers_the_unsubscribe_fields() -> None:
    """mailwright's signer puts both List-Unsubscribe fields in h=, and dkimpy verifies it."""
    message = build()
    signer = Signer(domain="example.com", selector="sel", key=rsa_key(), clock=lambda: NOW)

    signature = signer.sign(message)

    assert "list-unsubscribe" in DEFAULT_HEADERS
    assert "list-unsubscribe-post" in DEFAULT_HEADERS
    fields = signed_fields(signature)
    assert {"list-unsubscribe", "list-unsubscribe-post", "list-id", "subject"} <= set(fields)
    assert dkim.verify(signature + message, dnsfunc=dns)


def test_changed_unsubscribe_uri_breaks_the_signature() -> None:
    """Swapping the one-click URI after signing makes verification fail: it is covered."""
    message = build()
    signature = Signer(domain="example.com", selector="sel", key=rsa_key()).sign(message)

    tampered = message.replace(HTTPS.encode(), HTTPS.replace("prefs", "evil").encode())

    assert tampered != message
    assert not dkim.verify(signature + tampered, dnsfunc=dns)
