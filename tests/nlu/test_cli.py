"""`huashu nlu …` end to end on the tiny fixture model (real model, real files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from core.settings import Settings
from huashu.cli.nlu import register

from .conftest import FIXTURE, HELD_OUT


@pytest.fixture
def cli(tiny_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("HUASHU_SCRIPTS_DIR", str(tiny_settings.scripts_dir))
    monkeypatch.setenv("HUASHU_NLU_MODEL_DIR", str(tiny_settings.nlu_model_dir))
    app = typer.Typer()
    app.command("noop")(lambda: None)  # a group needs ≥ 2 commands to keep the `nlu` prefix
    register(app)
    return app


def test_classify_json_is_rasa_shape_one_per_stdin_line(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["nlu", "classify", "--json", "--now", "2024-11-06T10:30:00+08:00"],
                                input="喂你好\n\n别再给我打电话了\n明天下午三点再打吧\n")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["喂你好", "别再给我打电话了", "明天下午三点再打吧"]
    assert rows[1]["intent"] == {"name": "opt_out", "confidence": 1.0}
    assert rows[2]["entities"][0]["value"] == "2024-11-07T15:00:00+08:00"
    for r in rows:
        assert set(r) == {"text", "intent", "intent_ranking", "entities"}


def test_classify_arguments_and_context(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["nlu", "classify", "嗯", "--expected", "affirm", "--expected", "deny"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("affirm\t")
    bad = CliRunner().invoke(cli, ["nlu", "classify", "嗯", "--expected", "affrim"])
    assert bad.exit_code == 2 and "unknown intent" in bad.output


def test_classify_without_model_exits_2_naming_the_path(cli: typer.Typer, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "weights.bin").write_bytes(b"\0")  # not empty, no meta.json: corrupt
    monkeypatch.setenv("HUASHU_NLU_MODEL_DIR", str(broken))
    result = CliRunner().invoke(cli, ["nlu", "classify", "你好"])
    assert result.exit_code == 2
    assert str(broken) in result.output and "Traceback" not in result.output


def test_evaluate_writes_table_png_html(cli: typer.Typer, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["nlu", "evaluate", str(FIXTURE / "fixture_test.yml"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stdout and "ask_price" in result.stdout and "context prior" in result.stdout
    for name in ("confusion.png", "report.html", "report.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["n"] == 9 and 0.0 <= report["accuracy"] <= 1.0


def test_evaluate_bad_input_is_a_message_not_a_traceback(cli: typer.Typer, tmp_path: Path) -> None:
    missing = CliRunner().invoke(cli, ["nlu", "evaluate", str(tmp_path / "nope.yml")])
    assert missing.exit_code == 1 and "no such file" in missing.output
    bad = tmp_path / "bad.yml"
    bad.write_text('version: "3.1"\nnlu:\n- intent: nonsense\n  examples: |\n    - x\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["nlu", "evaluate", str(bad)])
    assert result.exit_code == 1 and f"{bad}:3:" in result.output and "Traceback" not in result.output


def test_augment_prints_a_rasa_file(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["nlu", "augment", str(HELD_OUT)])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[1] == 'version: "3.1"'
    assert "expected_intents" in result.stdout
