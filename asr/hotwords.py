"""Hint phrases matched by sound: a node's expected words replace homophones in the transcript.

Whisper's small models hear the sounds right more often than they pick the right characters
("漫减" for 满减, "激起人" for 机器人, "保制七" for 保质期). When the talk track says which words
to expect at a node, a stretch of the transcript that *sounds* like one of them (same toneless
pinyin, allowing the usual accent confusions zh/z, ch/c, sh/s, n/l, -ng/-n) is rewritten to it.
Phrases of one character are never used: too many words sound like them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

_HAN = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff]+$")
_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"))


@lru_cache(maxsize=4096)
def _fuzzy(syllable: str) -> str:
    s = syllable
    for a, b in _INITIALS:
        if s.startswith(a):
            s = b + s[len(a) :]
            break
    if s.startswith("n"):
        s = "l" + s[1:]
    if s.endswith("ng") and not s.endswith("ong"):
        s = s[:-1]
    return s


def _pinyin(text: str) -> list[str]:
    """One toneless syllable per character (a non-Chinese character stands for itself)."""
    from pypinyin import Style, lazy_pinyin

    out: list[str] = []
    for run in re.finditer(r"[\u3400-\u4dbf\u4e00-\u9fff]+|[^\u3400-\u4dbf\u4e00-\u9fff]+", text):
        part = run.group(0)
        syllables = lazy_pinyin(part, style=Style.NORMAL) if _HAN.match(part) else []
        out += syllables if len(syllables) == len(part) else list(part)
    return out


def _sounds_like(a: list[str], b: list[str]) -> bool:
    return all(_fuzzy(x) == _fuzzy(y) for x, y in zip(a, b, strict=True))


def apply_hints(text: str, phrases: Sequence[str]) -> str:
    """`text` with stretches that sound like a hint phrase replaced by that phrase."""
    usable = sorted({p for p in phrases if len(p) >= 2 and _HAN.match(p)}, key=len, reverse=True)
    if not usable or not text:
        return text
    chars = list(text)
    syll = _pinyin(text)
    han = [bool(_HAN.match(c)) for c in chars]
    fixed = [False] * len(chars)
    for p in usable:  # what is already a hint phrase stays as it is
        for m in re.finditer(re.escape(p), text):
            fixed[m.start() : m.end()] = [True] * len(p)
    for p in usable:
        target = _pinyin(p)
        n = len(p)
        i = 0
        while i + n <= len(chars):
            window = slice(i, i + n)
            if all(han[window]) and not any(fixed[window]) and _sounds_like(syll[window], target):
                chars[window] = list(p)
                syll[window] = target
                fixed[window] = [True] * n
                i += n
            else:
                i += 1
    return "".join(chars)
