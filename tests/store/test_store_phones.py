"""Phones: normalised, masked 138****1234, keyed hash, encrypted copy, key file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from store.phones import PhoneError, PhoneKeys, load_keys, mask_id, mask_phone, normalize_phone, protect


@pytest.mark.parametrize("raw", ["13812341234", "+86 138-1234-1234", "0086 13812341234", "8613812341234",
                                 "(138) 1234 1234"])
def test_formats_normalise_to_the_same_number(raw: str) -> None:
    assert normalize_phone(raw) == "13812341234"


@pytest.mark.parametrize("raw", ["1381234", "12812341234", "abc", "", "138123412345"])
def test_bad_numbers_are_refused_without_echoing_them(raw: str) -> None:
    with pytest.raises(PhoneError) as info:
        normalize_phone(raw)
    assert raw == "" or raw not in str(info.value)


def test_masks() -> None:
    assert mask_phone("13812341234") == "138****1234"
    assert mask_phone("02161234567") == "021****4567"
    assert mask_id("wx_13812341234_a") == "wx_138****1234_a"
    assert mask_id("c000123") == "c000123"


def test_hash_is_keyed_and_encryption_round_trips() -> None:
    a, b = PhoneKeys.from_secret("one"), PhoneKeys.from_secret("two")
    assert a.hash("13812341234") == PhoneKeys.from_secret("one").hash("13812341234")
    assert a.hash("13812341234") != b.hash("13812341234") and a.fingerprint != b.fingerprint
    stored = protect("+86 138 1234 1234", a)
    assert stored.masked == "138****1234" and "13812341234" not in stored.encrypted
    assert a.decrypt(stored.encrypted) == "13812341234"
    with pytest.raises(ValueError, match="HUASHU_PHONE_KEY"):
        b.decrypt(stored.encrypted)


def test_generated_key_file_is_private_and_stable(tmp_path: Path) -> None:
    first = load_keys("", tmp_path / "d")
    path = tmp_path / "d" / "phone.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keys("", tmp_path / "d").fingerprint == first.fingerprint
    assert load_keys("explicit", tmp_path / "d").fingerprint != first.fingerprint
