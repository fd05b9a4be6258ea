"""asr.normalize: one written form (Simplified, no punctuation, Arabic numbers) for the NLU."""

from __future__ import annotations

import pytest

from asr.metrics import corpus_cer, edit_distance
from asr.normalize import normalize_numbers, normalize_text, to_simplified


@pytest.mark.parametrize(("raw", "expected"), [
    # times, money, quantities, ages
    ("明天下午三点再打", "明天下午3点再打"),
    ("下周一上午十点打给我吧", "下周一上午10点打给我吧"),
    ("晚上八点以后再打", "晚上8点以后再打"),
    ("十一点半", "11点半"),
    ("下午一点", "下午1点"),
    ("一号发货", "1号发货"),
    ("一共三百五十块", "一共350块"),
    ("二十九块九", "29块九"),
    ("一千五", "1500"),
    ("两万", "20000"),
    ("两百块", "200块"),
    ("我买了两盒", "我买了2盒"),
    ("我今年六十八岁了", "我今年68岁了"),
    ("百分之五十", "50%"),
    # digit strings are read digit by digit (幺 = 1)
    ("幺三五七", "1357"),
    ("我的手机号是幺三五七二四六八九零幺", "我的手机号是13572468901"),
    ("验证码是四五六七", "验证码是4567"),
    # words that contain numerals are left alone
    ("等一下", "等一下"),
    ("能不能再便宜一点", "能不能再便宜一点"),
    ("一个", "一个"),
    ("统一", "统一"),
    ("万一", "万一"),
    ("千万别打了", "千万别打了"),
    ("十分感谢", "十分感谢"),
    ("第一次", "第一次"),
    ("零钱", "零钱"),
    ("星期三", "星期三"),
    ("三四个", "三四个"),
    ("五六百", "五六百"),
])
def test_numbers(raw: str, expected: str) -> None:
    assert normalize_numbers(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("你們是哪家公司？", "你们是哪家公司"),  # Traditional → Simplified, punctuation gone
    ("明天下午3點再打吧。", "明天下午3点再打吧"),
    ("下午3:30, OK 好的", "下午3点半OK好的"),
    ("15:00", "15点"),
    ("135 7246 8901", "13572468901"),
    ("１３５", "135"),  # full-width digits
    ("1,500块", "1500块"),
    ("你们 是 哪家", "你们是哪家"),  # vosk's word-spaced Chinese
    ("네 감사합니다", "네 감사합니다"),  # Korean keeps its spaces
    ("  ", ""),
])
def test_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_whisper_and_spoken_forms_meet() -> None:
    """What Whisper writes and what the customer said normalise to the same string."""
    pairs = [("明天下午3点再打", "明天下午三点再打"), ("13572468901", "幺三五七二四六八九零幺"),
             ("一共350块", "一共三百五十块"), ("我75岁了", "我七十五岁了"), ("299块", "两百九十九块")]
    for written, spoken in pairs:
        assert normalize_text(written) == normalize_text(spoken)
    assert corpus_cer(pairs) == 0.0


def test_to_simplified() -> None:
    assert to_simplified("還沒收到簡訊") == "还没收到简讯"


def test_cer() -> None:
    assert edit_distance("abc", "abc") == 0
    assert edit_distance("好的谢谢", "好谢谢了") == 2
    assert corpus_cer([("好的", "好的"), ("不需要", "不要")]) == pytest.approx(1 / 5)
    assert corpus_cer([("好的", "")]) == 1.0


@pytest.mark.parametrize(("text", "expected"), [
    ("我在开车，晚点再说吧。我在开车晚点在说吧", "我在开车晚点再说吧"),  # said (or decoded) twice
    ("喂？ 喂？你好", "喂？ 喂？你好"),  # too short to judge
    ("明天下午三点，后天下午三点", "明天下午三点，后天下午三点"),  # a correction is not a repeat
    ("好的，我现在就去付尾款", "好的，我现在就去付尾款"),
])
def test_collapse_repeat(text: str, expected: str) -> None:
    from asr.normalize import collapse_repeat

    assert collapse_repeat(text) == expected
