"""`huashu simulate` as testers use it: stdin lines in, transcript / JSON out (real NLU + store)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def huashu(args: list[str], stdin: str, data_dir: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUASHU_DATA_DIR": str(data_dir), **extra_env}
    return subprocess.run([sys.executable, "-m", "huashu", *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=600)


def test_opt_out_ends_the_call_in_the_same_turn(tmp_path: Path, nlu_model_dir: Path) -> None:
    result = huashu(["simulate", "--track", "wecom_add_gift", "--json", "--at", "2026-11-23T10:00:00+08:00"],
                    "喂\n别再给我打电话了\n好的\n", tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["turns"][0]["user"] is None  # the bot's opening
    last = doc["turns"][-1]
    assert last["user"] == "别再给我打电话了" and last["intent"] == "opt_out"
    assert last["actions"][-1] == {"type": "hangup"}
    assert (doc["outcome"], doc["grade"], doc["ended_by"]) == ("do_not_contact", "F", "bot")
    assert len(doc["turns"]) == 3  # "好的" after the hangup is not read as a turn
    # ... and the same customer is refused from then on, forever.
    again = huashu(["simulate", "--track", "wecom_add_gift", "--json", "--customer-id", doc["customer_id"],
                    "--at", "2026-12-30T10:00:00+08:00"], "喂\n", tmp_path)
    assert again.returncode == 3 and json.loads(again.stdout)["refused"] == "do_not_contact"


def test_refused_outside_calling_window(tmp_path: Path, nlu_model_dir: Path) -> None:
    result = huashu(["simulate", "--track", "birthday_care", "--json", "--at", "2026-11-23T22:30:00+08:00"], "喂\n", tmp_path)
    assert result.returncode == 3 and json.loads(result.stdout)["refused"] == "outside_calling_window"


def test_unknown_track_and_bad_variable_are_clear_errors(tmp_path: Path, nlu_model_dir: Path) -> None:
    result = huashu(["simulate", "--track", "nope", "--at", "2026-11-23T10:00:00+08:00"], "", tmp_path)
    assert result.returncode == 2 and "unknown track 'nope'" in result.stderr
    result = huashu(["simulate", "--track", "wecom_add_gift", "--var", "colour=red", "--at", "2026-11-23T10:00:00+08:00"], "", tmp_path)
    assert result.returncode == 2 and "no variable(s) colour" in result.stderr


def test_validate_command_passes_on_shipped_tracks(tmp_path: Path) -> None:
    result = huashu(["validate"], "", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wecom_add_gift" in result.stdout


def test_refusal_names_the_flag_and_setting_and_comes_before_the_model(tmp_path: Path) -> None:
    # No trained model where this run looks: a refusal must not need (or train) the model at all.
    no_model = str(tmp_path / "no-model")
    late = ["simulate", "--track", "wecom_add_gift", "--at", "2026-11-23T23:00:00+08:00"]
    result = huashu([*late, "--json"], "喂\n", tmp_path, HUASHU_NLU_MODEL_DIR=no_model)
    plain = huashu(late, "喂\n", tmp_path, HUASHU_NLU_MODEL_DIR=no_model)
    assert result.returncode == 3, result.stderr
    doc = json.loads(result.stdout)
    assert doc["refused"] == "outside_calling_window"
    assert "--at 2026-11-24T09:00+08:00" in doc["hint"] and "HUASHU_CALLING_WINDOW" in doc["hint"]
    assert not (tmp_path / "no-model").exists()  # nothing trained, nothing loaded
    assert plain.returncode == 3 and "outside_calling_window" in plain.stderr and "--at" in plain.stderr


def test_without_customer_id_each_run_is_a_fresh_test_customer(tmp_path: Path, nlu_model_dir: Path) -> None:
    at = ["--at", "2026-11-23T10:00:00+08:00"]
    first = huashu(["simulate", "--track", "wecom_add_gift", "--json", *at], "喂\n别再给我打电话了\n", tmp_path)
    second = huashu(["simulate", "--track", "wecom_add_gift", "--json", *at], "喂\n别再给我打电话了\n", tmp_path)
    assert first.returncode == 0 and second.returncode == 0, second.stdout + second.stderr
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert a["customer_id"] != b["customer_id"] and a["outcome"] == b["outcome"] == "do_not_contact"
    # The opted-out test customer, named again, is refused with what to do instead.
    again = huashu(["simulate", "--track", "wecom_add_gift", "--json", "--customer-id", a["customer_id"], *at],
                   "喂\n", tmp_path)
    doc = json.loads(again.stdout)
    assert again.returncode == 3 and doc["refused"] == "do_not_contact" and "--customer-id" in doc["hint"]


def test_piped_transcript_shows_both_sides(tmp_path: Path, nlu_model_dir: Path) -> None:
    result = huashu(["simulate", "--track", "wecom_add_gift", "--at", "2026-11-23T10:00:00+08:00"],
                    "喂\n别再给我打电话了\n", tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    customer = [line for line in lines if line.startswith("客户 ")]
    assert customer == ["客户 喂", "客户 别再给我打电话了"]
    assert lines.index("客户 喂") > 0  # after the bot's opening


CALLS = ROOT / "tests" / "data" / "calls" / "audio"


def test_simulate_audio_recognises_each_turn_with_the_hints_of_the_node_it_is_said_at(tmp_path: Path,
                                                                                          nlu_model_dir: Path) -> None:
    # c09 of the held-out calls: 「短信我没收到啊」 then 「好，我等下加一下」 (wecom_add_gift).
    result = huashu(["simulate", "--track", "wecom_add_gift", "--json", "--at", "2026-11-23T10:00:00+08:00",
                     "--audio", str(CALLS / "c09")], "", tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    heard = [t["user"] for t in doc["turns"] if t["user"]]
    assert "短信" in heard[0] and doc["turns"][1]["intent"] == "not_received"


def test_json_turns_show_a_second_intent_heard_in_the_same_breath(tmp_path: Path, nlu_model_dir: Path) -> None:
    result = huashu(["simulate", "--track", "presale_deposit", "--json", "--at", "2026-11-03T10:00:00+08:00"],
                    "可以那运费谁出\n", tmp_path)
    assert result.returncode == 0, result.stderr
    turns = json.loads(result.stdout)["turns"]
    assert "secondary_intent" not in turns[0]  # the bot's opening: nothing heard
    said = turns[1]
    assert said["user"] == "可以那运费谁出" and said["intent"] == "ask_logistics"
    assert said["secondary_intent"]["name"] == "affirm" and said["secondary_intent"]["confidence"] >= 0.6
