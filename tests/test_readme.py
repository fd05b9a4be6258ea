"""The README's Quick tour, run verbatim as a new user would: twice in a row, at a late hour."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

FAKETIME_LIBS = (Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
                 Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"))


def tour_block() -> str:
    """The first ```sh block under `## Quick tour` in README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick tour", 1)[1].split("\n## ", 1)[0]
    m = re.search(r"```sh\n(.*?)```", section, re.S)
    assert m, "README.md: no ```sh block under ## Quick tour"
    return m.group(1)


def test_tour_block_is_found_and_uses_only_existing_paths() -> None:
    block = tour_block()
    assert "huashu simulate" in block and "huashu transcribe" in block
    for pattern in re.findall(r"(tests/\S+)", block):
        matches = list(ROOT.glob(pattern)) if "*" in pattern else [ROOT / pattern]
        assert matches and all(p.exists() for p in matches), pattern


def _faked_clock(env: dict[str, str], utc: str) -> dict[str, str]:
    """libfaketime (Debian `faketime`) sets the wall clock of every process the tour starts."""
    lib = next((p for p in FAKETIME_LIBS if p.exists()), None)
    if lib is None:
        return env
    return {**env, "LD_PRELOAD": str(lib), "FAKETIME": f"@{utc}", "TZ": "UTC",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


@pytest.mark.slow
def test_quick_tour_runs_twice_in_a_row_at_any_hour(tmp_path: Path, nlu_model_dir: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    # The block says `.venv/bin/huashu` and `tests/...` relative to the repository root; outputs
    # (presale.html, sms.csv, report.html) land in the work folder, not in the checkout.
    (work / ".venv").symlink_to(Path(sys.executable).parent.parent)
    (work / "tests").symlink_to(ROOT / "tests")
    script = "set -euo pipefail\n" + tour_block()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUASHU_")}
    env.update(HUASHU_DATA_DIR=str(tmp_path / "data"), HUASHU_CACHE_DIR=str(tmp_path / "cache"),
               HUASHU_NLU_MODEL_DIR=str(nlu_model_dir))
    for k in ("HUASHU_WHISPER_MODEL", "HUASHU_VOSK_MODEL"):
        if k in os.environ:
            env[k] = os.environ[k]
    # 23:00 and 02:00 in Shanghai: outside the default calling window.
    for utc in ("2026-12-03 15:00:00", "2026-12-03 18:00:00"):
        run = subprocess.run(["bash", "-c", script], cwd=work, env=_faked_clock(env, utc), stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=1200)
        assert run.returncode == 0, f"tour failed at {utc} UTC:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
        call = json.loads(next(line for line in run.stdout.splitlines() if line.startswith('{"call_id"')))
        assert call["outcome"] == "do_not_contact" and call["customer_id"].startswith("test-")
        assert "stories passed" in run.stdout
        for name in ("presale.html", "sms.csv", "report.html"):
            assert (work / name).stat().st_size > 0, name
        shutil.move(work / "report.html", tmp_path / f"report-{utc[11:13]}.html")


def test_readme_is_a_short_front_door_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make run" in text and "make test" in text
    assert len(text.splitlines()) <= 300
    for link in re.findall(r"\]\(([^)#]+)\)", text):
        assert not link.startswith(("http://", "https://")), f"README links outside the repository: {link}"
        assert (ROOT / link).exists(), f"README links to a missing file: {link}"


def test_every_setting_is_in_the_readme_table() -> None:
    from campaign.settings import CampaignSettings
    from core.settings import Settings

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("[start:settings]", 1)[1].split("[end:settings]", 1)[0]
    names = [*Settings.model_fields, *CampaignSettings.model_fields]
    missing = [f"HUASHU_{name.upper()}" for name in names if f"`HUASHU_{name.upper()}`" not in table]
    assert not missing, f"add a row to the settings table in README.md for: {', '.join(missing)}"
