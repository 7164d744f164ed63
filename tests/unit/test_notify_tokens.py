"""Sealed link tokens: round trips, opacity, every way a token is refused, the key file."""

from __future__ import annotations

import base64
import os
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwright.notify import tokens as tokens_module
from mailwright.notify.errors import InvalidToken
from mailwright.notify.tokens import (
    KEY_BYTES,
    MAX_TOKEN_CHARS,
    ExpiredToken,
    TokenBox,
    TokenKeyError,
)

CLAIMS: dict[str, str | int | float | bool] = {
    "r": "user-12345",
    "c": "newsletter",
    "a": "a@example.com",
    "ch": "email",
}
NOW = 1_700_000_000.0
DAY = 86_400.0


@pytest.fixture
def box() -> TokenBox:
    return TokenBox(bytes(range(KEY_BYTES)))


def raw_octets(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def test_sealed_claims_open_for_the_same_purpose(box: TokenBox) -> None:
    """A token opens to exactly the claims it was sealed with."""
    token = box.seal("unsubscribe", CLAIMS, now=NOW, ttl=DAY)

    assert box.open("unsubscribe", token, now=NOW + DAY - 1) == CLAIMS


def test_typical_token_is_short_and_url_safe(box: TokenBox) -> None:
    """An unsubscribe token for the usual claims stays under 200 URL-safe characters."""
    token = box.seal("unsubscribe", CLAIMS, now=NOW, ttl=365 * DAY)

    assert len(token) < 200
    assert all(c.isalnum() or c in "-_" for c in token)


def test_token_does_not_show_its_claims(box: TokenBox) -> None:
    """Neither the token text nor its decoded octets reveal the recipient or address."""
    token = box.seal("unsubscribe", CLAIMS, now=NOW, ttl=DAY)

    raw = raw_octets(token)
    for secret in ("user-12345", "a@example.com", "newsletter"):
        assert secret not in token
        assert secret.encode() not in raw


def test_each_seal_uses_a_fresh_nonce(box: TokenBox) -> None:
    """Sealing the same claims twice gives two different tokens that both open."""
    first = box.seal("unsubscribe", CLAIMS, now=NOW, ttl=DAY)
    second = box.seal("unsubscribe", CLAIMS, now=NOW, ttl=DAY)

    assert first != second
    assert box.open("unsubscribe", second, now=NOW) == box.open("unsubscribe", first, now=NOW)


def test_wrong_purpose_is_refused(box: TokenBox) -> None:
    """A token sealed for the preference centre does not work as an unsubscribe token."""
    token = box.seal("preferences", CLAIMS, now=NOW, ttl=DAY)

    with pytest.raises(InvalidToken, match="does not verify"):
        box.open("unsubscribe", token, now=NOW)


def test_token_from_another_key_is_refused(box: TokenBox) -> None:
    """A token sealed under a different key is refused like a forgery."""
    token = TokenBox(b"\x01" * KEY_BYTES).seal("unsubscribe", CLAIMS, now=NOW, ttl=DAY)

    with pytest.raises(InvalidToken, match="does not verify"):
        box.open("unsubscribe", token, now=NOW)


@pytest.mark.parametrize("position", [0, 1, 5, 20, 40, -2])
def test_any_changed_character_is_refused(box: TokenBox, position: int) -> None:
    """Changing one character anywhere (version, nonce, ciphertext, tag) fails the check."""
    token = box.seal("unsubscribe", CLAIMS, now=NOW, ttl=DAY)

    swapped = "B" if token[position] == "A" else "A"
    forged = token[:position] + swapped + token[position:][1:]
    assert forged != token
    with pytest.raises(InvalidToken, match="does not verify"):
        box.open("unsubscribe", forged, now=NOW)


def test_truncated_tokens_are_refused(box: TokenBox) -> None:
    """A token cut short is refused: as truncated below the minimum, else as not verifying."""
    token = box.seal("unsubscribe", CLAIMS, now=NOW, ttl=DAY)

    with pytest.raises(InvalidToken, match="truncated"):
        box.open("unsubscribe", token[:30], now=NOW)
    with pytest.raises(InvalidToken, match="does not verify"):
        box.open("unsubscribe", token[:-4], now=NOW)


@pytest.mark.parametrize("token", ["abc$defghijk", "abcd+efg/hij", "AAAA====", "A", "x y"])
def test_non_base64_is_refused(box: TokenBox, token: str) -> None:
    """Characters outside the urlsafe alphabet, padding or an impossible length are refused."""
    with pytest.raises(InvalidToken, match="not urlsafe base64"):
        box.open("unsubscribe", token, now=NOW)


def test_overlong_token_is_refused_before_decoding(box: TokenBox) -> None:
    """A token longer than 1 KiB is refused with a detail saying so."""
    with pytest.raises(InvalidToken, match="longer than 1024"):
        box.open("unsubscribe", "A" * (MAX_TOKEN_CHARS + 1), now=NOW)


def test_expired_token_is_refused_as_expired(box: TokenBox) -> None:
    """At and after its expiry a genuine token raises ExpiredToken, an InvalidToken."""
    token = box.seal("unsubscribe", CLAIMS, now=NOW, ttl=60)

    with pytest.raises(ExpiredToken, match="expired") as caught:
        box.open("unsubscribe", token, now=NOW + 60)
    assert isinstance(caught.value, InvalidToken)
    assert caught.value.status == 403


def test_seal_refuses_what_cannot_be_a_token(box: TokenBox) -> None:
    """Non-scalar claims, a non-positive ttl and claims too big for a URL raise ValueError."""
    with pytest.raises(ValueError, match="claim 'l'"):
        box.seal("unsubscribe", {"l": [1, 2]}, now=NOW, ttl=DAY)  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="ttl"):
        box.seal("unsubscribe", CLAIMS, now=NOW, ttl=0)
    with pytest.raises(ValueError, match="too long"):
        box.seal("unsubscribe", {"x": "y" * 800}, now=NOW, ttl=DAY)


def test_key_of_wrong_size_is_refused() -> None:
    """A key that is not 32 octets is refused at construction."""
    with pytest.raises(TokenKeyError, match="32 octets"):
        TokenBox(b"short")


@settings(max_examples=50, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=8),
        st.one_of(
            st.text(max_size=20),
            st.integers(-(2**53), 2**53),
            st.booleans(),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        max_size=5,
    )
)
def test_any_scalar_claims_round_trip(claims: dict[str, str | int | float | bool]) -> None:
    """Whatever strings, numbers and booleans go in come back out unchanged."""
    box = TokenBox(b"\x07" * KEY_BYTES)

    assert box.open("p", box.seal("p", claims, now=NOW, ttl=DAY), now=NOW) == claims


# -- the key file ---------------------------------------------------------------------


def test_missing_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    """A missing key file is created with 32 random octets, mode 0600, and read next time."""
    path = tmp_path / "token.key"

    first = TokenBox.from_file(path)
    second = TokenBox.from_file(path)

    assert len(path.read_bytes()) == KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = first.seal("unsubscribe", CLAIMS, now=NOW, ttl=DAY)
    assert second.open("unsubscribe", token, now=NOW) == CLAIMS
    assert os.listdir(tmp_path) == ["token.key"]


def test_wrong_size_key_file_names_the_file(tmp_path: Path) -> None:
    """A key file of the wrong size is refused with an error naming the file."""
    path = tmp_path / "token.key"
    path.write_bytes(b"not a key\n")

    with pytest.raises(TokenKeyError, match=str(path)):
        TokenBox.from_file(path)


def test_losing_the_creation_race_uses_the_winners_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When another process links its key first, ours is dropped and theirs is used."""
    path = tmp_path / "token.key"
    winner = TokenBox(b"\x42" * KEY_BYTES)
    real_link = os.link

    def link_after_rival(source: str, target: str) -> None:
        Path(target).write_bytes(b"\x42" * KEY_BYTES)  # the rival gets there in between
        real_link(source, target)

    monkeypatch.setattr(tokens_module.os, "link", link_after_rival)
    box = TokenBox.from_file(path)

    token = winner.seal("unsubscribe", CLAIMS, now=NOW, ttl=DAY)
    assert box.open("unsubscribe", token, now=NOW) == CLAIMS
    assert os.listdir(tmp_path) == ["token.key"]


def test_concurrent_creators_agree_on_one_key(tmp_path: Path) -> None:
    """Many threads creating the key at once all end up with the same key."""
    path = tmp_path / "token.key"
    start = threading.Barrier(8)
    boxes: list[TokenBox] = []

    def create() -> None:
        start.wait()
        boxes.append(TokenBox.from_file(path))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    token = boxes[0].seal("unsubscribe", CLAIMS, now=NOW, ttl=DAY)
    assert len(boxes) == 8
    assert all(box.open("unsubscribe", token, now=NOW) == CLAIMS for box in boxes)
