"""The Rasa-format NLU data: loader, validation errors with file:line, coverage, independence."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from core.vocab import INTENTS
from core.yamlio import ScriptError
from nlu.data import Example, NluDataError, data_hash, load_dir, load_file, parse_annotated, validate_paths
from nlu.text import normalize
from nlu.validate import validate_nlu_dir

from .conftest import DEV3, DEV3_NOISY, DEV4, DEV4_NOISE_SEED, DEV4_NOISY, HELD_OUT, HELD_OUT2, HELD_OUT2_NOISY, SCRIPTS_NLU


def test_shipped_data_is_valid_and_covers_every_intent_with_80_examples() -> None:
    validate_nlu_dir(SCRIPTS_NLU)
    counts = Counter(e.intent for e in load_dir(SCRIPTS_NLU).examples)
    assert set(counts) == set(INTENTS)
    assert min(counts.values()) >= 80, counts.most_common()[-3:]


def test_held_out_file_has_15_per_intent_and_shares_no_text_with_training() -> None:
    held = load_file(HELD_OUT)
    counts = Counter(e.intent for e in held.examples if not e.expected_intents)
    assert set(counts) == set(INTENTS)
    assert min(counts.values()) >= 15
    trained = {normalize(e.text) for e in load_dir(SCRIPTS_NLU).examples}
    leaked = [e.text for e in held.examples if normalize(e.text) in trained]
    assert leaked == []
    assert sum(1 for e in held.examples if e.expected_intents) >= 30  # context-tagged subset


def test_held_out_set_2_has_30_per_intent_and_shares_no_text_with_training_or_set_1() -> None:
    held = load_file(HELD_OUT2).examples
    counts = Counter(e.intent for e in held if not e.expected_intents)
    assert set(counts) == set(INTENTS)
    assert min(counts.values()) >= 30
    seen = {normalize(e.text) for e in load_dir(SCRIPTS_NLU).examples}
    seen |= {normalize(e.text) for e in load_file(HELD_OUT).examples}
    assert [e.text for e in held if normalize(e.text) in seen] == []
    assert len({normalize(e.text) for e in held}) == len(held)


def test_held_out_set_2_noisy_copy_is_the_generator_output_and_differs_everywhere() -> None:
    from tools.heldout2_noise import build

    assert HELD_OUT2_NOISY.read_text(encoding="utf-8") == build()
    clean, noisy = load_file(HELD_OUT2).examples, load_file(HELD_OUT2_NOISY).examples
    assert [(e.intent, e.expected_intents) for e in clean] == [(e.intent, e.expected_intents) for e in noisy]
    assert all(normalize(a.text) != normalize(b.text) for a, b in zip(clean, noisy, strict=True))


def test_annotations_are_stripped_and_spans_point_at_the_text() -> None:
    text, spans = parse_annotated('[明天下午三点](time)付[两百](amount:200)，[尾号]{"entity": "digits"}')
    assert text == "明天下午三点付两百，尾号"
    assert [(s.entity, text[s.start:s.end], s.value) for s in spans] == [
        ("time", "明天下午三点", None), ("amount", "两百", "200"), ("digits", "尾号", None)]


@pytest.mark.parametrize(("body", "line", "needle"), [
    ('nlu:\n- intent: greet\n  examples: |\n    - 喂\n', 1, "version"),
    ('version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - 喂\n- intent: helo\n  examples: |\n    - x\n',
     6, "unknown intent"),
    ('version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - 喂\n    - 你好\n    没有横线\n', 7, "'- '"),
    ('version: "3.1"\nnlu:\n- regex: rule_opt_out\n  examples: |\n    - (别打\n', 5, "bad regex"),
    ('version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - 喂\n  bad: [\n', 7, "invalid YAML"),
])
def test_invalid_files_report_file_and_line(tmp_path: Path, body: str, line: int, needle: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(NluDataError) as exc:
        load_file(path)
    assert str(exc.value).startswith(f"{path}:{line}: "), str(exc.value)
    assert needle in str(exc.value)
    assert (exc.value.problem.file, exc.value.problem.line) == (str(path), line)


def test_same_text_under_two_intents_is_a_conflict(tmp_path: Path) -> None:
    path = tmp_path / "dup.yml"
    path.write_text('version: "3.1"\nnlu:\n- intent: affirm\n  examples: |\n    - 好的\n'
                    '- intent: deny\n  examples: |\n    - 好的！\n', encoding="utf-8")
    problems = validate_paths([path])
    assert len(problems) == 1 and problems[0].startswith(f"{path}:8: intent deny:")


def test_validate_hook_raises_script_error_with_problems(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text('version: "3.1"\nnlu:\n- regex: rule_affirm\n  examples: |\n    - 好\n',
                                        encoding="utf-8")
    with pytest.raises(ScriptError) as exc:
        validate_nlu_dir(tmp_path)
    [problem] = exc.value.problems
    assert (problem.file, problem.line, problem.node) == (str(tmp_path / "rules.yml"), 4, "regex rule_affirm")
    assert problem.message.startswith("rules may only decide")


def test_validate_hook_keeps_each_conflict_as_a_problem(tmp_path: Path) -> None:
    (tmp_path / "dup.yml").write_text('version: "3.1"\nnlu:\n- intent: affirm\n  examples: |\n    - 好的: 行\n'
                                      '- intent: deny\n  examples: |\n    - 好的: 行\n', encoding="utf-8")
    with pytest.raises(ScriptError) as exc:
        validate_nlu_dir(tmp_path)
    [problem] = exc.value.problems
    assert (problem.line, problem.node) == (8, "intent deny")
    assert problem.message == f"'好的: 行' is also labelled affirm at {tmp_path / 'dup.yml'}:5"


def test_data_hash_follows_training_files_but_not_rules(tmp_path: Path) -> None:
    nlu = tmp_path / "nlu"
    nlu.mkdir()
    (nlu / "a.yml").write_text('version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - 喂\n', encoding="utf-8")
    first = data_hash(nlu)
    (nlu / "rules.yml").write_text('version: "3.1"\nnlu: []\n', encoding="utf-8")
    assert data_hash(nlu) == first
    (nlu / "a.yml").write_text('version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - 喂喂\n', encoding="utf-8")
    assert data_hash(nlu) != first


def _assert_noisy_copy(dev: Sequence[Example], noisy_path: Path) -> None:
    """The noisy copy keeps every label in order and changes every text."""
    noisy = load_file(noisy_path).examples
    assert [e.intent for e in noisy] == [e.intent for e in dev]
    assert all(normalize(a.text) != normalize(b.text) for a, b in zip(dev, noisy, strict=True))


def test_development_set_3_covers_every_intent_and_was_not_copied_into_training(tmp_path: Path) -> None:
    dev = load_file(DEV3).examples
    counts = Counter(e.intent for e in dev)
    assert set(counts) == set(INTENTS) and min(counts.values()) >= 25
    trained = {normalize(e.text) for e in load_dir(SCRIPTS_NLU).examples}
    assert [e.text for e in dev if normalize(e.text) in trained] == ["没收到"]  # a fragment everyone says
    from tools.dev3_noise import main

    main(DEV3, tmp_path / "noisy.yml")  # the committed noisy copy is the generator's output
    assert (tmp_path / "noisy.yml").read_text(encoding="utf-8") == DEV3_NOISY.read_text(encoding="utf-8")
    _assert_noisy_copy(dev, DEV3_NOISY)


def test_development_set_4_covers_every_intent_and_shares_no_text_with_training_or_set_3(tmp_path: Path) -> None:
    dev = load_file(DEV4).examples
    counts = Counter(e.intent for e in dev)
    assert set(counts) == set(INTENTS) and min(counts.values()) >= 15
    trained = {normalize(e.text) for e in load_dir(SCRIPTS_NLU).examples}
    dev3 = {normalize(e.text) for e in load_file(DEV3).examples}
    assert [e.text for e in dev if normalize(e.text) in trained | dev3] == []
    assert len({normalize(e.text) for e in dev}) == len(dev)
    from tools.dev3_noise import main

    main(DEV4, tmp_path / "noisy.yml", DEV4_NOISE_SEED)  # the committed noisy copy is the generator's output
    assert (tmp_path / "noisy.yml").read_text(encoding="utf-8").splitlines()[1:] == \
        DEV4_NOISY.read_text(encoding="utf-8").splitlines()[1:]
    _assert_noisy_copy(dev, DEV4_NOISY)
