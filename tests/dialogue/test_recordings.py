"""Persona recordings: the script a voice talent reads, importing their takes (converted and
loudness-normalised; missing / extra / silent / clipped reported), and `validate` failing on a
clip without audio. Real audio through pydub, the CLI as a subprocess."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydub import AudioSegment
from pydub.generators import Square

from dialogue.loader import load_bundle
from dialogue.recordings import plan
from tests.conftest import ROOT, SCRIPTS

pytestmark = pytest.mark.slow


def huashu(args: list[str], scripts: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUASHU_DATA_DIR": str(tmp_path / "data"), "HUASHU_SCRIPTS_DIR": str(scripts),
           "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "huashu", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)


def test_script_lists_every_file_with_its_words_and_splice_points(tmp_path: Path) -> None:
    out = tmp_path / "script.csv"
    result = huashu(["persona", "script", "xiaomei", "--out", str(out)], SCRIPTS, tmp_path)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # Excel reads the Chinese right
    rows = list(csv.reader(out.open(encoding="utf-8-sig")))
    assert rows[0] == ["文件", "要读的文字", "说明"]
    wanted = plan(load_bundle(SCRIPTS), "xiaomei")
    assert len(rows) - 1 == len(wanted)
    by_file = {r[0]: r for r in rows[1:]}
    assert by_file["ask_callback_time.wav"][1] == "好的，不打扰您了，那您看什么时间方便，我再给您打过来？"  # exact words
    assert by_file["disclosure.0.wav"][1:] == ["您好，我是", "拼接片段（disclosure）：后面接 {brand}"]  # splice point
    assert by_file["say/九.wav"][1] == "九"


def test_import_converts_normalises_and_reports_problems_then_validate_names_the_gap(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    shutil.copytree(SCRIPTS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    audio = scripts / "personas" / "xiaomei" / "audio"
    shipped = tmp_path / "shipped"
    shutil.move(audio, shipped)
    audio.mkdir()
    wanted = sorted(plan(load_bundle(scripts), "xiaomei"))
    missing, silent, clipped = wanted[0], wanted[1], wanted[2]
    takes = tmp_path / "takes"
    good = 0
    for name in wanted[3:]:
        seg = AudioSegment.from_file(shipped / name)
        if seg.dBFS < -50:  # a placeholder piece that is (near) silence itself
            continue
        good += 1
        studio = seg.set_frame_rate(44100).set_channels(2).apply_gain(-35 - seg.dBFS)  # a quiet studio take
        (takes / name).parent.mkdir(parents=True, exist_ok=True)
        studio.export(takes / name, format="wav")
    AudioSegment.silent(duration=800, frame_rate=44100).export(takes / silent, format="wav")
    (Square(440).to_audio_segment(duration=800, volume=0.0)).export(takes / clipped, format="wav")
    AudioSegment.silent(duration=300).export(takes / "outtake_03.wav", format="wav")

    result = huashu(["persona", "import", "xiaomei", str(takes)], scripts, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"imported {good} take(s)" in result.stdout
    lines = {line.split(":", 1)[0]: line for line in result.stdout.splitlines() if ":" in line}
    assert missing.as_posix() in lines["missing"] and silent.as_posix() in lines["silent"]
    assert clipped.as_posix() in lines["clipped (too loud)"] and "outtake_03.wav" in lines["extra (not in the script)"]
    done = AudioSegment.from_file(audio / wanted[5])
    assert (done.frame_rate, done.channels, done.sample_width) == (8000, 1, 2)
    assert abs(done.dBFS - (-20.0)) < 0.5  # loudness-normalised

    check = huashu(["validate"], scripts, tmp_path)
    assert check.returncode == 1
    assert f"no recording audio/{missing.as_posix()}" in check.stdout + check.stderr
