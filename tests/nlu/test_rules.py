"""High-precision rules: they decide compliance intents before (and against) the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.classifier import HuashuClassifier
from nlu.data import NluDataError, load_dir, load_file
from nlu.rules import load_rules

from .conftest import HELD_OUT, SCRIPTS_NLU

RULES = load_rules(SCRIPTS_NLU / "rules.yml")

OPT_OUT = ["别再给我打电话了", "你们再打我就投诉", "把我的号码删了", "我要打12315", "天天打，骚扰电话",
           "我要拉黑你们", "不要再联系我了", "可以，但是以后不要再打了", "嗯嗯，删除我的电话号码"]
# Opt-outs wrapped in words of other intents: the tiny model alone reads them as those intents.
DISGUISED = ["行行行可以可以，把我号码删了吧", "你好你好，我要打12315", "多少钱都不要，拉黑",
             "喂喂，我要报警了", "谢谢再见，别再打来了"]


@pytest.mark.parametrize("text", OPT_OUT + DISGUISED)
def test_opt_out_phrases_are_decided_by_rules(tiny: HuashuClassifier, text: str) -> None:
    parse = tiny.classify(text)
    assert (parse.intent, parse.source, parse.confidence) == ("opt_out", "rule", 1.0)


def test_rules_override_a_model_that_reads_them_otherwise(tiny: HuashuClassifier) -> None:
    """The model alone labels these as affirm/greet/ask_price/thanks_bye; the classifier says opt_out."""
    probs = tiny.probabilities(DISGUISED)
    model_says = [tiny.intents[i] for i in probs.argmax(axis=1)]
    assert sum(m != "opt_out" for m in model_says) >= 3, model_says
    assert [tiny.classify(t).intent for t in DISGUISED] == ["opt_out"] * len(DISGUISED)


@pytest.mark.parametrize(("text", "intent"), [
    ("你是机器人吧", "ask_robot"), ("转人工", "ask_robot"), ("是不是AI在说话", "ask_robot"),
    ("你打错了", "wrong_person"), ("不是我买的", "wrong_person"), ("我不叫这个名字", "wrong_person"),
    ("你们卖假货", "complaint"), ("用了过敏了", "complaint"), ("我要投诉你们的售后", "complaint"),
    ("我要投诉你们", "opt_out"), ("你再打我就投诉", "opt_out"),
])
def test_rule_intents(text: str, intent: str) -> None:
    hit = RULES.match(text)
    assert hit is not None and hit.intent == intent


@pytest.mark.parametrize("text", ["扫地机器人孕妇能用吗", "会不会过敏啊", "我还没买呢", "怎么投诉",
                                  "你晚点再打吧", "要不你明天再打", "便宜一点", "好的", "这个多少钱"])
def test_guards_and_ordinary_sentences_do_not_fire(text: str) -> None:
    assert RULES.match(text) is None


def test_no_rule_contradicts_a_labelled_example() -> None:
    """Precision check over every training and held-out example."""
    wrong = []
    for ex in list(load_dir(SCRIPTS_NLU).examples) + list(load_file(HELD_OUT).examples):
        hit = RULES.match(ex.text)
        if hit is not None and hit.intent != ex.intent:
            wrong.append((ex.text, ex.intent, hit.intent, hit.pattern))
    assert wrong == []


def test_rules_may_only_decide_compliance_intents(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text('version: "3.1"\nnlu:\n- regex: rule_affirm\n  examples: |\n    - 好\n', encoding="utf-8")
    with pytest.raises(NluDataError, match="rules may only decide"):
        load_rules(path)
    assert load_rules(tmp_path / "absent.yml").match("别打了") is None


@pytest.mark.parametrize("text", ["我要拉嘿你们", "把我号马山了", "以后不要再连系我", "退定", "把我电化删了"])
def test_opt_out_rules_hear_homophones_of_their_words(text: str) -> None:
    hit = RULES.match(text)
    assert hit is not None and (hit.intent, hit.name) == ("opt_out", "rule_opt_out~sound")


@pytest.mark.parametrize("text", ["我不要返券", "周末打给我吧", "不要饭", "别反悔啊", "大写还是小写", "我是王女士"])
def test_single_syllables_are_never_heard_as_opt_out_words(text: str) -> None:
    hit = RULES.match(text)
    assert hit is None or hit.intent != "opt_out"


def test_no_sound_match_contradicts_a_labelled_example() -> None:
    examples = list(load_dir(SCRIPTS_NLU).examples) + list(load_file(HELD_OUT).examples)
    wrong = [(e.text, e.intent) for e in examples
             if (hit := RULES.match(e.text)) and hit.name.endswith("~sound") and e.intent != "opt_out"]
    assert wrong == []
