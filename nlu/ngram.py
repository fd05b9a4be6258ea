"""Char n-gram + pinyin n-gram TF-IDF + linear SVM: the fast second opinion in the ensemble.

Telephone ASR mostly errs by sound (尾款→伟款, 删→山, 过敏→过明), so besides character 1–3-grams
every utterance also contributes toneless "fuzzy" pinyin syllable 1–2-grams (zh/z, ch/c, sh/s,
n/l, -ng/-n merged, as Mandarin speakers and recognisers confuse them): a homophone the training
data never saw still lands on the same features.

Trained with scikit-learn; saved as plain arrays (ngram.npz + ngram_vocab.json) and scored with
numpy, so loading the classifier never imports scikit-learn.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nlu.sound import fuzzy_syllable, fuzzy_syllables
from nlu.text import normalize

__all__ = ["NgramModel", "char_ngrams", "fuzzy_syllable", "pinyin_ngrams", "train_ngram"]

NGRAM_RANGE = (1, 3)
PINYIN_RANGE = (1, 2)


def pinyin_ngrams(norm: str) -> list[str]:
    """Fuzzy-pinyin syllable 1–2-grams (prefixed '|') of the Chinese characters in `norm`."""
    syl = fuzzy_syllables(norm)
    lo, hi = PINYIN_RANGE
    return ["|" + "_".join(syl[i:i + n]) for n in range(lo, hi + 1) for i in range(len(syl) - n + 1)]


def char_ngrams(text: str) -> list[str]:
    """Character 1–3-grams of the normalised text with ^/$ boundary marks, plus pinyin n-grams."""
    norm = normalize(text)
    s = "^" + norm + "$"
    lo, hi = NGRAM_RANGE
    grams = [s[i:i + n] for n in range(lo, hi + 1) for i in range(len(s) - n + 1)]
    return [g for g in grams if g not in ("^", "$")] + pinyin_ngrams(norm)


@dataclass(frozen=True)
class NgramModel:
    vocab: dict[str, int]
    idf: np.ndarray  # (V,)
    coef: np.ndarray  # (C, V)
    intercept: np.ndarray  # (C,)

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Sparse l2-normalised sublinear TF-IDF row: (indices, values) — sklearn's transform."""
        counts = Counter(g for g in char_ngrams(text) if g in self.vocab)
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        idx = np.fromiter((self.vocab[g] for g in counts), dtype=np.int64, count=len(counts))
        tf = np.fromiter((1.0 + math.log(c) for c in counts.values()), dtype=np.float64, count=len(counts))
        val = tf * self.idf[idx]
        val /= np.linalg.norm(val)
        return idx, val.astype(np.float32)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.coef.shape[0]), dtype=np.float32)
        for row, text in enumerate(texts):
            idx, val = self.features(text)
            out[row] = self.coef[:, idx] @ val + self.intercept
        return out

    def save(self, directory: Path) -> None:
        np.savez(directory / "ngram.npz", idf=self.idf, coef=self.coef, intercept=self.intercept)
        (directory / "ngram_vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False),
                                                    encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> NgramModel:
        with np.load(directory / "ngram.npz") as z:
            idf, coef, intercept = z["idf"], z["coef"].astype(np.float32), z["intercept"].astype(np.float32)
        vocab = json.loads((directory / "ngram_vocab.json").read_text(encoding="utf-8"))
        if coef.shape[1] != len(vocab) or idf.shape[0] != len(vocab):
            raise ValueError("ngram.npz does not match ngram_vocab.json")
        return cls(vocab, idf, coef, intercept)


def train_ngram(texts: Sequence[str], labels: Sequence[int] | np.ndarray, n_classes: int, *, c: float = 1.0,
                seed: int = 0, min_df: int = 1) -> NgramModel:
    """Fit TF-IDF + linear SVM (liblinear: single-threaded, deterministic, under a second).
    Its margins become probabilities through the temperature fitted on validation."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC
    from threadpoolctl import threadpool_limits

    vec = TfidfVectorizer(analyzer=char_ngrams, sublinear_tf=True, norm="l2", min_df=min_df)
    x = vec.fit_transform(texts)
    clf = LinearSVC(C=c, random_state=seed)
    with threadpool_limits(1):  # OpenMP pools spinning on a busy 2-core box can take minutes
        clf.fit(x, np.asarray(labels))
    coef = np.zeros((n_classes, x.shape[1]), dtype=np.float32)
    intercept = np.full(n_classes, -1e4, dtype=np.float32)  # classes absent from training
    if clf.coef_.shape[0] == 1:  # binary problem: sklearn keeps one row (for classes_[1])
        coef[clf.classes_[1]] = clf.coef_[0]
        intercept[clf.classes_[1]] = clf.intercept_[0]
        coef[clf.classes_[0]] = -clf.coef_[0]
        intercept[clf.classes_[0]] = -clf.intercept_[0]
    else:
        coef[clf.classes_] = clf.coef_
        intercept[clf.classes_] = clf.intercept_
    vocab = {str(k): int(v) for k, v in vec.vocabulary_.items()}
    return NgramModel(vocab, vec.idf_.astype(np.float64), coef, intercept)
