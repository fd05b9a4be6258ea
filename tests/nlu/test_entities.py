"""Entity values normalised for the engine: ISO times, int yuan, digit strings, products."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from nlu.data import load_dir
from nlu.entities import extract

from .conftest import SCRIPTS_NLU

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2024, 11, 6, 10, 30, tzinfo=SH)  # a Wednesday, 10:30 in Shanghai


def values(text: str, kind: str, now: datetime = NOW) -> list[object]:
    ents = extract(text, now)
    for e in ents:
        assert text[e.start:e.end] == e.text
    return [e.value for e in ents if e.entity == kind]


@pytest.mark.parametrize(("text", "iso"), [
    ("明天下午三点付", "2024-11-07T15:00:00+08:00"),
    ("周六上午再打", "2024-11-09T10:00:00+08:00"),
    ("下周一打给我", "2024-11-11T10:00:00+08:00"),
    ("下周再说", "2024-11-11T10:00:00+08:00"),
    ("晚点付", "2024-11-06T12:30:00+08:00"),
    ("半个小时后再打", "2024-11-06T11:00:00+08:00"),
    ("两个小时后", "2024-11-06T12:30:00+08:00"),
    ("今晚十二点准时付", "2024-11-07T00:00:00+08:00"),
    ("晚上八点以后", "2024-11-06T20:00:00+08:00"),
    ("你七点半以后打吧", "2024-11-06T19:30:00+08:00"),
    ("十号付", "2024-11-10T10:00:00+08:00"),
    ("五号付", "2024-12-05T10:00:00+08:00"),
    ("11月11号零点付", "2024-11-11T00:00:00+08:00"),
    ("月底吧", "2024-11-30T10:00:00+08:00"),
    ("过两天付", "2024-11-08T10:00:00+08:00"),
    ("后天上午十点", "2024-11-08T10:00:00+08:00"),
])
def test_times_resolve_against_the_call_clock(text: str, iso: str) -> None:
    assert values(text, "time") == [iso]


def test_time_uses_shanghai_whatever_the_clock_zone() -> None:
    utc_now = NOW.astimezone(UTC)
    assert values("明天下午三点", "time", utc_now) == ["2024-11-07T15:00:00+08:00"]
    naive = NOW.replace(tzinfo=None)
    assert values("明天下午三点", "time", naive) == ["2024-11-07T15:00:00+08:00"]


@pytest.mark.parametrize(("text", "amounts"), [
    ("两百九十九", [299]), ("299元", [299]), ("三百块钱", [300]), ("一千二太贵了", [1200]),
    ("九块九包邮吗", [9.9]), ("满三百减五十", [300, 50]), ("定金五十抵一百", [50, 100]), ("付了299", [299]),
    ("1.5万", [15000]),
])
def test_amounts_are_yuan(text: str, amounts: list[object]) -> None:
    assert values(text, "amount") == amounts


@pytest.mark.parametrize(("text", "digits"), [
    ("尾号幺三五七", ["1357"]), ("订单号2023110112345", ["2023110112345"]), ("后四位零一二三", ["0123"]),
    ("一三八一二三四五六七八", ["13812345678"]),
])
def test_digit_strings(text: str, digits: list[str]) -> None:
    assert values(text, "digits") == digits


@pytest.mark.parametrize("text", ["便宜一点", "买两件", "我七十多了能吃吗", "一天吃几粒", "怀孕五个月能用吗"])
def test_no_false_entities(text: str) -> None:
    assert [e for e in extract(text, NOW) if e.entity in ("time", "amount", "digits")] == []


def test_products_from_the_lookup_table() -> None:
    assert values("这个精华孕妇能用吗", "product") == ["精华液"]
    assert values("尿不湿和奶粉", "product") == ["纸尿裤", "奶粉"]
    assert values("dha怎么吃", "product") == ["DHA"]


def test_every_annotated_training_example_is_found() -> None:
    """Each `[text](entity)` annotation in scripts_zh/nlu is extracted as that entity."""
    missed = []
    for ex in load_dir(SCRIPTS_NLU).examples:
        found = extract(ex.text, NOW)
        for ann in ex.annotations:
            if not any(e.entity == ann.entity and e.start < ann.end and ann.start < e.end for e in found):
                missed.append((ex.text, ann.entity, ex.text[ann.start:ann.end]))
    assert missed == []


@pytest.mark.parametrize(("text", "goal"), [
    ("嗯，那我加一下企业微信吧", "add_wecom"), ("好的，我现在就加", "add_wecom"), ("我等下就加", "add_wecom"),
    ("好的我这就去付", "pay"), ("行，我去付一下尾款", "pay"),
    ("我加过了", None), ("我已经加微信了", None), ("已经付定金了", None), ("付了定金", None), ("好的", None),
])
def test_goal(text: str, goal: str | None) -> None:
    found = [e.value for e in extract(text) if e.entity == "goal"]
    assert found == ([goal] if goal else [])


def test_pinyin_grams_make_homophones_share_features() -> None:
    from nlu.ngram import char_ngrams, fuzzy_syllable

    assert fuzzy_syllable("shi") == "si" and fuzzy_syllable("ming") == "min" and fuzzy_syllable("nan") == "lan"
    clean, heard = set(char_ngrams("尾款什么时候付")), set(char_ngrams("伟款啥时候富"))
    assert {"|wei_kuan", "|si_hou", "|hou_fu"} <= clean & heard
