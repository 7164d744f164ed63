"""Tests for the Received header and hop counting (RFC 5321 §4.4, §6.3)."""

from __future__ import annotations

import email

from mailwright.trace import count_received, received_header


def test_received_header_names_client_server_protocol_and_recipient() -> None:
    """The header carries from, by, with, id and for clauses and parses as one header."""
    header = received_header(
        helo="client.example",
        client_ip="192.0.2.7",
        hostname="mx.example.test",
        protocol="ESMTPS",
        queue_id="ABC123",
        recipient="b@example.test",
        when=0.0,
    )

    parsed = email.message_from_bytes(header + b"\r\nbody\r\n")
    value = " ".join(parsed["Received"].split())
    assert value.startswith("from client.example ([192.0.2.7]) by mx.example.test (mailwright)")
    assert "with ESMTPS id ABC123 for <b@example.test>;" in value
    assert value.endswith("1 Jan 1970 00:00:00 -0000")
    assert header.endswith(b"\r\n")


def test_received_header_marks_ipv6_and_strips_hostile_helo() -> None:
    """An IPv6 peer is written IPv6:...; CR, LF and spaces in HELO cannot break the header."""
    header = received_header(
        helo="evil\r\nBcc: x@y",
        client_ip="2001:db8::1",
        hostname="mx.test",
        protocol="ESMTP",
        queue_id=None,
        recipient=None,
        when=0.0,
    )

    assert b"[IPv6:2001:db8::1]" in header
    assert b"\r\nBcc" not in header
    assert header.count(b"\r\n") == 4


def test_count_received_counts_only_the_header_section() -> None:
    """Received lines in the body do not count towards the hop limit."""
    content = b"Received: a\r\nreceived: b\r\nSubject: x\r\n\r\nReceived: in body\r\n"

    assert count_received(content) == 2
