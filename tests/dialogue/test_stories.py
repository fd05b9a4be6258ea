"""Every story under tests/stories runs through the real engine and the real NLU classifier."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from core.parse import IntentClassifier
from dialogue.engine import DialogueEngine
from dialogue.loader import load_bundle
from dialogue.stories import Story, StoryFileError, collect, load_story_file, run_story
from tests.conftest import ROOT, SCRIPTS
from tests.dialogue.keywords import KeywordClassifier

STORY_DIR = ROOT / "tests" / "stories"
STORIES = collect([STORY_DIR])
TRACKS = ("wecom_add_gift", "presale_deposit", "balance_reminder", "repurchase_reminder",
          "winback_silent", "birthday_care")


@pytest.fixture(scope="session")
def story_engine(classifier: IntentClassifier) -> DialogueEngine:
    return DialogueEngine(load_bundle(SCRIPTS), classifier)


@pytest.mark.slow
@pytest.mark.parametrize("story", STORIES, ids=[f"{s.track}:{s.name}" for s in STORIES])
def test_story(story: Story, story_engine: DialogueEngine) -> None:
    result = run_story(story_engine, story)
    assert result.passed, f"{result.where}: {result.failure}\n  " + "\n  ".join(result.transcript)


def test_every_track_has_at_least_eight_stories() -> None:
    counts = Counter(s.track for s in STORIES)
    assert {t: counts[t] for t in TRACKS if counts[t] < 8} == {}


# -- the runner itself (a keyword classifier keeps these independent of the model) -------------
@pytest.fixture(scope="module")
def keyword_engine() -> DialogueEngine:
    return DialogueEngine(load_bundle(SCRIPTS), KeywordClassifier())


def _story(tmp_path: Path, body: str) -> list[Story]:
    path = tmp_path / "s.yaml"
    path.write_text(body, encoding="utf-8")
    return load_story_file(path)


def test_a_wrong_expectation_fails_with_the_first_mismatch_explained(tmp_path: Path, keyword_engine: DialogueEngine) -> None:
    [story] = _story(tmp_path, """
track: wecom_add_gift
stories:
  - name: wrong node on purpose
    steps:
      - user: 你是机器人吗
        expect: {intent: ask_robot, node: close_polite}
      - user: 好的
""")
    result = run_story(keyword_engine, story)
    assert not result.passed
    assert result.failure.startswith("step 1 (user: '你是机器人吗'): node expected close_polite, got answer_robot")
    assert story.line == 4 and result.where.endswith("s.yaml:4")


def test_a_wrong_final_outcome_fails(tmp_path: Path, keyword_engine: DialogueEngine) -> None:
    [story] = _story(tmp_path, """
stories:
  - name: opt out is not a success
    track: wecom_add_gift
    steps: [{user: 别再给我打电话了}]
    expect: {outcome: high_intent}
""")
    result = run_story(keyword_engine, story)
    assert (result.passed, result.failure) == (False, "end: outcome expected high_intent, got do_not_contact")


def test_steps_after_the_bot_hung_up_fail(tmp_path: Path, keyword_engine: DialogueEngine) -> None:
    [story] = _story(tmp_path, """
track: wecom_add_gift
stories:
  - name: talks after the end
    steps: [{user: 别再给我打电话了}, {user: 好的}]
""")
    result = run_story(keyword_engine, story)
    assert "step 2" in result.failure and "already ended" in result.failure


def test_running_out_of_steps_means_the_customer_hung_up(tmp_path: Path, keyword_engine: DialogueEngine) -> None:
    [story] = _story(tmp_path, """
track: wecom_add_gift
stories:
  - name: price question, then gone
    steps: [{user: 多少钱}]
    expect: {outcome: completed, grade: B, ended_by: customer, tags_include: [price_sensitive]}
""")
    assert run_story(keyword_engine, story).passed


@pytest.mark.parametrize(("body", "message"), [
    ("stories: [{name: x, track: wecom_add_gift, steps: [{user: 好, dtmf: '1'}]}]", "exactly one of"),
    ("stories: [{name: x, track: wecom_add_gift, expect: {outcom: A}}]", "expect.outcom"),
    ("track: [unclosed", "not valid YAML"),
    ("name: no stories list", "`stories:` list"),
])
def test_bad_story_files_name_file_and_problem(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(StoryFileError, match=r"s\.yaml:1") as info:
        _story(tmp_path, body)
    assert message in str(info.value)


def test_unknown_track_is_a_failed_story_not_a_crash(tmp_path: Path, keyword_engine: DialogueEngine) -> None:
    [story] = _story(tmp_path, "stories: [{name: x, track: nope}]")
    result = run_story(keyword_engine, story)
    assert not result.passed and "unknown track 'nope'" in result.failure
