"""Text to SMPP ``short_message`` segments and back: GSM 03.38 (GSM-7) or UCS-2.

An SMS carries 140 octets of user data. A text whose every character is in the
GSM 03.38 default alphabet, or its extension table, goes as GSM-7
(``data_coding`` 0): 160 septets in one message, an extension character
(``€ [ ] { } ^ ~ | \\`` and form feed) costing two, the escape and the
character. Anything else goes as UCS-2 (``data_coding`` 8), sent as UTF-16BE:
70 code units in one message, and a character outside the Basic Multilingual
Plane (most emoji) costs two, a surrogate pair.

A longer text is split into segments, each opening with a user data header
(3GPP TS 23.040 §9.2.3.24.1) that names a reference shared by all segments,
their count and the segment's number; ``esm_class`` then carries the UDHI flag
0x40. The 6-octet header (information element 0x00, 8-bit reference) leaves 153
septets or 67 code units per segment; the 7-octet one (0x08, 16-bit reference)
leaves 152 or 66. A segment never ends between an escape and its character, nor
between the halves of a surrogate pair, so every segment decodes on its own.

Packed or unpacked. Over the air GSM-7 is packed, eight septets in seven
octets. Over SMPP most SMSCs expect ``data_coding`` 0 *unpacked*, one septet a
byte, and pack it themselves; that is the default here. ``packed=True`` packs
the septets (with the fill bits that align the text after a header, and the
trailing ``<CR>`` of TS 23.038 §6.1.2.3.1) for the SMSCs that want it.

Pure: no I/O, no logging. Errors: :class:`MessageTooLong` past 255 segments,
:class:`UnsupportedCoding` for an inbound ``data_coding`` not read here.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailwright.notify.sms.errors import MessageTooLong, UnsupportedCoding

GSM7 = 0x00
IA5 = 0x01
LATIN1 = 0x03
UCS2 = 0x08

UDHI = 0x40  # esm_class: short_message opens with a user data header

_ESC = 0x1B
_USER_DATA_OCTETS = 140
_MAX_SEGMENTS = 255

# TS 23.038 §6.2.1, in code order; position 0x1B is the escape to the extension table.
_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
_EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

_ENCODE: dict[str, tuple[int, ...]] = {
    char: (code,) for code, char in enumerate(_BASIC) if code != _ESC
} | {char: (_ESC, code) for code, char in _EXTENSION.items()}


@dataclass(frozen=True, slots=True)
class Encoded:
    """A text ready for ``submit_sm``: one ``short_message`` per segment, in order."""

    data_coding: int
    esm_class: int
    parts: list[bytes]


@dataclass(frozen=True, slots=True)
class Concatenation:
    """What a segment's concatenation header says: shared reference, count, number (1-based)."""

    reference: int
    total: int
    number: int


def septets(text: str) -> list[tuple[int, ...]] | None:
    """The GSM-7 septets of each character of ``text``, or None if one is not in GSM 03.38."""
    out = []
    for char in text:
        code = _ENCODE.get(char)
        if code is None:
            return None
        out.append(code)
    return out


def is_gsm7(text: str) -> bool:
    """Whether ``text`` can go as GSM-7 (every character in the alphabet or its extension)."""
    return all(char in _ENCODE for char in text)


def split(
    text: str, *, reference: int = 0, wide_reference: bool = False, packed: bool = False
) -> Encoded:
    """Encode ``text`` and split it into as few segments as its coding allows.

    ``reference`` is the concatenation reference (taken modulo 256, or 65536
    with ``wide_reference``); the caller varies it from message to message so
    that a handset does not mix up two long messages. Raises
    :class:`MessageTooLong` when the text needs more than 255 segments.
    """
    codes = septets(text)
    header_octets = 7 if wide_reference else 6
    if codes is None:
        units = _split_ucs2(text.encode("utf-16-be"), header_octets)
        headers = _headers(len(units), reference, wide_reference)
        return Encoded(UCS2, UDHI if len(units) > 1 else 0, _join(headers, units))

    groups = _split_gsm(codes, header_octets)
    headers = _headers(len(groups), reference, wide_reference)
    bodies = [
        _gsm_body(group, _fill_bits(len(header)) if header else 0, packed)
        for header, group in zip(headers, groups, strict=True)
    ]
    return Encoded(GSM7, UDHI if len(groups) > 1 else 0, _join(headers, bodies))


def decode(data_coding: int, payload: bytes, esm_class: int = 0, *, packed: bool = False) -> str:
    """The text of an inbound ``short_message``, its user data header (if any) left out.

    Reads GSM-7 (``data_coding`` 0 and the message-class scheme 0xF0-0xF3,
    unpacked unless ``packed``), IA5/ASCII (1), Latin-1 (3) and UCS-2/UTF-16BE
    (8). Undecodable octets become U+FFFD rather than failing, so a keyword in a
    slightly damaged message is still read. Raises :class:`UnsupportedCoding`
    for any other ``data_coding`` (binary, Cyrillic, Kanji, ...).
    """
    header = _header_length(payload) if esm_class & UDHI else 0
    body = payload[header:]

    if data_coding == GSM7 or 0xF0 <= data_coding <= 0xF3:
        if packed:
            return _from_septets(_unpack(body, _fill_bits(header)))
        return _from_septets(list(body))
    if data_coding == IA5:
        return body.decode("ascii", errors="replace")
    if data_coding == LATIN1:
        return body.decode("latin-1")
    if data_coding == UCS2:
        return body.decode("utf-16-be", errors="replace")
    raise UnsupportedCoding(f"data_coding 0x{data_coding:02X} is not a text coding read here")


def concatenation(payload: bytes, esm_class: int) -> Concatenation | None:
    """The concatenation header of a segment (IEI 0x00 or 0x08), or None if it has none."""
    if not esm_class & UDHI or not payload:
        return None

    end = _header_length(payload)
    at = 1
    while at + 2 <= end:
        iei, length = payload[at], payload[at + 1]
        value = payload[at + 2 : at + 2 + length]
        if iei == 0x00 and length == 3 and len(value) == 3:
            return Concatenation(value[0], value[1], value[2])
        if iei == 0x08 and length == 4 and len(value) == 4:
            return Concatenation(int.from_bytes(value[:2], "big"), value[2], value[3])
        at += 2 + length
    return None


def _split_gsm(codes: list[tuple[int, ...]], header_octets: int) -> list[list[int]]:
    """Whole characters' septets, grouped into segments; one group if all fit in 160."""
    flat = [septet for code in codes for septet in code]
    if len(flat) <= _USER_DATA_OCTETS * 8 // 7:
        return [flat]

    room = (_USER_DATA_OCTETS * 8 - header_octets * 8 - _fill_bits(header_octets)) // 7
    chunks: list[list[int]] = [[]]
    for code in codes:
        if len(chunks[-1]) + len(code) > room:
            chunks.append([])
        chunks[-1].extend(code)
    return chunks


def _split_ucs2(data: bytes, header_octets: int) -> list[bytes]:
    """UTF-16BE code units grouped into segments, never parting a surrogate pair."""
    if len(data) <= _USER_DATA_OCTETS:
        return [data]

    room = (_USER_DATA_OCTETS - header_octets) // 2 * 2
    chunks = []
    start = 0
    while start < len(data):
        end = min(start + room, len(data))
        if end < len(data) and 0xD8 <= data[end - 2] <= 0xDB:
            end -= 2  # a high surrogate: its low half opens the next segment with it
        chunks.append(data[start:end])
        start = end
    return chunks


def _headers(total: int, reference: int, wide: bool) -> list[bytes]:
    """One concatenation header per segment (none for a single one); too many: an error."""
    if total > _MAX_SEGMENTS:
        raise MessageTooLong(f"the text needs {total} segments; at most 255 fit")
    if total == 1:
        return [b""]
    return [_header(reference, total, number, wide) for number in range(1, total + 1)]


def _join(headers: list[bytes], bodies: list[bytes]) -> list[bytes]:
    """Each segment's header followed by its body."""
    return [header + body for header, body in zip(headers, bodies, strict=True)]


def _header(reference: int, total: int, number: int, wide: bool) -> bytes:
    """The concatenation user data header, its length octet first."""
    if wide:
        ref = reference % 65536
        return bytes([6, 0x08, 4, ref >> 8, ref & 0xFF, total, number])
    return bytes([5, 0x00, 3, reference % 256, total, number])


def _header_length(payload: bytes) -> int:
    """How many octets the user data header takes, its length octet included."""
    return min(len(payload), 1 + payload[0]) if payload else 0


def _fill_bits(header_octets: int) -> int:
    """Bits that align the first septet after a header of this size on a septet boundary."""
    return (7 - header_octets * 8 % 7) % 7


def _gsm_body(codes: list[int], fill: int, packed: bool) -> bytes:
    """Septets as they go in ``short_message``: one a byte, or packed after ``fill`` bits."""
    if not packed:
        return bytes(codes)
    if (fill + 7 * len(codes)) % 8 == 1:
        codes = [*codes, 0x0D]  # 7 spare bits would read as '@': TS 23.038 pads with <CR>
    return _pack(codes, fill)


def _pack(codes: list[int], fill: int) -> bytes:
    """Pack septets LSB first (TS 23.038 §6.1.2.1.1), after ``fill`` zero bits."""
    out = bytearray((fill + 7 * len(codes) + 7) // 8)
    for index, code in enumerate(codes):
        bit = fill + 7 * index
        out[bit // 8] |= (code << (bit % 8)) & 0xFF
        if bit % 8 > 1:
            out[bit // 8 + 1] |= code >> (8 - bit % 8)
    return bytes(out)


def _unpack(data: bytes, fill: int) -> list[int]:
    """The septets packed in ``data`` after ``fill`` bits, less a padding ``<CR>``."""
    count = (len(data) * 8 - fill) // 7
    codes = []
    for index in range(count):
        bit = fill + 7 * index
        value = data[bit // 8] >> (bit % 8)
        if bit % 8 > 1:
            value |= data[bit // 8 + 1] << (8 - bit % 8)
        codes.append(value & 0x7F)

    if codes and codes[-1] == 0x0D and (len(data) * 8 - fill) % 7 == 0:
        codes.pop()
    return codes


def _from_septets(codes: list[int]) -> str:
    """Map septets to text; an unknown escape reads as its basic character (§6.2.1.1)."""
    out = []
    escaped = False
    for code in codes:
        if escaped:
            escaped = False
            fallback = " " if code == _ESC or code > 0x7F else _BASIC[code]
            out.append(_EXTENSION.get(code, fallback))
        elif code == _ESC:
            escaped = True
        else:
            out.append(_BASIC[code] if code <= 0x7F else "\ufffd")
    return "".join(out)
