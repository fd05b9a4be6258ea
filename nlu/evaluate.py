"""Held-out evaluation: accuracy, per-intent precision/recall/F1, confusion matrix (PNG + HTML),
calibration and threshold behaviour, compliance checks and the context-prior gain."""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.parse import ClassifyContext, Parse
from nlu.calibrate import expected_calibration_error
from nlu.classifier import CONFIDENCE_THRESHOLD, HuashuClassifier
from nlu.data import Example

ASK_PREFIX = "ask_"


@dataclass(frozen=True, slots=True)
class IntentScore:
    intent: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class ContextGain:
    n: int
    accuracy_without: float
    accuracy_with: float
    accepted_correct_without: float  # correct AND confidence ≥ threshold
    accepted_correct_with: float
    gold_not_expected_kept: str  # "k/n": utterances whose gold is outside the prior, still right


@dataclass(frozen=True, slots=True)
class EvalReport:
    title: str
    n: int
    accuracy: float
    macro_f1: float
    per_intent: tuple[IntentScore, ...]
    labels: tuple[str, ...]
    confusion: list[list[int]]
    threshold: float
    coverage: float  # share with confidence ≥ threshold
    accuracy_above_threshold: float
    confident_wrong: float  # share of ALL utterances that are wrong with confidence ≥ threshold
    ece: float
    opt_out_recall: float
    opt_out_false_positives: tuple[str, ...]  # affirm/ask_* utterances labelled opt_out
    sources: dict[str, int]
    errors: tuple[tuple[str, str, str, float, str], ...]  # text, gold, predicted, confidence, source
    context: ContextGain | None = None
    extra: dict[str, float] = field(default_factory=dict)


def _scores(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> tuple[IntentScore, ...]:
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, s = precision_recall_fscore_support(gold, pred, labels=list(labels), zero_division=0)
    return tuple(IntentScore(lab, float(pi), float(ri), float(fi), int(si))
                 for lab, pi, ri, fi, si in zip(labels, p, r, f, s, strict=True))


def evaluate(classifier: HuashuClassifier, examples: Sequence[Example], *, title: str = "held-out",
             threshold: float = CONFIDENCE_THRESHOLD) -> EvalReport:
    """Score `examples`. Context-tagged ones (metadata.expected_intents) form the context subset;
    the others are the main set, classified without context."""
    from sklearn.metrics import confusion_matrix

    main = [e for e in examples if not e.expected_intents]
    tagged = [e for e in examples if e.expected_intents]
    if not main:
        raise ValueError("no untagged examples to evaluate")
    parses = classifier.classify_batch([e.text for e in main])
    gold = [e.intent for e in main]
    pred = [p.intent for p in parses]
    conf = np.array([p.confidence for p in parses])
    correct = np.array([g == p for g, p in zip(gold, pred, strict=True)])
    labels = tuple(i for i in classifier.intents if i in set(gold) | set(pred))
    per_intent = _scores(gold, pred, labels)
    cm = confusion_matrix(gold, pred, labels=list(labels))
    above = conf >= threshold
    model_probs = classifier.probabilities([e.text for e in main])
    index = {n: i for i, n in enumerate(classifier.intents)}
    known = [i for i, e in enumerate(main) if e.intent in index]
    ece = expected_calibration_error(model_probs[known], np.array([index[main[i].intent] for i in known]))
    opt_gold = [i for i, g in enumerate(gold) if g == "opt_out"]
    fps = tuple(main[i].text for i, (g, p) in enumerate(zip(gold, pred, strict=True))
                if p == "opt_out" and (g == "affirm" or g.startswith(ASK_PREFIX)))
    errors = tuple((e.text, e.intent, p.intent, round(p.confidence, 3), p.source)
                   for e, p in zip(main, parses, strict=True) if p.intent != e.intent)
    return EvalReport(
        title=title, n=len(main), accuracy=float(correct.mean()),
        macro_f1=float(np.mean([s.f1 for s in per_intent if s.support])),
        per_intent=per_intent, labels=labels, confusion=cm.tolist(), threshold=threshold,
        coverage=float(above.mean()),
        accuracy_above_threshold=float(correct[above].mean()) if above.any() else 0.0,
        confident_wrong=float((~correct & above).mean()), ece=ece,
        opt_out_recall=float(np.mean([pred[i] == "opt_out" for i in opt_gold])) if opt_gold else 1.0,
        opt_out_false_positives=fps, sources=dict(Counter(p.source for p in parses)), errors=errors,
        context=_context_gain(classifier, tagged, threshold) if tagged else None,
    )


def _context_gain(classifier: HuashuClassifier, tagged: Sequence[Example], threshold: float) -> ContextGain:
    texts = [e.text for e in tagged]
    without = classifier.classify_batch(texts)
    with_ctx = classifier.classify_batch(texts, [ClassifyContext(e.expected_intents) for e in tagged])

    def acc(ps: list[Parse]) -> float:
        return float(np.mean([p.intent == e.intent for p, e in zip(ps, tagged, strict=True)]))

    def accepted(ps: list[Parse]) -> float:
        return float(np.mean([p.intent == e.intent and p.confidence >= threshold
                              for p, e in zip(ps, tagged, strict=True)]))

    outside = [i for i, e in enumerate(tagged) if e.intent not in e.expected_intents]
    kept = sum(with_ctx[i].intent == tagged[i].intent for i in outside)
    return ContextGain(len(tagged), acc(without), acc(with_ctx), accepted(without), accepted(with_ctx),
                       f"{kept}/{len(outside)}")


def write_artifacts(report: EvalReport, out_dir: str | Path) -> list[Path]:
    """confusion.png, report.html and report.json under `out_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cm = np.array(report.confusion)
    fig, ax = plt.subplots(figsize=(11, 10))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(report.labels)), report.labels, rotation=70, ha="right", fontsize=8)
    ax.set_yticks(range(len(report.labels)), report.labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(f"{report.title}: accuracy {report.accuracy:.3f} (n={report.n})")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    fig.tight_layout()
    png = out / "confusion.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    page = out / "report.html"
    page.write_text(_html(report), encoding="utf-8")
    data = out / "report.json"
    data.write_text(json.dumps(asdict(report), ensure_ascii=False, indent=2), encoding="utf-8")
    return [png, page, data]


def _html(r: EvalReport) -> str:
    e = html.escape
    rows = "".join(f"<tr><td>{e(s.intent)}</td><td>{s.precision:.3f}</td><td>{s.recall:.3f}</td>"
                   f"<td>{s.f1:.3f}</td><td>{s.support}</td></tr>" for s in r.per_intent)
    head = "".join(f"<th>{e(lab)}</th>" for lab in r.labels)
    cm_rows = "".join(
        f"<tr><th>{e(lab)}</th>" + "".join(f"<td{' class=d' if i == j else ''}>{v or ''}</td>"
                                             for j, v in enumerate(row)) + "</tr>"
        for i, (lab, row) in enumerate(zip(r.labels, r.confusion, strict=True)))
    errs = "".join(f"<tr><td>{e(t)}</td><td>{e(g)}</td><td>{e(p)}</td><td>{c:.2f}</td><td>{e(s)}</td></tr>"
                   for t, g, p, c, s in r.errors)
    ctx = ""
    if r.context:
        c = r.context
        ctx = (f"<h2>Context prior (n={c.n})</h2><p>accuracy without {c.accuracy_without:.3f} → with "
               f"{c.accuracy_with:.3f}; correct and confident without {c.accepted_correct_without:.3f} → "
               f"with {c.accepted_correct_with:.3f}; gold outside the prior kept {e(c.gold_not_expected_kept)}</p>")
    return f"""<!doctype html><meta charset="utf-8"><title>NLU evaluation: {e(r.title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 6px;border:1px solid #ccc;font-size:12px}}
table{{border-collapse:collapse}}.d{{background:#cde}}</style>
<h1>NLU evaluation: {e(r.title)}</h1>
<p>n={r.n} · accuracy <b>{r.accuracy:.4f}</b> · macro-F1 {r.macro_f1:.4f} · ECE {r.ece:.4f} ·
threshold {r.threshold}: coverage {r.coverage:.3f}, accuracy above {r.accuracy_above_threshold:.4f},
confident-wrong {r.confident_wrong:.4f} · opt_out recall {r.opt_out_recall:.3f},
affirm/ask_* labelled opt_out: {len(r.opt_out_false_positives)}</p>
<img src="confusion.png" alt="confusion matrix" style="max-width:900px">
<h2>Per intent</h2><table><tr><th>intent</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>{rows}</table>
{ctx}
<h2>Confusion matrix (rows gold, columns predicted)</h2><table><tr><th></th>{head}</tr>{cm_rows}</table>
<h2>Errors</h2><table><tr><th>text</th><th>gold</th><th>predicted</th><th>confidence</th><th>source</th></tr>{errs}</table>
"""
