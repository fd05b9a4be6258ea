"""Ensemble combination and temperature scaling (numpy only; fitted on the validation split)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax(z: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(z))


@dataclass(frozen=True, slots=True)
class Calibration:
    """p = softmax((w·log softmax(b / t_bert) + (1−w)·log softmax(n / t_ngram)) / T).

    Each model is first calibrated on its own (the SVM's margins have no probability scale),
    then mixed with weight w, then the mixture gets its own temperature T."""

    weight: float = 0.5
    temperature: float = 1.0
    t_bert: float = 1.0
    t_ngram: float = 1.0

    def mix(self, bert_logits: np.ndarray | None, ngram_logits: np.ndarray | None) -> np.ndarray:
        if bert_logits is None:
            if ngram_logits is None:
                raise ValueError("no model output to combine")
            return log_softmax(ngram_logits / self.t_ngram)
        if ngram_logits is None:
            return log_softmax(bert_logits / self.t_bert)
        return (self.weight * log_softmax(bert_logits / self.t_bert)
                + (1 - self.weight) * log_softmax(ngram_logits / self.t_ngram))

    def combine(self, bert_logits: np.ndarray | None, ngram_logits: np.ndarray | None) -> np.ndarray:
        """Calibrated probabilities (N, C); either model may be absent."""
        return softmax(self.mix(bert_logits, ngram_logits) / self.temperature)


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean())


def fit_temperature(z: np.ndarray, y: np.ndarray) -> float:
    """T minimising validation NLL of softmax(z / T) (golden-section search on log T)."""
    lo, hi = np.log(0.05), np.log(20.0)
    g = (np.sqrt(5) - 1) / 2

    def f(log_t: float) -> float:
        return nll(softmax(z / np.exp(log_t)), y)

    a, b = lo + (1 - g) * (hi - lo), lo + g * (hi - lo)
    fa, fb = f(a), f(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = lo + (1 - g) * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = f(b)
    return float(np.exp((lo + hi) / 2))


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """ECE with equal-width confidence bins."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)


WEIGHT_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def fit(bert_logits: np.ndarray | None, ngram_logits: np.ndarray | None, y: np.ndarray,
        weights: tuple[float, ...] = WEIGHT_GRID) -> Calibration:
    """Per-model temperatures, then the ensemble weight (validation accuracy, then NLL), then the
    mixture's temperature — all on the validation split."""
    t_b = fit_temperature(bert_logits, y) if bert_logits is not None else 1.0
    t_n = fit_temperature(ngram_logits, y) if ngram_logits is not None else 1.0
    if bert_logits is None or ngram_logits is None:
        w = 1.0 if bert_logits is not None else 0.0
        return Calibration(w, 1.0, t_b, t_n)
    best: tuple[float, float, Calibration] | None = None
    for w in weights:
        base = Calibration(w, 1.0, t_b, t_n)
        z = base.mix(bert_logits, ngram_logits)
        t = fit_temperature(z, y)
        p = softmax(z / t)
        key = (-float((p.argmax(axis=1) == y).mean()), nll(p, y))
        if best is None or key < best[:2]:
            best = (key[0], key[1], Calibration(w, t, t_b, t_n))
    assert best is not None
    return best[2]
