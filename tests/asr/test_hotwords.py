"""asr.hotwords: hint phrases replace what sounds like them, and nothing else."""

from __future__ import annotations

import pytest

from asr.hotwords import apply_hints


@pytest.mark.parametrize(("text", "phrases", "expected"), [
    ("漫减是怎么算的", ["满减", "优惠券"], "满减是怎么算的"),
    ("你是激起人吗", ["机器人", "人工客服"], "你是机器人吗"),
    ("这个保制七多久", ["保质期"], "这个保质期多久"),
    ("为款已经付过了", ["尾款"], "尾款已经付过了"),
    ("这个多少钱一合", ["一盒"], "这个多少钱一盒"),
    ("我在开车", ["再打", "开会"], "我在开车"),  # nothing sounds like a hint: unchanged
    ("好的", ["好", "对"], "好的"),  # one-character hints are never used
    ("我要找人工客服", ["人工客服", "客服"], "我要找人工客服"),  # already right: kept
    ("下午3点再打", ["下午", "再打"], "下午3点再打"),
    ("", ["满减"], ""),
])
def test_apply_hints(text: str, phrases: list[str], expected: str) -> None:
    assert apply_hints(text, phrases) == expected


def test_accent_confusions_count_as_the_same_sound() -> None:
    assert apply_hints("我要找真人", ["怎人"]) == "我要找怎人"  # zh ~ z
    assert apply_hints("你们是哪家", ["拉家"]) == "你们是拉家"  # n ~ l
    assert apply_hints("开心", ["开星"]) == "开星"  # -in ~ -ing
    assert apply_hints("开车", ["开会"]) == "开车"  # different sounds stay
