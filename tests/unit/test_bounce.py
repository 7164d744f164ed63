"""RFC 3464 delivery status notifications built by mailwright.bounce, read back with email."""

from __future__ import annotations

import datetime as dt
import email
import email.message
import email.policy
import itertools
from typing import Any

import pytest

from mailwright.bounce import (
    Action,
    RecipientReport,
    build_dsn,
    decode_xtext,
    status_of,
    wants_notification,
)
from mailwright.envelope import Envelope, Recipient
from mailwright.smtp.replies import Reply

NOW = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
ARRIVAL = dt.datetime(2025, 2, 27, 9, 30, 0, tzinfo=dt.UTC)
ORIGINAL = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: bob@remote.test\r\n"
    b"Subject: Hello\r\n"
    b"Message-ID: <orig-1@example.test>\r\n"
    b"\r\n"
    b"Body line one.\r\n"
    b"Body line two.\r\n"
)
USER_UNKNOWN = Reply(550, "5.1.1", "User unknown")
MAILBOX_BUSY = Reply(451, "4.2.0", "Mailbox busy, try later")


def envelope(**fields: object) -> Envelope:
    """The original envelope: alice to bob, with overrides."""
    values: dict[str, object] = {
        "sender": "alice@example.test",
        "recipients": [Recipient("bob@remote.test")],
    }
    values.update(fields)
    return Envelope(**values)  # type: ignore[arg-type]


def report(
    action: Action = "failed",
    reply: Reply = USER_UNKNOWN,
    recipient: Recipient | None = None,
    **fields: object,
) -> RecipientReport:
    """One per-recipient report, bob's failure by default."""
    return RecipientReport(
        recipient=recipient or Recipient("bob@remote.test"),
        action=action,
        reply=reply,
        **fields,  # type: ignore[arg-type]
    )


def dsn(
    env: Envelope | None = None,
    reports: list[RecipientReport] | None = None,
    content: bytes = ORIGINAL,
    **options: object,
) -> tuple[Envelope, bytes] | None:
    """build_dsn with fixed clock, host and tokens."""
    counter = itertools.count(1)
    return build_dsn(
        env or envelope(),
        content,
        reporting_mta="mx.example.test",
        reports=reports or [report(remote_mta="mx.remote.test", last_attempt=NOW)],
        now=NOW,
        arrival=ARRIVAL,
        make_token=lambda: f"tok{next(counter)}",
        **options,  # type: ignore[arg-type]
    )


def parse(raw: bytes) -> email.message.Message:
    """The DSN parsed by the standard library, strictly."""
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def parts_of(message: email.message.Message) -> list[Any]:
    """The sub-parts of a multipart ``message``."""
    payload = message.get_payload()
    assert isinstance(payload, list)
    return payload


def status_blocks(message: email.message.Message) -> list[email.message.Message]:
    """The per-message block, then one block per recipient."""
    parts = message.get_payload()
    assert isinstance(parts, list)
    status = parts[1]
    assert status.get_content_type() in (
        "message/delivery-status",
        "message/global-delivery-status",
    )
    blocks = status.get_payload()
    assert isinstance(blocks, list)
    return blocks


def test_failed_dsn_has_every_rfc3464_field() -> None:
    """A failure DSN carries the headers, three parts and every delivery-status field."""
    result = dsn()
    assert result is not None
    bounce_envelope, raw = result

    message = parse(raw)
    per_message, per_recipient = status_blocks(message)

    assert bounce_envelope.sender == ""
    assert [r.address for r in bounce_envelope.recipients] == ["alice@example.test"]
    assert message["From"] == '"Mail Delivery System" <MAILER-DAEMON@mx.example.test>'
    assert message["To"] == "<alice@example.test>"
    assert message["Subject"] == "Undelivered Mail Returned to Sender"
    assert message["Date"] == "Sat, 01 Mar 2025 12:00:00 +0000"
    assert message["Message-ID"] == "<tok2@mx.example.test>"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"
    assert [part.get_content_type() for part in parts_of(message)] == [
        "text/plain",
        "message/delivery-status",
        "message/rfc822",
    ]
    assert per_message["Reporting-MTA"] == "dns; mx.example.test"
    assert per_message["Arrival-Date"] == "Thu, 27 Feb 2025 09:30:00 +0000"
    assert per_message["Original-Envelope-Id"] is None
    assert per_recipient["Final-Recipient"] == "rfc822; bob@remote.test"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert per_recipient["Remote-MTA"] == "dns; mx.remote.test"
    assert per_recipient["Diagnostic-Code"] == "smtp; 550 5.1.1 User unknown"
    assert per_recipient["Last-Attempt-Date"] == "Sat, 01 Mar 2025 12:00:00 +0000"
    assert per_recipient["Will-Retry-Until"] is None
    assert per_recipient["Original-Recipient"] is None


def test_human_readable_part_names_the_recipient_and_reply() -> None:
    """The text part tells who failed, which host answered and what it said."""
    result = dsn()
    assert result is not None

    text_part = parts_of(parse(result[1]))[0]
    text = text_part.get_payload(decode=True).decode("ascii")

    assert "mx.example.test" in text
    assert "<bob@remote.test>: failed" in text
    assert "host mx.remote.test said:" in text
    assert "550 5.1.1 User unknown" in text


def test_full_original_is_returned_byte_for_byte() -> None:
    """RET absent returns the whole message, unchanged, as message/rfc822."""
    result = dsn()
    assert result is not None

    returned = parts_of(parse(result[1]))[2]
    inner = returned.get_payload()[0]

    assert inner["Message-ID"] == "<orig-1@example.test>"
    assert ORIGINAL in result[1]


def test_ret_hdrs_returns_only_the_header() -> None:
    """RET=HDRS returns text/rfc822-headers without the body."""
    result = dsn(envelope(ret="HDRS"))
    assert result is not None

    returned = parts_of(parse(result[1]))[2]

    assert returned.get_content_type() == "text/rfc822-headers"
    assert "Subject: Hello" in returned.get_payload()
    assert b"Body line one" not in result[1]


def test_message_over_the_limit_returns_headers_with_a_note() -> None:
    """A message larger than the limit is returned as its header, and the text says so."""
    result = dsn(return_limit=50)
    assert result is not None

    parts = parts_of(parse(result[1]))

    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert "larger than 50 bytes" in parts[0].get_payload()
    assert b"Body line one" not in result[1]


def test_binary_original_returns_headers_only() -> None:
    """A BODY=BINARYMIME original is returned as its header, which is line-safe."""
    result = dsn(envelope(body="BINARYMIME"), content=ORIGINAL + b"\x00\x01")
    assert result is not None

    assert parts_of(parse(result[1]))[2].get_content_type() == "text/rfc822-headers"


def test_null_sender_never_gets_a_dsn() -> None:
    """A message from <> is never bounced: that would loop."""
    assert dsn(envelope(sender="")) is None


@pytest.mark.parametrize(
    ("notify", "action", "delay_warnings", "wanted"),
    [
        ((), "failed", True, True),
        ((), "delayed", True, True),
        ((), "delayed", False, False),
        ((), "delivered", True, False),
        (("NEVER",), "failed", True, False),
        (("NEVER",), "delayed", True, False),
        (("SUCCESS",), "failed", True, False),
        (("SUCCESS",), "delivered", True, True),
        (("SUCCESS",), "relayed", True, True),
        (("SUCCESS",), "expanded", True, True),
        (("DELAY",), "delayed", False, True),
        (("DELAY",), "failed", True, False),
        (("FAILURE",), "delayed", True, False),
        (("failure", "delay"), "delayed", False, True),
        (("FAILURE", "DELAY"), "failed", True, True),
    ],
)
def test_notify_rules(
    notify: tuple[str, ...], action: Action, delay_warnings: bool, wanted: bool
) -> None:
    """RFC 3461 §4.1: who is told of which outcome, with the delay-warning default."""
    recipient = Recipient("bob@remote.test", notify=notify)

    assert wants_notification(recipient, action, delay_warnings=delay_warnings) is wanted


def test_recipients_who_want_nothing_are_left_out() -> None:
    """Only recipients whose NOTIFY asks for this outcome appear; none at all gives None."""
    quiet = Recipient("quiet@remote.test", notify=("NEVER",))
    loud = Recipient("loud@remote.test", notify=("FAILURE",))

    result = dsn(reports=[report(recipient=quiet), report(recipient=loud)])
    alone = dsn(reports=[report(recipient=quiet)])

    assert result is not None
    blocks = status_blocks(parse(result[1]))
    assert [b["Final-Recipient"] for b in blocks[1:]] == ["rfc822; loud@remote.test"]
    assert alone is None


def test_delay_dsn_has_will_retry_until_and_its_own_subject() -> None:
    """A delay warning says delayed, keeps the 4.x.x status and when retries stop."""
    until = NOW + dt.timedelta(days=4)

    result = dsn(reports=[report("delayed", MAILBOX_BUSY, will_retry_until=until)])
    assert result is not None

    message = parse(result[1])
    per_recipient = status_blocks(message)[1]
    assert message["Subject"] == "Delayed Mail (still being retried)"
    assert per_recipient["Action"] == "delayed"
    assert per_recipient["Status"] == "4.2.0"
    assert per_recipient["Will-Retry-Until"] == "Wed, 05 Mar 2025 12:00:00 +0000"


def test_success_dsn_when_asked() -> None:
    """NOTIFY=SUCCESS yields a 'delivered' report with a success subject."""
    recipient = Recipient("bob@remote.test", notify=("SUCCESS",))

    result = dsn(reports=[report("delivered", Reply(250, None, "Ok"), recipient=recipient)])
    assert result is not None

    message = parse(result[1])
    assert message["Subject"] == "Successful Mail Delivery Report"
    assert status_blocks(message)[1]["Status"] == "2.0.0"


def test_envid_and_orcpt_are_echoed_decoded() -> None:
    """ENVID and ORCPT come back as Original-Envelope-Id and Original-Recipient, xtext decoded."""
    recipient = Recipient("bob@remote.test", orcpt="rfc822;Bob+2BTag@remote.test")

    result = dsn(envelope(envid="QQ314159+2Bx"), [report(recipient=recipient)])
    assert result is not None

    per_message, per_recipient = status_blocks(parse(result[1]))
    assert per_message["Original-Envelope-Id"] == "QQ314159+x"
    assert per_recipient["Original-Recipient"] == "rfc822; Bob+Tag@remote.test"


def test_xtext_that_would_inject_a_line_stays_encoded() -> None:
    """An xtext decoding to CR or LF is kept encoded, so no field can be injected."""
    assert decode_xtext("a+0D+0AAction:+20delivered") == "a+0D+0AAction:+20delivered"
    assert decode_xtext("a+2Bb+3Dc") == "a+b=c"


def test_status_falls_back_to_class_of_the_reply_code() -> None:
    """A reply without an enhanced status reports X.0.0 of its class."""
    assert status_of(Reply(554, None, "No")) == "5.0.0"
    assert status_of(Reply(421, None, "Later")) == "4.0.0"
    assert status_of(USER_UNKNOWN) == "5.1.1"


def test_multiline_reply_becomes_one_diagnostic_line() -> None:
    """A multi-line remote reply is joined into one Diagnostic-Code line."""
    reply = Reply(550, "5.7.1", "Rejected", "see https://help.remote.test")

    result = dsn(reports=[report(reply=reply)])
    assert result is not None

    per_recipient = status_blocks(parse(result[1]))[1]
    assert per_recipient["Diagnostic-Code"] == (
        "smtp; 550 5.7.1 Rejected see https://help.remote.test"
    )


def test_eight_bit_original_is_returned_intact_and_declared() -> None:
    """Latin-1 octets in the original survive and the DSN is declared 8bit/8BITMIME."""
    original = ORIGINAL.replace(b"Body line one.", b"Caf\xe9 cr\xe8me \xff")

    result = dsn(content=original)
    assert result is not None
    bounce_envelope, raw = result

    assert original in raw
    assert bounce_envelope.body == "8BITMIME"
    returned = parts_of(parse(raw))[2]
    assert returned["Content-Transfer-Encoding"] == "8bit"


def test_ascii_dsn_is_seven_bit() -> None:
    """An all-ASCII DSN needs no 8BITMIME and every line ends in CRLF."""
    result = dsn()
    assert result is not None
    bounce_envelope, raw = result

    assert bounce_envelope.body == "7BIT"
    assert raw.isascii()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert raw.endswith(b"--\r\n")


def test_smtputf8_dsn_uses_global_types() -> None:
    """A UTF-8 sender and recipient get message/global-delivery-status and utf-8 addresses."""
    original = "From: jörg@bücher.test\r\nSubject: Grüße\r\n\r\nHallo\r\n".encode()
    recipient = Recipient("émile@exemple.test")

    result = dsn(
        envelope(sender="jörg@bücher.test", smtputf8=True, recipients=[recipient]),
        [report(recipient=recipient)],
        content=original,
    )
    assert result is not None
    bounce_envelope, raw = result

    message = email.message_from_bytes(raw, policy=email.policy.SMTPUTF8)
    parts = parts_of(message)
    assert bounce_envelope.smtputf8
    assert bounce_envelope.body == "8BITMIME"
    assert message.get_param("report-type") == "global-delivery-status"
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/global-delivery-status",
        "message/global",
    ]
    assert "Final-Recipient: utf-8; émile@exemple.test" in raw.decode("utf-8")
    assert original in raw


def test_boundary_never_occurs_in_the_returned_message() -> None:
    """If the original holds the first candidate boundary, another one is chosen."""
    original = ORIGINAL + b"--=_mailwright-tok1\r\n"

    result = dsn(content=original)
    assert result is not None

    message = parse(result[1])
    assert message.get_boundary() == "=_mailwright-tok2"
    assert len(parts_of(message)) == 3


@pytest.mark.parametrize("ret", [None, "HDRS"])
def test_standard_library_reader_finds_no_defects(ret: str | None) -> None:
    """The email package's parser reads the DSN and flags no MIME defect in any part."""
    result = dsn(envelope(ret=ret, envid="ENV1"))
    assert result is not None

    message = email.message_from_bytes(result[1], policy=email.policy.default)

    assert message.is_multipart()
    for part in message.walk():
        assert part.defects == [], part.get_content_type()
