"""Character error rate, the usual measure for Chinese ASR (after asr.normalize on both sides)."""

from __future__ import annotations

from asr.normalize import normalize_text


def edit_distance(ref: str, hyp: str) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def cer_counts(ref: str, hyp: str) -> tuple[int, int]:
    """(edits, reference length) after normalising both sides; spaces do not count."""
    r = normalize_text(ref).replace(" ", "")
    h = normalize_text(hyp).replace(" ", "")
    return edit_distance(r, h), len(r)


def corpus_cer(pairs: list[tuple[str, str]]) -> float:
    """Total edits / total reference characters over (reference, hypothesis) pairs."""
    edits = chars = 0
    for ref, hyp in pairs:
        e, n = cer_counts(ref, hyp)
        edits, chars = edits + e, chars + n
    return edits / chars if chars else 0.0
