"""The ASR-noise generator: reproducible, realistic operations, the committed noisy copy."""

from __future__ import annotations

import random

from core.settings import Settings
from nlu.augment import AsrNoise, NoiseTable, dump_rasa, noisy_copy
from nlu.data import load_dir, load_file

from .conftest import HELD_OUT, HELD_OUT_NOISY, SCRIPTS_NLU


def _noise(**kw: float) -> AsrNoise:
    return AsrNoise(NoiseTable.from_data(load_dir(SCRIPTS_NLU)), **kw)


def test_table_is_read_from_the_data() -> None:
    table = NoiseTable.from_data(load_dir(SCRIPTS_NLU))
    for word, wrong in (("加", "家"), ("微信", "威信"), ("电话", "点话"), ("投诉", "头诉"), ("尾款", "为款")):
        assert wrong in table.homophones[word]
    assert "那个" in table.fillers
    assert "精华" not in table.homophones  # product synonyms are not ASR confusions


def test_same_seed_same_noise_and_salts_differ() -> None:
    noise = _noise()
    a = noise.variants("我加了你们的微信，尾款明天付", 3, seed=1)
    assert a == noise.variants("我加了你们的微信，尾款明天付", 3, seed=1)
    assert a != noise.variants("我加了你们的微信，尾款明天付", 3, seed=1, salt="heldout")
    assert len(set(a)) == 3


def test_operations_homophones_punctuation_drop_repeat_filler() -> None:
    sure = _noise(p_homophone_word=1.0, p_homophone_char=1.0, p_drop=0.0, p_repeat=0.0, p_filler=0.0)
    out = sure.noisy("我要投诉，加微信！", random.Random(0))
    assert "投诉" not in out and "微信" not in out and "，" not in out and "！" not in out
    drop = _noise(p_homophone_word=0, p_homophone_char=0, p_drop=1.0, p_repeat=0, p_filler=0)
    assert len(drop.noisy("明天下午付款", random.Random(0))) == 5
    rep = _noise(p_homophone_word=0, p_homophone_char=0, p_drop=0, p_repeat=1.0, p_filler=0)
    assert len(rep.noisy("明天下午付款", random.Random(0))) in (7, 8)
    fill = _noise(p_homophone_word=0, p_homophone_char=0, p_drop=0, p_repeat=0, p_filler=1.0)
    out = fill.noisy("明天付", random.Random(3))
    assert any(f in out for f in ("嗯", "啊", "呃", "那个", "就是", "这个", "哎", "然后", "那啥"))


def test_noisy_copy_never_returns_the_clean_text() -> None:
    noise = _noise()
    held = [e for e in load_file(HELD_OUT).examples if len(e.text) > 1]
    noisy = noisy_copy(held, noise, seed=7)
    assert all(n.text != c.text for n, c in zip(noisy, held, strict=True))
    assert [n.intent for n in noisy] == [c.intent for c in held]


def test_committed_noisy_held_out_copy_is_reproducible() -> None:
    """tests/data/nlu_test_noisy.yml is exactly what `huashu nlu augment` generates (seed 7)."""
    from huashu.cli.nlu import NOISE_SEED, _noisy

    held = list(load_file(HELD_OUT).examples)
    regenerated = _noisy(Settings(), held)
    committed = load_file(HELD_OUT_NOISY).examples
    assert [(e.text, e.intent, e.expected_intents) for e in committed] == \
           [(e.text, e.intent, e.expected_intents) for e in regenerated]
    assert NOISE_SEED == 7
    assert dump_rasa(regenerated).startswith('version: "3.1"')


def test_generic_sound_noise_writes_everyday_homophones() -> None:
    from nlu.sound import fuzzy

    quiet = AsrNoise(NoiseTable({}, ()), p_sound=1.0, p_drop=0, p_repeat=0, p_filler=0)
    rng = random.Random(3)
    text = "明天下午去付尾款"
    for _ in range(20):
        out = quiet.noisy(text, rng)
        assert len(out) == len(text) and out != text
        assert [fuzzy(c) for c in out] == [fuzzy(c) for c in text]  # the same sound, other characters
    off = AsrNoise(NoiseTable({}, ()), p_drop=0, p_repeat=0, p_filler=0)  # p_sound 0: set 1's generator
    assert all(c in text for c in off.noisy(text, random.Random(3)))
