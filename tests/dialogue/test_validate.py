"""Broken talk tracks fail at load with file, line and node named."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.yamlio import ScriptError
from dialogue.loader import load_bundle
from tests.conftest import SCRIPTS

ACTIONS = frozenset({"action_mark_do_not_contact"})


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    root = tmp_path / "scripts_zh"
    shutil.copytree(SCRIPTS / "personas", root / "personas")
    (root / "tracks").mkdir()
    shutil.copy(SCRIPTS / "tracks" / "wecom_add_gift.yml", root / "tracks")
    return root


def _edit(root: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    path = root / "tracks" / "wecom_add_gift.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8").replace("\n    on:", "\n    'on':"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _problems(root: Path) -> list[str]:
    with pytest.raises(ScriptError) as info:
        load_bundle(root, ACTIONS)
    return [str(p) for p in info.value.problems]


def test_shipped_scripts_are_valid() -> None:
    bundle = load_bundle(SCRIPTS, ACTIONS)
    assert "wecom_add_gift" in bundle.tracks


def test_unreachable_node_names_file_line_and_node(scripts: Path) -> None:
    path = _edit(scripts, lambda d: d["nodes"].update(orphan={"say": ["bye_polite"], "end": "completed"}))
    problems = _problems(scripts)
    assert len(problems) == 1
    line = next(i for i, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text.startswith("  orphan:"))
    assert problems[0] == f"{path}:{line}: orphan: unreachable node (no edge, handler or next leads here)"


def test_unknown_clip(scripts: Path) -> None:
    _edit(scripts, lambda d: d["nodes"]["explain"].update(say=["no_such_clip"]))
    (msg,) = _problems(scripts)
    assert ": explain: unknown clip 'no_such_clip'" in msg and "wecom_add_gift.yml:" in msg


def test_unknown_intent(scripts: Path) -> None:
    _edit(scripts, lambda d: d["nodes"]["explain"]["on"].update(maybe_yes="how_to_add"))
    (msg,) = _problems(scripts)
    assert ": explain: unknown intent 'maybe_yes' in on" in msg


def test_unknown_action_and_missing_variable(scripts: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["nodes"]["explain"]["actions"] = ["action_launch_rockets"]
        del d["variables"]["gift"]
    _edit(scripts, change)
    problems = _problems(scripts)
    assert any("explain: unknown action 'action_launch_rockets'" in p for p in problems)
    assert any("undeclared variable {gift}" in p for p in problems)


def test_dead_end_loop(scripts: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["nodes"]["loop_a"] = {"say": ["bye_polite"], "next": "loop_b"}
        d["nodes"]["loop_b"] = {"say": ["bye_polite"], "next": "loop_a"}
        d["nodes"]["explain"]["on"]["thanks_bye"] = "loop_a"
    _edit(scripts, change)
    problems = _problems(scripts)
    assert any("loop_a: dead end" in p for p in problems)
    assert any("loop_b: dead end" in p for p in problems)


def test_schema_error_points_at_node(scripts: Path) -> None:
    _edit(scripts, lambda d: d["nodes"]["explain"].update(colour="red"))
    (msg,) = _problems(scripts)
    assert ": explain: colour: Extra inputs are not permitted" in msg


def test_yaml_on_key_is_not_a_boolean(tmp_path: Path) -> None:
    from core.yamlio import load_yaml_text

    assert load_yaml_text("on: {yes: no}") == {"on": {"yes": "no"}}


def test_branch_unset_target_must_exist(scripts: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["slots"] = [*d.get("slots", []), "wechat_status"]
        d["nodes"]["explain"]["next"] = {"slot": "wechat_status", "unset": "nowhere", "default": "how_to_add"}
        d["nodes"]["explain"].pop("on", None)
    _edit(scripts, change)
    problems = _problems(scripts)
    assert any(": explain: " in p and "'nowhere'" in p for p in problems), problems
