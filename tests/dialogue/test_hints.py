"""ASR hints compiled from the tracks: NLU examples of the expected intents, variable values,
the track vocabulary, the author's additions and drops; `huashu validate` checks them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dialogue.hints import (
    MAX_PROMPT_CHARS,
    hint_problems,
    nlu_examples,
    node_hints,
    phrases_for,
    pick_examples,
    plain,
    spoken_value,
    track_hints,
)
from dialogue.loader import load_bundle
from huashu.cli import _register_all, app
from tests.conftest import SCRIPTS

_register_all()


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(SCRIPTS)


def test_every_waiting_node_of_every_shipped_track_gets_hints_that_fit_the_prompt(bundle) -> None:
    examples = nlu_examples(bundle.root)
    for track in bundle.tracks.values():
        compiled = track_hints(track, examples)
        assert set(compiled) == {n for n, node in track.nodes.items() if node.waits}
        for nh in compiled.values():
            assert len(nh.phrases) >= 5, (track.id, nh.node)
            assert nh.prompt_chars <= MAX_PROMPT_CHARS, (track.id, nh.node)
        assert hint_problems(track, examples) == []


def test_hints_come_from_the_expected_intents_variables_and_vocabulary(bundle) -> None:
    track = bundle.track("balance_reminder")
    # the campaign's date (a track has no default for it); the rest: defaults, samples of claims
    nh = node_hints(track, "opening", nlu_examples(bundle.root), {"balance_deadline": "2026-11-13"})
    sources = {h.source for h in nh.hints}
    assert {"vocabulary", "intent:affirm", "intent:deny", "intent:will_pay", "intent:greet"} <= sources
    assert "尾款" in nh.phrases  # vocabulary
    assert "玻尿酸水光精华" in nh.phrases and "299元" in nh.phrases and "11月13日" in nh.phrases  # variables
    assert not any("http" in p for p in nh.phrases)  # a link is never spoken
    not_received = node_hints(bundle.track("wecom_add_gift"), "opening", nlu_examples(bundle.root))
    assert any("短信" in h.phrase for h in not_received.hints if h.source == "intent:not_received")


def test_a_call_s_own_variable_values_replace_the_defaults(bundle) -> None:
    track = bundle.track("balance_reminder")
    phrases = phrases_for(bundle.root, track, "opening", {"product": "胶原蛋白饮", "balance": "128", "brand": "美丽优选"})
    assert "胶原蛋白饮" in phrases and "128元" in phrases and "美丽优选" in phrases
    assert "玻尿酸水光精华" not in phrases


def test_example_picking_and_spoken_values() -> None:
    assert plain("定金付了[五十](amount)，好的!") == "定金付了五十好的"
    # half of each pick's words are new; particles and doubling add nothing; sentences are not phrases
    assert pick_examples(["没收到", "我没收到", "没收到啊", "没收到你们的短信", "这个短信我一直都没有看到过啊"]) == \
        ("没收到", "没收到你们的短信")
    assert pick_examples(["好的好的", "好的呀", "好嘞", "是啊", "没问题", "可以", "行"], 3) == ("好的", "是啊", "没问题")
    assert spoken_value("https://m.example.com/p", "text") is None
    assert spoken_value("7", "amount") is None and spoken_value("50", "amount") == "50元"
    assert spoken_value("13800001111", "digits") is None


def _scripts_with(tmp_path: Path, edit: dict[str, object]) -> Path:
    root = tmp_path / "scripts_zh"
    for part in ("personas", "nlu"):
        shutil.copytree(SCRIPTS / part, root / part)
    (root / "tracks").mkdir()
    src = (SCRIPTS / "tracks" / "wecom_add_gift.yml").read_text(encoding="utf-8")
    data = yaml.safe_load(src.replace("\n    on:", "\n    'on':"))
    data["nodes"]["opening"].update(edit)
    (root / "tracks" / "wecom_add_gift.yml").write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                                                        encoding="utf-8")
    return root


def test_authors_add_and_drop_phrases_per_node(tmp_path: Path) -> None:
    root = _scripts_with(tmp_path, {"hints": ["小样礼包在哪"], "hints_drop": ["短信"]})
    bundle = load_bundle(root)
    nh = node_hints(bundle.track("wecom_add_gift"), "opening", nlu_examples(root))
    assert "小样礼包在哪" in nh.phrases and "短信" not in nh.phrases
    result = CliRunner().invoke(app, ["tracks", "hints", "wecom_add_gift", "opening", "--scripts", str(root), "--json"])
    assert result.exit_code == 0, result.output
    assert {"phrase": "小样礼包在哪", "source": "node"} in __import__("json").loads(result.output)["opening"]


def test_validate_names_file_line_and_node_of_a_drop_that_removes_nothing(tmp_path: Path) -> None:
    root = _scripts_with(tmp_path, {"hints_drop": ["火星文"]})
    result = CliRunner().invoke(app, ["validate", str(root)])
    assert result.exit_code == 1
    assert "wecom_add_gift.yml:" in result.output and ": opening: hints_drop: '火星文'" in result.output


def test_tracks_hints_command_lists_every_waiting_node() -> None:
    result = CliRunner().invoke(app, ["tracks", "hints", "presale_deposit", "--json"])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)
    assert "opening" in shown and "close_send_link" not in shown
    bad = CliRunner().invoke(app, ["tracks", "hints", "presale_deposit", "no_such_node"])
    assert bad.exit_code == 2


def test_the_server_hints_the_node_the_call_waits_at_with_the_call_s_values(bundle) -> None:
    from types import SimpleNamespace

    from core.conversation import SessionState
    from server.recognizer import hints_for

    context = SimpleNamespace(engine=SimpleNamespace(bundle=bundle))
    state = SessionState(call_id="c", track_id="balance_reminder", customer_id="x", node="ask_pay_time",
                         started_at="2026-11-09T10:00:00+08:00", variables={"product": "胶原蛋白饮"})
    hints = hints_for(context, state)  # type: ignore[arg-type]
    assert "胶原蛋白饮" in hints.phrases and "尾款" in hints.phrases
    assert hints.phrases == phrases_for(bundle.root, bundle.track("balance_reminder"), "ask_pay_time",
                                        {"product": "胶原蛋白饮"})
