"""Train the intent model from scripts_zh/nlu/ into a model directory (atomically).

Pipeline: stratified train/validation split (seeded) → ASR-noise augmentation of the training
split → char n-gram model and from-scratch BERT → ensemble weight and temperature fitted on the
validation split (clean + noisy) → meta.json with the data hash that keys the cache.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.vocab import INTENTS
from nlu.augment import AsrNoise, NoiseTable
from nlu.calibrate import WEIGHT_GRID, Calibration, expected_calibration_error, fit
from nlu.config import TrainConfig
from nlu.data import Example, NluData, data_hash, load_dir
from nlu.text import normalize

META_FILE = "meta.json"
MODEL_FORMAT = 1

# progress(stage, done, total): stage is a short human label.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class TrainReport:
    n_examples: int
    n_train: int
    n_val: int
    val_accuracy: dict[str, float]  # bert / ngram / ensemble on the validation split
    weight: float
    temperature: float
    val_ece_before: float
    val_ece_after: float
    seconds: float
    data_hash: str


def split(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Stratified split: `fraction` of each intent (at least 1 when it has ≥ 5) to validation."""
    by_intent: dict[str, list[Example]] = {}
    for ex in examples:
        by_intent.setdefault(ex.intent, []).append(ex)
    train, val = [], []
    rng = random.Random(seed)
    for intent in sorted(by_intent):
        items = sorted(by_intent[intent], key=lambda e: e.text)
        rng.shuffle(items)
        k = max(1, round(len(items) * fraction)) if len(items) >= 5 else 0
        val += items[:k]
        train += items[k:]
    return train, val


def augment(examples: Sequence[Example], noise: AsrNoise, n: int, seed: int, salt: str
            ) -> tuple[list[str], list[str]]:
    """Originals plus up to n noisy variants each, de-duplicated on normalised text."""
    texts, labels, seen = [], [], set()
    for ex in examples:
        for t in [ex.text, *noise.variants(ex.text, n, seed=seed, salt=salt)]:
            key = (normalize(t), ex.intent)
            if key[0] and key not in seen:
                seen.add(key)
                texts.append(t)
                labels.append(ex.intent)
    return texts, labels


def background(texts: Sequence[str], n: int, seed: int) -> list[str]:
    """Random strings drawn from the training characters' frequencies: without them the model has
    no "none of the above" and reads garbage such as 的的的 as a confident business intent."""
    rng = random.Random(f"{seed}:background")
    norm = [normalize(t) for t in texts]
    chars = [c for t in norm for c in t]
    known = set(norm)
    # Stutter garbage (的的的的) too, but not of characters that are doubled somewhere in the
    # data (嗯嗯 affirm, 对对 affirm, 喂喂 greet, 谢谢, 拜拜): their stutter is a real answer.
    repeaters = {a for t in norm for a, b in itertools.pairwise(t) if a == b}
    stutter = [c for c in chars if c not in repeaters]  # frequency-weighted: 的 more than 龥
    out: list[str] = []
    while chars and len(out) < n:
        r = rng.random()
        if stutter and r < 0.25:
            s = rng.choice(stutter) * rng.randint(3, 5)
        elif stutter and r < 0.35:
            s = (rng.choice(stutter) + rng.choice(stutter)) * rng.randint(2, 3)
        else:
            s = "".join(rng.choice(chars) for _ in range(rng.randint(3, 8)))
        if s not in known:
            out.append(s)
    return out


def train_model(nlu_dir: str | Path, out_dir: str | Path, config: TrainConfig = TrainConfig(),
                progress: Progress | None = None) -> TrainReport:
    """Train from the Rasa files in `nlu_dir` and replace `out_dir` atomically."""
    started = time.perf_counter()
    nlu_dir, out_dir = Path(nlu_dir), Path(out_dir)
    data = load_dir(nlu_dir, training_only=True)
    examples = [e for e in data.examples if not e.expected_intents]
    labels = tuple(i for i in INTENTS if any(e.intent == i for e in examples))
    if len(labels) < 2:
        raise ValueError(f"{nlu_dir}: need examples of at least two intents to train")
    index = {name: i for i, name in enumerate(labels)}
    noise = AsrNoise(NoiseTable.from_data(data), p_sound=config.p_sound)

    train_ex, val_ex = split(examples, config.val_fraction, config.seed)
    x_train, y_train_names = augment(train_ex, noise, config.n_aug, config.seed, "train")
    x_bert, y_bert_names = augment(train_ex, noise, min(config.bert_aug, config.n_aug), config.seed, "train")
    x_val, y_val_names = augment(val_ex, noise, 1, config.seed, "val")
    garbage: list[str] = []
    if "out_of_scope" in index and config.n_background:
        garbage = background(x_train, config.n_background, config.seed)
        x_train, x_bert = x_train + garbage, x_bert + garbage
        y_train_names += ["out_of_scope"] * len(garbage)
        y_bert_names += ["out_of_scope"] * len(garbage)
    y_train = np.array([index[n] for n in y_train_names])
    y_bert = np.array([index[n] for n in y_bert_names])
    y_val = np.array([index[n] for n in y_val_names])

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        bert_val = ngram_val = None
        if config.use_ngram:
            from nlu.ngram import train_ngram

            if progress:
                progress("n-gram model", 0, 1)
            ngram = train_ngram(x_train, y_train, len(labels), c=config.ngram_c, seed=config.seed,
                                min_df=config.ngram_min_df)
            ngram.save(tmp)
            ngram_val = ngram.logits(x_val)
            if progress:
                progress("n-gram model", 1, 1)
        if config.use_bert:
            from nlu.bert import train_bert

            def bert_progress(done: int, total: int) -> None:
                if progress:
                    progress("transformer", done, total)

            bert = train_bert(x_bert, y_bert, labels, tmp, spec=config.bert, seed=config.seed,
                              threads=config.threads, progress=bert_progress,
                              vocab_texts=[e.text for e in train_ex])
            bert_val = bert.logits(x_val)
        grid = tuple(w for w in WEIGHT_GRID if w <= config.max_bert_weight + 1e-9)
        calib = fit(bert_val, ngram_val, y_val, grid) if len(y_val) else Calibration()
        if config.use_ngram and config.refit_ngram and val_ex:
            # The weight and temperatures are fitted; the n-gram model (a second to train) then
            # learns from the validation examples too, noised like the training split.
            x_all, y_all_names = augment([*train_ex, *val_ex], noise, config.n_aug, config.seed, "train")
            if "out_of_scope" in index and config.n_background:
                x_all += garbage
                y_all_names += ["out_of_scope"] * len(garbage)
            ngram = train_ngram(x_all, np.array([index[n] for n in y_all_names]), len(labels),
                                c=config.ngram_c, seed=config.seed, min_df=config.ngram_min_df)
            ngram.save(tmp)
        report = _report(data, nlu_dir, examples, x_train, y_val, bert_val, ngram_val, calib, started)
        meta = {
            "format": MODEL_FORMAT, "data_hash": report.data_hash, "intents": list(labels),
            "weight": calib.weight, "temperature": calib.temperature, "t_bert": calib.t_bert,
            "t_ngram": calib.t_ngram,
            "models": [m for m, on in (("bert", config.use_bert), ("ngram", config.use_ngram)) if on],
            "config": asdict(config), "report": asdict(report),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def _report(data: NluData, nlu_dir: Path, examples: list[Example], x_train: list[str], y_val: np.ndarray,
            bert_val: np.ndarray | None, ngram_val: np.ndarray | None, calib: Calibration,
            started: float) -> TrainReport:
    acc: dict[str, float] = {}
    for name, logits in (("bert", bert_val), ("ngram", ngram_val)):
        if logits is not None and len(y_val):
            acc[name] = float((logits.argmax(axis=1) == y_val).mean())
    ece_before = ece_after = 0.0
    if len(y_val):
        probs = calib.combine(bert_val, ngram_val)
        acc["ensemble"] = float((probs.argmax(axis=1) == y_val).mean())
        raw = Calibration(calib.weight).combine(bert_val, ngram_val)  # uncalibrated mixture
        ece_before = expected_calibration_error(raw, y_val)
        ece_after = expected_calibration_error(probs, y_val)
    return TrainReport(len(examples), len(x_train), len(y_val), acc, calib.weight, calib.temperature,
                       ece_before, ece_after, round(time.perf_counter() - started, 1), data_hash(nlu_dir))
