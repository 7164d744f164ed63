"""GSM-7 and UCS-2 encoding and splitting of SMS text (mailwright.notify.sms.encoding)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwright.notify.sms.encoding import (
    GSM7,
    UCS2,
    UDHI,
    Concatenation,
    concatenation,
    decode,
    is_gsm7,
    split,
)
from mailwright.notify.sms.errors import MessageTooLong, UnsupportedCoding

GSM_CHARS = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCXYZÄÖÑÜ§¿axyzäöñüà"
)
EXTENSION_CHARS = "€[]{}^~|\\\f"


def body(part: bytes, esm_class: int) -> bytes:
    """A segment without its user data header."""
    return part[1 + part[0] :] if esm_class & UDHI else part


def rebuild(text: str, **options: bool) -> str:
    encoded = split(text, **options)
    packed = options.get("packed", False)
    return "".join(
        decode(encoded.data_coding, part, encoded.esm_class, packed=packed)
        for part in encoded.parts
    )


def test_the_whole_default_alphabet_and_its_extension_are_gsm7() -> None:
    """Every basic and extension character is GSM-7; a lower-case ç or an emoji is not."""
    assert is_gsm7(GSM_CHARS + EXTENSION_CHARS)
    assert not is_gsm7("ç")
    assert not is_gsm7("😀")


def test_160_septets_fit_one_message_and_161_need_two() -> None:
    """The single-message limit is 160 septets, with no header."""
    single = split("a" * 160)
    double = split("a" * 161)

    assert (single.data_coding, single.esm_class, len(single.parts)) == (GSM7, 0, 1)
    assert single.parts == [b"a" * 160]
    assert (double.esm_class, [len(body(p, UDHI)) for p in double.parts]) == (UDHI, [153, 8])


def test_an_extension_character_costs_two_septets() -> None:
    """80 euro signs are 160 septets (one message); 81 are not."""
    assert len(split("€" * 80).parts) == 1
    assert split("€" * 80).parts[0] == b"\x1be" * 80
    assert len(split("€" * 81).parts) == 2


def test_a_segment_never_ends_between_an_escape_and_its_character() -> None:
    """With an escape sequence straddling septet 153, it moves whole to the next segment."""
    text = "a" * 152 + "€" + "b" * 10
    parts = split(text).parts

    assert body(parts[0], UDHI) == b"a" * 152
    assert body(parts[1], UDHI).startswith(b"\x1be")
    assert rebuild(text) == text


def test_the_8bit_header_names_reference_count_and_number() -> None:
    """Each segment opens 05 00 03 REF TOTAL N, with the reference taken modulo 256."""
    parts = split("x" * 400, reference=258).parts

    assert [part[:6] for part in parts] == [bytes([5, 0, 3, 2, 3, n]) for n in (1, 2, 3)]
    assert concatenation(parts[1], UDHI) == Concatenation(2, 3, 2)


def test_the_16bit_header_takes_one_septet_more() -> None:
    """IEI 0x08 carries a 16-bit reference in a 7-octet header, leaving 152 septets."""
    parts = split("x" * 400, reference=0x1234, wide_reference=True).parts

    assert parts[0][:7] == bytes([6, 8, 4, 0x12, 0x34, 3, 1])
    assert len(body(parts[0], UDHI)) == 152
    assert concatenation(parts[2], UDHI) == Concatenation(0x1234, 3, 3)


def test_a_text_outside_gsm7_goes_as_ucs2_70_then_67_code_units() -> None:
    """UTF-16BE, 70 code units in one message, 67 per segment after a header."""
    assert split("ж" * 70).parts == ["ж".encode("utf-16-be") * 70]
    encoded = split("ж" * 71)

    assert (encoded.data_coding, encoded.esm_class) == (UCS2, UDHI)
    assert [len(body(p, UDHI)) // 2 for p in encoded.parts] == [67, 4]


def test_a_segment_never_splits_a_surrogate_pair() -> None:
    """An emoji whose halves would straddle unit 67 moves whole to the next segment."""
    text = "ж" * 66 + "😀" + "ж" * 10
    parts = split(text).parts

    assert len(body(parts[0], UDHI)) // 2 == 66
    assert decode(UCS2, parts[1], UDHI).startswith("😀")
    assert rebuild(text) == text


def test_packed_gsm7_packs_eight_septets_in_seven_octets() -> None:
    """The classic example: "hellohello" packs to E8 32 9B FD 46 97 D9 EC 37."""
    [part] = split("hellohello", packed=True).parts

    assert part == bytes.fromhex("E8329BFD4697D9EC37")
    assert decode(GSM7, part, packed=True) == "hellohello"


def test_packed_segments_align_the_text_after_the_header_with_a_fill_bit() -> None:
    """After a 6-octet header one fill bit aligns the septets; the text comes back whole."""
    text = "Packed " * 40
    encoded = split(text, packed=True)

    assert all(len(part) <= 140 for part in encoded.parts)
    assert rebuild(text, packed=True) == text


def test_packing_seven_septets_pads_with_a_carriage_return_that_decoding_drops() -> None:
    """Seven septets leave seven spare bits, which TS 23.038 fills with <CR>, not '@'."""
    [part] = split("1234567", packed=True).parts

    assert part[-1] >> 1 == 0x0D
    assert decode(GSM7, part, packed=True) == "1234567"


def test_decoding_reads_the_other_text_codings_and_refuses_binary() -> None:
    """IA5 and Latin-1 are read; binary (data_coding 4) is UnsupportedCoding."""
    assert decode(1, b"STOP") == "STOP"
    assert decode(3, "Grüße".encode("latin-1")) == "Grüße"
    assert decode(0xF1, b"STOP") == "STOP"
    with pytest.raises(UnsupportedCoding, match="0x04"):
        decode(4, b"\x00\x01")


def test_an_unknown_escape_reads_as_its_basic_character() -> None:
    """ESC followed by a code without an extension meaning shows the basic character."""
    assert decode(GSM7, b"\x1bA\x1b\x1bB") == "A B"


def test_more_than_255_segments_is_too_long() -> None:
    """A concatenation header counts to 255; more raises MessageTooLong naming the size."""
    with pytest.raises(MessageTooLong, match="256 segments"):
        split("a" * 153 * 256)


def test_a_segment_without_a_header_has_no_concatenation() -> None:
    """A plain message, or one whose header carries another element, reads as None."""
    assert concatenation(b"hello", 0) is None
    assert concatenation(bytes([3, 0x24, 1, 0]) + b"hi", UDHI) is None


@given(st.text(alphabet=GSM_CHARS + EXTENSION_CHARS, max_size=800), st.booleans())
def test_any_gsm7_text_round_trips_through_its_segments(text: str, packed: bool) -> None:
    """Split then decoded, a GSM-7 text is itself, in segments that fit 140 octets."""
    encoded = split(text, packed=packed)

    assert encoded.data_coding == GSM7
    assert rebuild(text, packed=packed) == text
    if packed:
        assert all(len(part) <= 140 for part in encoded.parts)


@given(st.text(max_size=400).filter(lambda text: not is_gsm7(text)))
def test_any_other_text_round_trips_as_ucs2(text: str) -> None:
    """Split then decoded, any text outside GSM-7 is itself, each segment within 140 octets."""
    encoded = split(text)

    assert encoded.data_coding == UCS2
    assert all(len(part) <= 140 for part in encoded.parts)
    assert rebuild(text) == text
