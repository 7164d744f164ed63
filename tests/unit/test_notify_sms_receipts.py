"""Delivery receipts read into delivery states (mailwright.notify.sms.receipts)."""

from __future__ import annotations

import pytest

from mailwright.notify.sms.errors import UnreadableReceipt
from mailwright.notify.sms.receipts import (
    TAG_MESSAGE_STATE,
    TAG_RECEIPTED_MESSAGE_ID,
    Receipt,
    from_deliver_sm,
    parse_text,
)

TEXT = (
    b"id:7A3F01 sub:001 dlvrd:001 submit date:2501011200 done date:2501011201 "
    b"stat:DELIVRD err:000 text:Your code is 1234"
)


def receipt_text(stat: str, err: str = "000", message_id: str = "7A3F01") -> bytes:
    return f"id:{message_id} sub:001 dlvrd:000 stat:{stat} err:{err} text:hi".encode()


def test_the_appendix_b_text_is_read_field_by_field() -> None:
    """Every field of the text format, the two-word dates and the free text included."""
    fields = parse_text(TEXT.decode())

    assert fields == {
        "id": "7A3F01",
        "sub": "001",
        "dlvrd": "001",
        "submit date": "2501011200",
        "done date": "2501011201",
        "stat": "DELIVRD",
        "err": "000",
        "text": "Your code is 1234",
    }


def test_a_text_that_contains_field_names_keeps_them_as_text() -> None:
    """Words like stat: after text: belong to the text, not to the receipt."""
    fields = parse_text("id:1 stat:UNDELIV err:005 text:stat:DELIVRD id:2")

    assert (fields["id"], fields["stat"], fields["text"]) == ("1", "UNDELIV", "stat:DELIVRD id:2")


@pytest.mark.parametrize(
    ("stat", "state"),
    [
        ("DELIVRD", "delivered"),
        ("EXPIRED", "expired"),
        ("UNDELIV", "failed"),
        ("REJECTD", "failed"),
        ("DELETED", "failed"),
        ("UNKNOWN", "failed"),
        ("ACCEPTD", "queued"),
        ("ENROUTE", "queued"),
        ("delivered", "delivered"),
        ("Undeliverable", "failed"),
    ],
)
def test_each_stat_word_maps_to_a_delivery_state(stat: str, state: str) -> None:
    """The SMPP 3.4 stat words, and common long spellings, map to the channel's states."""
    receipt = from_deliver_sm(receipt_text(stat), {})

    assert receipt.state == state
    assert receipt.message_id == "7A3F01"


def test_the_options_win_over_the_text() -> None:
    """receipted_message_id and message_state are preferred to id and stat in the text."""
    tlvs = {TAG_RECEIPTED_MESSAGE_ID: b"abc-1\x00", TAG_MESSAGE_STATE: bytes([5])}

    receipt = from_deliver_sm(receipt_text("DELIVRD", err="034"), tlvs)

    assert receipt == Receipt("abc-1", "failed", "UNDELIV", "034")


def test_a_receipt_of_options_alone_is_enough() -> None:
    """An SMSC that sends no text, only the options, still gives a receipt."""
    tlvs = {TAG_RECEIPTED_MESSAGE_ID: b"abc-2\x00", TAG_MESSAGE_STATE: bytes([3])}

    assert from_deliver_sm(b"", tlvs) == Receipt("abc-2", "expired", "EXPIRED", None)


def test_a_zero_error_code_is_no_error() -> None:
    """err:000 reads as None; a non-zero code is kept as sent."""
    assert from_deliver_sm(TEXT, {}).error is None
    assert from_deliver_sm(receipt_text("UNDELIV", err="0A1"), {}).error == "0A1"


def test_a_receipt_without_a_message_id_is_unreadable() -> None:
    """No id in the options or the text raises UnreadableReceipt."""
    with pytest.raises(UnreadableReceipt, match="without a message id"):
        from_deliver_sm(b"stat:DELIVRD err:000", {})


def test_an_unknown_status_is_unreadable_and_named() -> None:
    """A stat word that is not SMPP 3.4's raises UnreadableReceipt naming it."""
    with pytest.raises(UnreadableReceipt, match="'WHATEVER'"):
        from_deliver_sm(receipt_text("WHATEVER"), {})
