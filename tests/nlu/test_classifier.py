"""The classifier on a real (tiny) trained model: intents, context prior, Rasa shape, model-dir
errors, caching by data hash, determinism."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from core.parse import ClassifyContext, IntentClassifier, Parse
from core.settings import Settings
from nlu import CONFIDENCE_THRESHOLD, NluModelError, load_classifier
from nlu.classifier import HuashuClassifier, classifier_from_dir, clauses, ensure_model, model_status, rule_clauses
from nlu.data import data_hash
from nlu.rules import load_rules
from nlu.train import train_model

from .conftest import SCRIPTS_NLU, TINY, make_scripts


@pytest.mark.parametrize(("text", "intent"), [
    ("喂，你好啊", "greet"), ("这个多少钱啊", "ask_price"), ("我正在开车呢", "busy"),
    ("我不需要这个", "deny"), ("好的呀", "affirm"), ("谢谢，再见啦", "thanks_bye"),
])
def test_tiny_model_classifies_real_sentences(tiny: HuashuClassifier, text: str, intent: str) -> None:
    parse = tiny.classify(text)
    assert parse.intent == intent, parse.ranking[:3]
    assert parse.source == "model"
    assert parse.ranking[0] == (parse.intent, parse.confidence)
    assert abs(sum(c for _, c in tiny.classify(text).ranking) - 1.0) < 0.05  # probabilities (top 10 of 8)


def test_is_an_intent_classifier_and_batch_matches_single(tiny: HuashuClassifier) -> None:
    assert isinstance(tiny, IntentClassifier)
    texts = ["喂你好", "多少钱", "别打了", "我在开会"]
    batch = tiny.classify_batch(texts)
    for text, parse in zip(texts, batch, strict=True):
        single = tiny.classify(text)
        assert (single.intent, single.source) == (parse.intent, parse.source)
        assert single.confidence == pytest.approx(parse.confidence, abs=1e-5)


def test_rasa_parse_shape_with_entities(tiny: HuashuClassifier) -> None:
    now = datetime(2024, 11, 6, 10, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    parse = tiny.classify("明天下午三点再打吧", ClassifyContext((), now))
    rasa = json.loads(json.dumps(parse.to_rasa(), ensure_ascii=False))
    assert set(rasa) == {"text", "intent", "intent_ranking", "entities"}
    assert set(rasa["intent"]) == {"name", "confidence"}
    assert rasa["entities"] == [{"entity": "time", "value": "2024-11-07T15:00:00+08:00", "start": 0, "end": 6,
                                 "extractor": "huashu.entities"}]


def test_context_prior_lifts_expected_intents_without_forcing_them(tiny: HuashuClassifier) -> None:
    yes_no = ClassifyContext(("affirm", "deny"))
    plain = tiny.classify("嗯")
    lifted = tiny.classify("嗯", yes_no)
    assert lifted.intent == "affirm"
    assert lifted.confidence > dict(plain.ranking).get("affirm", 0.0)
    assert lifted.confidence >= CONFIDENCE_THRESHOLD
    # A clear answer outside the prior keeps its intent; rules still win.
    assert tiny.classify("这个多少钱啊", yes_no).intent == "ask_price"
    assert tiny.classify("别再打了", yes_no).source == "rule"


def test_empty_text_is_never_confident(tiny: HuashuClassifier) -> None:
    parse = tiny.classify("  ，。 ")
    assert parse.confidence < CONFIDENCE_THRESHOLD


def test_missing_model_dir_raises_naming_the_path(fixture_scripts: Path, tmp_path: Path) -> None:
    target = tmp_path / "no-model"
    settings = Settings(scripts_dir=str(fixture_scripts), nlu_model_dir=str(target))
    with pytest.raises(NluModelError) as exc:
        load_classifier(settings, train_if_missing=False)
    assert str(target) in str(exc.value) and "huashu nlu train" in str(exc.value)


@pytest.mark.parametrize("damage", ["garbage_meta", "no_meta", "missing_weights", "truncated_weights",
                                    "missing_vocab"])
def test_corrupt_model_dir_raises_naming_the_path(tiny_model_dir: Path, fixture_scripts: Path, tmp_path: Path,
                                                  damage: str) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    if damage == "garbage_meta":
        (broken / "meta.json").write_text("{not json", encoding="utf-8")
    elif damage == "no_meta":
        (broken / "meta.json").unlink()
    elif damage == "missing_weights":
        (broken / "model.safetensors").unlink()
    elif damage == "truncated_weights":
        data = (broken / "model.safetensors").read_bytes()
        (broken / "model.safetensors").write_bytes(data[: len(data) // 3])
    else:
        (broken / "vocab.txt").unlink()
    settings = Settings(scripts_dir=str(fixture_scripts), nlu_model_dir=str(broken))
    for train in (False, True):  # a corrupt directory is reported, never silently replaced
        with pytest.raises(NluModelError) as exc:
            load_classifier(settings, train_if_missing=train)
        assert str(broken) in str(exc.value)


def test_stale_model_is_refused_without_training(tiny_model_dir: Path, tmp_path: Path) -> None:
    scripts = make_scripts(tmp_path / "scripts")
    fixture = scripts / "nlu" / "fixture_nlu.yml"
    fixture.write_text(fixture.read_text(encoding="utf-8") + "    - 谢谢啦\n", encoding="utf-8")
    assert model_status(tiny_model_dir, data_hash(scripts / "nlu")) == "stale"
    settings = Settings(scripts_dir=str(scripts), nlu_model_dir=str(tiny_model_dir))
    with pytest.raises(NluModelError, match="stale"):
        load_classifier(settings, train_if_missing=False)


def test_load_classifier_uses_a_trained_dir_and_caches(tiny_settings: Settings) -> None:
    first = load_classifier(tiny_settings, train_if_missing=False)
    assert load_classifier(tiny_settings, train_if_missing=False) is first


@pytest.mark.slow
def test_missing_model_is_trained_first(tmp_path: Path) -> None:
    scripts = make_scripts(tmp_path / "scripts")
    target = tmp_path / "model"
    calls: list[tuple[str, int, int]] = []
    ensure_model(scripts / "nlu", target, config=TINY, progress=lambda s, d, t: calls.append((s, d, t)))
    assert model_status(target, data_hash(scripts / "nlu")) == "ok"
    assert any(stage == "transformer" and done == total for stage, done, total in calls)
    settings = Settings(scripts_dir=str(scripts), nlu_model_dir=str(target))
    assert load_classifier(settings, train_if_missing=False).classify("多少钱").intent == "ask_price"


@pytest.mark.slow
def test_training_is_deterministic(fixture_scripts: Path, tiny: HuashuClassifier, tmp_path: Path) -> None:
    again = tmp_path / "again"
    train_model(fixture_scripts / "nlu", again, TINY)
    other = classifier_from_dir(again, fixture_scripts / "nlu")
    texts = ["喂你好", "多少钱啊", "我在开会", "嗯"]
    np.testing.assert_allclose(other.probabilities(texts), tiny.probabilities(texts), atol=1e-5)


def test_traced_transformer_matches_the_eager_model(tiny: HuashuClassifier) -> None:
    from nlu.bert import BertIntentModel

    bert = tiny._bert
    assert bert is not None and bert._traced is not None
    eager = BertIntentModel(bert.model, bert.tokenizer, bert.max_len, bert.sounds)
    texts = ["喂你好", "明天下午三点再打吧", "嗯", "别再打了，我要投诉你们的售后服务太差了"]
    np.testing.assert_allclose(bert.logits(texts), eager.logits(texts), atol=1e-5)
    for t in texts:
        np.testing.assert_allclose(bert.logits([t]), eager.logits([t]), atol=1e-5)


@pytest.mark.parametrize(("text", "parts"), [
    ("可以，那运费谁出？", ["可以", "那运费谁出"]),
    ("可以那运费谁出", ["可以", "运费谁出"]),  # no punctuation: a leading yes/no word splits
    ("好的那多久能到", ["好的", "多久能到"]),
    ("行那包邮吗", ["行", "包邮吗"]),
    ("行李箱能装下吗", []),
    ("喂，你好，哪位？", ["喂", "你好", "哪位"]),
    ("好的", []), ("好的谢谢", []), ("不用了吧", []), ("可以的呀", []),
    # no punctuation: a sentence-final particle with more after it ends a clause
    ("好的发我链接吧多少钱", ["好的", "发我链接吧", "多少钱"]),
    ("嗯可以那定金能退吗", ["可以", "定金能退吗"]),  # a filler before the yes word
    ("去网吧玩", []), ("你说吧", []), ("好吧", []), ("哈喽哈喽你好", []),
])
def test_clauses(text: str, parts: list[str]) -> None:
    assert clauses(text) == parts


@pytest.mark.parametrize(("text", "parts"), [
    ("买的面霜有问题以后别打了", ["买的面霜有问题", "以后别打了"]),
    ("以后别打了东西质量太差", ["以后别打了", "东西质量太差"]),
    ("不要再打电话了", []),  # the rule's match is the whole utterance
    ("别打了啊", []),  # one or two characters beside it belong to its clause
    ("明天下午三点再打吧", []),  # no rule
])
def test_a_rule_match_is_a_clause_of_its_own(text: str, parts: list[str]) -> None:
    rules = load_rules(SCRIPTS_NLU / "rules.yml")
    assert rule_clauses(text, rules) == parts


def test_two_answer_words_are_never_intent_and_secondary(tiny: HuashuClassifier) -> None:
    for text in ("行吧我考虑一下", "好吧不用了", "可以那谢谢啊"):
        parse = tiny.classify(text)
        assert not (parse.intent in ("affirm", "deny", "thanks_bye") and parse.secondary
                    and parse.secondary[0] in ("affirm", "deny", "thanks_bye")), parse


def test_transformer_reads_each_character_with_its_sound(tiny: HuashuClassifier) -> None:
    bert = tiny._bert
    assert bert is not None and bert.sounds is not None
    same = bert._encode(["是前", "事钱"])["token_type_ids"]  # shi qian, written two ways
    assert same[0].tolist() == same[1].tolist() and same[0, 1] > 1
    types = bert._encode(["ok好"])["token_type_ids"][0].tolist()
    assert types[:3] == [0, 0, 0] and types[3] > 1 and types[4:] == [0]  # [CLS] o ##k 好 [SEP]
    unknown = bert._encode(["龘"])  # not in the vocabulary: [UNK], but its sound still counts
    assert unknown["input_ids"][0, 1] == bert.tokenizer.unk_token_id and unknown["token_type_ids"][0, 1] > 1


def test_secondary_intent_is_an_addition_to_the_rasa_shape() -> None:
    plain = Parse("好的", "affirm", 0.9).to_rasa()
    assert "secondary_intent" not in plain
    both = Parse("可以，那运费谁出？", "affirm", 0.9, secondary=("ask_logistics", 0.8)).to_rasa()
    assert both["secondary_intent"] == {"name": "ask_logistics", "confidence": 0.8}
    assert {k: v for k, v in both.items() if k != "secondary_intent"} == {**plain, "text": both["text"]}


def test_rules_give_the_second_intent_but_catch_alls_do_not(tiny: HuashuClassifier) -> None:
    both = tiny.classify("我要投诉你们泄露我信息")
    assert {both.intent, both.secondary[0] if both.secondary else None} == {"opt_out", "complaint"}
    quality = tiny.classify("质量太差了，我要投诉")
    # 投诉 alone is no opt-out (the tiny model may hear something else in 我要投诉; never opt_out)
    assert quality.intent == "complaint" and (quality.secondary or ("",))[0] != "opt_out"
