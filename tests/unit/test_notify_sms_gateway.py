"""The SMPP gateway's pure parts: the SMSC URL and SMPP addressing (notify.sms.gateway)."""

from __future__ import annotations

import pytest

from mailwright.notify.sms.errors import InvalidAddress, InvalidSmscUrl
from mailwright.notify.sms.gateway import (
    SmscAddress,
    destination_address,
    parse_url,
    source_address,
)


def test_a_full_url_gives_host_port_and_credentials() -> None:
    """USER and PASSWORD are percent-decoded; str() leaves the password out."""
    address = parse_url("smpp://esme%2D1:p%40ss@smsc.example.net:2776")

    assert address == SmscAddress("smsc.example.net", 2776, "esme-1", "p@ss")
    assert str(address) == "smsc.example.net:2776"


def test_the_port_defaults_to_2775() -> None:
    """SMPP's registered port is used when the URL names none."""
    assert parse_url("smpp://esme:pw@smsc.example.net").port == 2775


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("smpps://esme:pw@smsc.example.net:3550", "smpps .* not supported"),
        ("http://esme:pw@smsc.example.net", "scheme must be smpp"),
        ("smpp://smsc.example.net:2775", "no USER"),
        ("smpp://esme:pw@:2775", "no host"),
        ("smpp://esme:pw@smsc.example.net:99999", "port"),
        ("smpp://esme:pw@smsc.example.net:2775/path", "nothing may follow"),
        ("smpp://a-sixteen-octets:pw@smsc.example.net", "longer than 15 octets"),
        ("smpp://esme:ninechars@smsc.example.net", "PASSWORD is longer than 8"),
    ],
)
def test_a_bad_url_is_refused_naming_what_is_wrong(url: str, message: str) -> None:
    """Each mistake raises InvalidSmscUrl (a ValueError) saying what to fix."""
    with pytest.raises(InvalidSmscUrl, match=message):
        parse_url(url)


def test_error_messages_never_show_the_password() -> None:
    """The URL in an error has its password replaced."""
    with pytest.raises(ValueError, match=r"smpps://esme:\*\*\*@") as caught:
        parse_url("smpps://esme:hunter2@smsc.example.net")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("sender", "expected"),
    [
        ("+447700900123", (1, 1, "447700900123")),
        ("12345", (0, 0, "12345")),
        ("Mailwright", (5, 0, "Mailwright")),
    ],
)
def test_senders_get_their_type_of_number(sender: str, expected: tuple[int, int, str]) -> None:
    """E.164 is international/ISDN, a short code unknown, letters alphanumeric."""
    assert source_address(sender) == expected


@pytest.mark.parametrize("sender", ["", "A sender too long", "Ωmega😀"])
def test_a_sender_smpp_cannot_carry_is_refused(sender: str) -> None:
    """Empty, over 11 characters, or outside GSM-7 raises InvalidAddress."""
    with pytest.raises(InvalidAddress):
        source_address(sender)


def test_destinations_must_be_e164() -> None:
    """A destination is + and up to 15 digits; anything else raises InvalidAddress."""
    assert destination_address("+15551234567") == (1, 1, "15551234567")
    for bad in ("15551234567", "+0123", "+1234567890123456", "+1 555 123"):
        with pytest.raises(InvalidAddress, match=r"E\.164"):
            destination_address(bad)
