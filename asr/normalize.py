"""One written form for everything the NLU sees from ASR (any backend, or the gateway's own ASR).

- Simplified Chinese (OpenCC t2s), full-width ASCII folded to half-width (NFKC).
- Punctuation removed; no spaces next to Chinese characters (one space between other words).
- Numbers as Arabic digits: 三百五十 → 350, 两盒 → 2盒, 明天下午三点 → 明天下午3点,
  幺三五七 → 1357 (digit strings are read digit by digit), 3:30 → 3点半, 百分之五十 → 50%.
  Left in Chinese on purpose: words that merely contain a numeral (一下, 一点儿, 统一, 万一,
  千万, 十分, 一起…), weekdays (星期三, 周一), approximate ranges (三四个, 五六百) and the lone
  一 / 零 / 十 outside a date, time or money context (一个 stays 一个).
"""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher
from functools import cache
from typing import Any

_DIGITS = {"零": 0, "〇": 0, "一": 1, "幺": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
           "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10_000, "亿": 100_000_000}
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_SPAN = re.compile(r"[零〇一幺二两三四五六七八九十百千万亿]+")

# A lone numeral is a number only before one of these (measure words, money, clock and date units).
_MEASURE = (
    "分钟", "小时", "钟头", "块钱", "点钟", "点半", "个月", "点", "号", "日", "月", "年", "岁", "块", "元", "毛",
    "角", "个", "天", "周", "次", "件", "盒", "瓶", "支", "位", "折", "斤", "克", "箱", "套", "张", "单",
    "期", "人", "份", "袋", "罐", "台", "遍", "秒", "楼", "层", "单元",
)
# Lone 一 (and 十) are numbers only in a date/time/money context, else they are words (一个, 十分).
_ONE_AFTER = ("点钟", "点半", "块钱", "号", "日", "月份", "元")
_TIME_BEFORE = ("上午", "下午", "中午", "晚上", "凌晨", "早上", "今天", "明天", "后天", "号", "月")
_WEEKDAY_BEFORE = ("星期", "礼拜", "周")
# Words containing numeral characters that are not numbers.
_LEXICAL = ("万一", "千万", "一一", "十分", "万分", "百分百", "三心二意", "一五一十", "乱七八糟", "七上八下",
            "不三不四", "一模一样", "九九八十一")


@cache
def _opencc() -> Any:
    from opencc import OpenCC

    return OpenCC("t2s")


def to_simplified(text: str) -> str:
    return str(_opencc().convert(text))


def _digit_string(span: str) -> str:
    return "".join(str(_DIGITS[c]) for c in span)


def _value(span: str) -> int | None:
    """Value of a numeral with units (三百五十, 一千五, 两万, 十一); None when not well formed."""
    import cn2an

    try:
        v = cn2an.cn2an(span.replace("幺", "一"), "smart")
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return int(v) if float(v).is_integer() else None


def _is_range(span: str) -> bool:
    """三四, 五六, 两三: adjacent small numbers said together mean "three or four"."""
    vals = [_DIGITS[c] for c in span]
    return (len(vals) == 2 and vals[1] - vals[0] == 1) or span in ("一两", "两三")


def _in_lexical_word(text: str, start: int, end: int) -> bool:
    for word in _LEXICAL:
        i = text.find(word, max(0, start - len(word) + 1))
        while i != -1 and i < end:
            if i + len(word) > start:
                return True
            i = text.find(word, i + 1)
    return False


def _convert_span(text: str, start: int, end: int) -> str | None:
    span, before, after = text[start:end], text[max(0, start - 2) : start], text[end : end + 2]
    if _in_lexical_word(text, start, end):
        return None
    if not any(c in _UNITS for c in span):
        if len(span) >= 3 or (len(span) == 2 and not _is_range(span)):
            return _digit_string(span)  # phone numbers, codes: read digit by digit
        if len(span) == 2 or span in ("零", "〇") or before.endswith(_WEEKDAY_BEFORE):
            return None  # a range (三四个), 零钱, 星期三
        if span in ("一", "幺"):
            ok = after.startswith(_ONE_AFTER) or (after.startswith("点") and before.endswith(_TIME_BEFORE))
            return "1" if ok else None
        return str(_DIGITS[span]) if after.startswith(_MEASURE) else None
    if span == "十" and not after.startswith(_MEASURE):
        return None
    if len(span) >= 2 and span[0] in _DIGITS and span[1] in _DIGITS:
        return None  # 五六百: an approximate range with a unit
    value = _value(span)
    return None if value is None else str(value)


def normalize_numbers(text: str) -> str:
    """Chinese numerals → Arabic digits (see the module docstring for what is left alone)."""
    text = re.sub(r"(?<=\d)[,，](?=\d{3}(?!\d))", "", text)  # 1,500 → 1500
    text = re.sub(r"(?<!\d)(\d{1,2})[:：]00(?!\d)", r"\1点", text)
    text = re.sub(r"(?<!\d)(\d{1,2})[:：]30(?!\d)", r"\1点半", text)
    text = re.sub(r"(?<!\d)(\d{1,2})[:：](\d{2})(?!\d)", lambda m: f"{m.group(1)}点{int(m.group(2))}分", text)
    text = re.sub(r"百分之([零〇一二两三四五六七八九十百]+)",
                  lambda m: f"{v}%" if (v := _value(m.group(1))) is not None else m.group(0), text)
    out, pos = [], 0
    for m in _SPAN.finditer(text):
        conv = _convert_span(text, m.start(), m.end())
        out += [text[pos : m.start()], m.group(0) if conv is None else conv]
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def _strip_punct(text: str) -> str:
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch == "%" or not (cat.startswith("P") or cat.startswith("S") or cat.startswith("Z") or ch.isspace()):
            kept.append(ch)
        else:
            kept.append(" ")
    # Chinese is written without spaces (vosk's "你们 是 哪家" → 你们是哪家); other scripts
    # (Latin, Hangul) keep one space between words.
    return re.sub(r"\s+", lambda m: "" if _han_edge(m) else " ", "".join(kept)).strip()


def _han_edge(m: re.Match[str]) -> bool:
    s = m.string
    a, b = s[m.start() - 1 : m.start()], s[m.end() : m.end() + 1]
    return bool(_HAN.match(a) or _HAN.match(b))


def normalize_text(text: str) -> str:
    """The canonical transcript: Simplified, no punctuation, Arabic numbers."""
    text = to_simplified(unicodedata.normalize("NFKC", text))
    text = _strip_punct(normalize_numbers(text))
    return re.sub(r"(?<=\d) (?=\d)", "", text)


def collapse_repeat(text: str, min_ratio: float = 0.85) -> str:
    """A reply said (or decoded) twice in one final, the copies not quite equal — "我在开车，晚点
    再说吧。我在开车晚点在说吧" — reads once: the first copy. Split points are punctuation or
    spaces when there are any, else every position; both halves need at least 3 characters and
    must agree on `min_ratio` of their characters."""
    plain = re.sub(r"[\s\W_]+", "", text)
    if len(plain) < 6:
        return text
    cuts = [len(re.sub(r"[\s\W_]+", "", text[: m.start()])) for m in re.finditer(r"[\s\W_]+", text)]
    cuts = [c for c in cuts if 3 <= c <= len(plain) - 3] or list(range(3, len(plain) - 2))
    for cut in cuts:
        a, b = plain[:cut], plain[cut:]
        if min(len(a), len(b)) / max(len(a), len(b)) < 0.7:
            continue
        if SequenceMatcher(None, a, b, autojunk=False).ratio() >= min_ratio:
            return a
    return text
