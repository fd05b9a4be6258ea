"""How Chinese text sounds: toneless pinyin per character, "fuzzy" syllables, homophones.

Telephone ASR mostly errs by sound (尾款 → 伟款, 删 → 山, 过敏 → 过明), so the n-gram model, the
transformer's input, the rules and the training-time noise all look at sound too. This is the one
module that imports pypinyin; readings are per character (context-free), so a misrecognised
character gets the same reading wherever it appears.
"""

from __future__ import annotations

import re
from functools import lru_cache

HAN = re.compile(r"[\u4e00-\u9fff]")
# Merged because Mandarin speakers (southern accents) and recognisers confuse them.
_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("n", "l"))
_FINALS = (("ing", "in"), ("eng", "en"), ("ang", "an"))


def fuzzy_syllable(syllable: str) -> str:
    """Merge the initials and finals that speakers and recognisers confuse (shi → si, ming → min)."""
    for a, b in _INITIALS:
        if syllable.startswith(a):
            syllable = b + syllable[len(a):]
            break
    for a, b in _FINALS:
        if syllable.endswith(a):
            return syllable[:-len(a)] + b
    return syllable


@lru_cache(maxsize=65536)
def syllable(char: str) -> str:
    """Toneless pinyin of one character (its most common reading); the character itself if it
    has none."""
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(char, style=Style.NORMAL)[0]


@lru_cache(maxsize=65536)
def fuzzy(char: str) -> str:
    """The fuzzy syllable of a Chinese character."""
    return fuzzy_syllable(syllable(char))


def fuzzy_syllables(norm: str) -> list[str]:
    """Fuzzy syllables of the Chinese characters of a normalised text, in order."""
    return [fuzzy(c) for c in norm if HAN.match(c)]


@lru_cache(maxsize=2)
def _common_by_sound(exact: bool) -> dict[str, tuple[str, ...]]:
    """GB2312 level-1 characters (the 3,755 in everyday use) by syllable (`exact`) or fuzzy
    syllable: what a recogniser's vocabulary writes."""
    out: dict[str, list[str]] = {}
    for hi in range(0xB0, 0xD8):
        for lo in range(0xA1, 0xFF):
            try:
                char = bytes((hi, lo)).decode("gb2312")
            except UnicodeDecodeError:
                continue
            if HAN.match(char):
                out.setdefault(syllable(char) if exact else fuzzy(char), []).append(char)
    return {k: tuple(v) for k, v in out.items()}


def homophones(char: str, *, exact: bool = True) -> tuple[str, ...]:
    """Everyday characters that sound like `char` in any tone, without it: the same syllable
    (`exact`) or the same fuzzy syllable (near sounds: si/shi, lan/nan, min/ming)."""
    if not HAN.match(char):
        return ()
    key = syllable(char) if exact else fuzzy(char)
    return tuple(c for c in _common_by_sound(exact).get(key, ()) if c != char)


def everyday_syllables() -> list[str]:
    """The fuzzy syllables of the everyday characters, sorted."""
    return sorted(_common_by_sound(False))
