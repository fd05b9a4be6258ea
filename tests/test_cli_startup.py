"""`huashu --help`, every subcommand's --help and a refused `simulate` import no heavy library
(start-up time itself is measured in bench/cli.py, not here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

HEAVY = ("torch", "transformers", "faster_whisper", "ctranslate2", "vosk", "sqlalchemy", "alembic", "fastapi",
         "uvicorn", "sklearn", "matplotlib", "rasa_sdk", "numpy", "dramatiq")
# A help screen needs no settings and no progress bars either (pydantic-settings alone is ~100 ms;
# rich.table is what Typer draws help with).
HELP_ONLY = (*HEAVY, "pydantic_settings", "rich.progress")

PROBE = """
import json, sys
from huashu import cli
args, watched = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["huashu", *args]
try:
    cli.main()
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in watched if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}))
"""


def probe(args: list[str], tmp_path: Path, watched: tuple[str, ...] = HEAVY) -> dict[str, object]:
    env = {**os.environ, "HUASHU_DATA_DIR": str(tmp_path), "HUASHU_CALLING_WINDOW": "09:00-21:00"}
    run = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args), json.dumps(watched)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.stdout.strip(), run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def commands() -> list[list[str]]:
    import typer

    from huashu.cli import _register_all, app

    _register_all()
    paths: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])
    walk(typer.main.get_command(app), [])
    return paths


@pytest.mark.parametrize("path", commands(), ids=lambda p: " ".join(p) or "huashu")
def test_help_imports_nothing_heavy(path: list[str], tmp_path: Path) -> None:
    result = probe([*path, "--help"], tmp_path, HELP_ONLY)
    assert result == {"code": 0, "heavy": []}


def test_refused_simulate_loads_no_model_and_no_store(tmp_path: Path) -> None:
    result = probe(["simulate", "--track", "wecom_add_gift", "--at", "2026-12-03T23:00:00+08:00"], tmp_path)
    assert result == {"code": 3, "heavy": []}


def test_piped_tables_are_not_wrapped_at_80_columns(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["HUASHU_DATA_DIR"] = str(tmp_path)
    run = subprocess.run([sys.executable, "-m", "huashu", "segments", "list"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith("│")]
    names = [line.split("│")[1].strip() for line in rows]
    assert "balance_unpaid" in names and all(names)  # one line per segment: no cell was folded
    assert not any("…" in line for line in rows)


def test_simulate_refuses_a_record_missing_a_fact_before_loading_the_model(tmp_path: Path) -> None:
    """A stored customer who never bought anything cannot get a balance reminder: refused with
    missing_fact:<variable> after the store (which the gate reads anyway), before any model."""
    env = {**os.environ, "HUASHU_DATA_DIR": str(tmp_path)}
    csv = tmp_path / "customers.csv"
    csv.write_text("customer_id,phone,name,purchase_count\nnever,13800000001,王芳,0\n", encoding="utf-8")
    imported = subprocess.run([sys.executable, "-m", "huashu", "customers", "import", str(csv)], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    args = ["simulate", "--track", "balance_reminder", "--customer-id", "never", "--json",
            "--at", "2026-12-03T10:00:00+08:00"]
    model_libs = ("torch", "transformers", "sklearn", "numpy", "matplotlib")
    assert probe(args, tmp_path, model_libs) == {"code": 3, "heavy": []}
    run = subprocess.run([sys.executable, "-m", "huashu", *args], cwd=ROOT, env=env, input="喂\n",
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 3 and json.loads(run.stdout)["refused"] == "missing_fact:product"
