"""`huashu nlu train | classify | evaluate | augment`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from huashu.cli._lazy import Settings, Table, console
from huashu.cli.times import instant

if TYPE_CHECKING:
    from nlu.classifier import HuashuClassifier
    from nlu.data import Example, NluData

err = console(stderr=True)
out = console()

nlu_app = typer.Typer(help="Intent recognition: train the model, classify text, evaluate on a test file.",
                      no_args_is_help=True)

NOISE_SEED = 7  # the seed of tests/data/nlu_test_noisy.yml
ModelOpt = Annotated[Path | None, typer.Option(
    "--model", help="Model directory (default: HUASHU_NLU_MODEL_DIR or <data dir>/nlu-model).")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(message, style="red", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _nlu_dir(settings: Settings) -> Path:
    return Path(settings.effective_scripts_dir) / "nlu"


def _classifier(settings: Settings, model: Path | None, *, train_if_missing: bool = True) -> HuashuClassifier:
    """The classifier; trains it first (progress bar on stderr) when missing or stale."""
    from nlu.classifier import NluModelError, load_classifier

    if model is not None:
        settings = settings.model_copy(update={"nlu_model_dir": str(model)})
    try:
        return load_classifier(settings, train_if_missing=train_if_missing)
    except NluModelError as exc:
        raise _fail(str(exc), 2) from None


def _load_examples(path: Path) -> NluData:
    from nlu.data import NluDataError, load_file

    if not path.is_file():
        raise _fail(f"{path}: no such file")
    try:
        data = load_file(path)
    except NluDataError as exc:
        raise _fail(str(exc)) from None
    if not data.examples:
        raise _fail(f"{path}: no intent examples")
    return data


@nlu_app.command("train")
def train(
    out_dir: Annotated[Path | None, typer.Option("--out", help="Where to write the model "
                                                 "(default: HUASHU_NLU_MODEL_DIR or <data dir>/nlu-model).")] = None,
    threads: Annotated[int, typer.Option(help="CPU threads for the transformer.")] = 2,
    seed: Annotated[int, typer.Option(help="Random seed (training is deterministic per seed).")] = 13,
) -> None:
    """Train the intent model from scripts_zh/nlu/ (Rasa 3 format)."""
    from nlu.config import TrainConfig
    from nlu.data import NluDataError
    from nlu.progress import stderr_progress
    from nlu.train import train_model

    settings = Settings()
    target = out_dir or settings.effective_nlu_model_dir
    try:
        with stderr_progress() as bar:
            report = train_model(_nlu_dir(settings), target, TrainConfig(seed=seed, threads=threads), bar)
    except (NluDataError, ValueError) as exc:
        raise _fail(str(exc)) from None
    acc = ", ".join(f"{k} {v:.3f}" for k, v in report.val_accuracy.items())
    out.print(f"model written to {target}")
    out.print(f"{report.n_examples} examples → {report.n_train} training texts (with ASR noise), "
              f"{report.n_val} validation texts; validation accuracy: {acc}")
    out.print(f"ensemble weight {report.weight:.2f} (transformer share), temperature {report.temperature:.3f}, "
              f"ECE {report.val_ece_before:.3f} → {report.val_ece_after:.3f}; {report.seconds:.0f} s; "
              f"data hash {report.data_hash}")


@nlu_app.command("classify")
def classify(
    texts: Annotated[list[str] | None, typer.Argument(help="Utterances (none: one per stdin line).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One Rasa parse-shape JSON object per line.")] = False,
    expected: Annotated[list[str] | None, typer.Option(
        "--expected", help="An intent the current node expects (context prior); repeatable.")] = None,
    now: Annotated[str | None, typer.Option(help="Call time for relative times (ISO 8601; default now).")] = None,
    model: ModelOpt = None,
) -> None:
    """Classify utterances: intent, confidence, deciding layer, entities."""
    from core.vocab import INTENT_SET
    from nlu.classifier import CONFIDENCE_THRESHOLD, classify_texts

    settings = Settings()
    bad = [e for e in expected or [] if e not in INTENT_SET]
    if bad:
        raise _fail(f"--expected: unknown intent {bad[0]!r}", 2)
    at = instant(settings, now, "--now")
    clf = _classifier(settings, model)
    lines = texts if texts else (line.rstrip("\n") for line in sys.stdin)
    for text in lines:
        if not texts and not text.strip():
            continue
        parse = classify_texts(clf, [text], now=at, expected=expected or ())[0]
        if as_json:
            print(json.dumps(parse.to_rasa(), ensure_ascii=False), flush=True)
            continue
        flag = "" if parse.confidence >= CONFIDENCE_THRESHOLD else "  (below threshold → fallback)"
        ents = "  " + " ".join(f"{e.entity}={e.value}" for e in parse.entities) if parse.entities else ""
        print(f"{parse.intent}\t{parse.confidence:.3f}\t{parse.source}\t{text}{ents}{flag}", flush=True)


@nlu_app.command("evaluate")
def evaluate(
    file: Annotated[Path, typer.Argument(help="Rasa NLU test file, e.g. tests/data/nlu_test.yml.")],
    noisy: Annotated[bool, typer.Option("--noisy", help="Evaluate an ASR-noised copy (seeded).")] = False,
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write confusion.png, report.html, "
                                          "report.json.")] = Path("out/nlu-eval"),
    model: ModelOpt = None,
    show_errors: Annotated[bool, typer.Option("--errors", help="Also list every misclassified utterance.")] = False,
) -> None:
    """Accuracy, per-intent precision/recall/F1, confusion matrix (table + PNG/HTML)."""
    from nlu.evaluate import evaluate as run_eval
    from nlu.evaluate import write_artifacts

    settings = Settings()
    data = _load_examples(file)
    examples = list(data.examples)
    title = str(file)
    if noisy:
        examples = _noisy(settings, examples)
        title += " (ASR-noised copy)"
    clf = _classifier(settings, model)
    report = run_eval(clf, examples, title=title)
    table = Table(title=f"{title} — accuracy {report.accuracy:.4f} (n={report.n})")
    for col in ("intent", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="left" if col == "intent" else "right")
    for s in report.per_intent:
        table.add_row(s.intent, f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}", str(s.support))
    out.print(table)
    out.print(f"accuracy {report.accuracy:.4f} · macro-F1 {report.macro_f1:.4f} · ECE {report.ece:.4f}")
    out.print(f"threshold {report.threshold}: coverage {report.coverage:.3f}, accuracy above threshold "
              f"{report.accuracy_above_threshold:.4f}, confident-wrong {report.confident_wrong:.4f}")
    out.print(f"opt_out recall {report.opt_out_recall:.3f}; affirm/ask_* labelled opt_out: "
              f"{len(report.opt_out_false_positives)}; decided by {report.sources}")
    if report.context:
        c = report.context
        out.print(f"context prior (n={c.n}): accuracy {c.accuracy_without:.3f} → {c.accuracy_with:.3f}; "
                  f"correct and above threshold {c.accepted_correct_without:.3f} → {c.accepted_correct_with:.3f}; "
                  f"gold outside the prior kept {c.gold_not_expected_kept}")
    if show_errors:
        for text, gold, pred, conf, source in report.errors:
            out.print(f"  ✗ {text}  gold={gold} predicted={pred} {conf:.2f} ({source})", markup=False)
    for path in write_artifacts(report, out_dir):
        out.print(f"wrote {path}")


def _noisy(settings: Settings, examples: list[Example]) -> list[Example]:
    from nlu.augment import AsrNoise, NoiseTable, noisy_copy
    from nlu.data import NluDataError, load_dir

    try:
        table = NoiseTable.from_data(load_dir(_nlu_dir(settings)))
    except NluDataError as exc:
        raise _fail(str(exc)) from None
    return noisy_copy(examples, AsrNoise(table), seed=NOISE_SEED)


@nlu_app.command("augment")
def augment(
    file: Annotated[Path, typer.Argument(help="Rasa NLU file to copy with ASR noise.")],
    out_file: Annotated[Path | None, typer.Option("--out", help="Output file (default: stdout).")] = None,
) -> None:
    """Write a reproducible ASR-noised copy of a Rasa NLU file (one noisy rendering per example)."""
    from nlu.augment import dump_rasa

    settings = Settings()
    examples = _noisy(settings, list(_load_examples(file).examples))
    header = (f"# ASR-noised copy of {file.as_posix()} — generated by `huashu nlu augment {file.as_posix()}"
              f"{' --out ' + out_file.as_posix() if out_file else ''}` (seed {NOISE_SEED}); do not edit.")
    text = dump_rasa(examples, header)
    if out_file:
        out_file.write_text(text, encoding="utf-8")
        err.print(f"wrote {out_file} ({len(examples)} examples)")
    else:
        sys.stdout.write(text)


def register(app: typer.Typer) -> None:
    app.add_typer(nlu_app, name="nlu")
