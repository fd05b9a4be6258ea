"""`huashu campaign simulate` runs the shipped presale cascade end to end (real runner and actor on a
simulated clock, simulated customers and gateway) and writes touch lines in the CONTRACT shape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow
HUASHU = Path(sys.executable).parent / "huashu"
STATUSES = {"sent", "answered", "busy", "no_answer", "failed", "unreachable", "skipped"}


def _huashu(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HUASHU), *args], env=env, capture_output=True, text=True, timeout=600, check=False)


def test_presale_cascade_simulated_for_three_days(tmp_path: Path) -> None:
    env = {**os.environ, "HUASHU_DATA_DIR": str(tmp_path / "data"), "HUASHU_PHONE_KEY": "k",
           "HUASHU_DATABASE_URL": ""}
    demo = _huashu(env, "customers", "demo", "--n", "300", "--today", "2026-06-01")
    assert demo.returncode == 0, demo.stderr
    out = tmp_path / "touches.jsonl"
    run = _huashu(env, "campaign", "simulate", str(ROOT / "scripts_zh/campaigns/presale_deposit_push.yml"),
                  "--start", "2026-06-01T09:00:00+08:00", "--days", "3", "--seed", "3", "--touches-out", str(out),
                  "--json")
    assert run.returncode == 0, run.stderr
    status = json.loads(run.stdout)
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert lines and set(lines[0]) == {"campaign", "step", "customer_id", "channel", "at", "status", "reason"}
    assert Counter((x["campaign"], x["step"], x["customer_id"]) for x in lines).most_common(1)[0][1] == 1
    assert {x["status"] for x in lines} <= STATUSES
    steps = {s["step"]: s for s in status["steps"]}
    for step in ("wecom_invite", "sms_no_deposit", "ai_call", "wecom_high_intent"):
        assert steps[step]["touches"] > 0, step  # every step of the cascade ran
    assert steps["ai_call"]["answered"] > 0 and steps["ai_call"]["unreachable"] > 0
    tz = ZoneInfo("Asia/Shanghai")
    start = datetime(2026, 6, 1, 9, tzinfo=tz)
    for x in lines:
        at = datetime.fromisoformat(x["at"])
        assert at.utcoffset() is not None and start <= at <= start + timedelta(days=3, hours=1)
        if x["status"] != "skipped":
            assert 9 <= at.astimezone(tz).hour < 21, x  # inside the calling window
    reached = {x["customer_id"] for x in lines if x["step"] == "ai_call"}
    invited = {x["customer_id"] for x in lines if x["step"] == "wecom_invite"}
    assert len(reached) < len(invited)  # those who paid dropped out before the call
    retried = [x for x in lines if x["step"] == "ai_call" and x["status"] in ("busy", "no_answer")]
    assert all(x["reason"] in ("busy", "no_answer") for x in retried)
