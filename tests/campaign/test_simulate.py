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


PACED = """\
name: paced_sim
crowd: everyone
pacing: {calls_per_second: 1, sms_per_second: 2, trunk: line3}
vars: {balance_deadline: "2026-06-05"}
steps:
  - id: notice
    channel: sms
    text: "【小店】{name}您好，尾款可以付了，回T退订"
  - id: call
    channel: call
    after_hours: 0.5
    track: balance_reminder
"""


def test_simulate_paces_and_checks_facts_like_the_runner(tmp_path: Path) -> None:
    """`campaign simulate` runs the runner's pacing (SMS/s, calls/s per campaign, concurrent calls
    per trunk) on its simulated clock, and its facts check: a customer whose record lacks what the
    track states is skipped `missing_fact:<variable>`, never called."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for name in ("tracks", "personas", "nlu", "replies", "campaigns"):
        (scripts / name).symlink_to(ROOT / "scripts_zh" / name)
    (scripts / "segments").mkdir()
    (scripts / "segments" / "everyone.yml").write_text("name: everyone\nwhere: {}\n", encoding="utf-8")
    (scripts / "trunks.yml").write_text("trunks:\n  line3: {concurrency: 3}\n", encoding="utf-8")
    camp = tmp_path / "paced_sim.yml"
    camp.write_text(PACED, encoding="utf-8")
    env = {**os.environ, "HUASHU_DATA_DIR": str(tmp_path / "data"), "HUASHU_PHONE_KEY": "k",
           "HUASHU_DATABASE_URL": "", "HUASHU_SCRIPTS_DIR": str(scripts)}
    demo = _huashu(env, "customers", "demo", "--n", "80", "--today", "2026-06-01")
    assert demo.returncode == 0, demo.stderr
    touches_out, attempts_out = tmp_path / "touches.jsonl", tmp_path / "attempts.jsonl"
    run = _huashu(env, "campaign", "simulate", str(camp), "--start", "2026-06-01T10:00:00+08:00", "--days", "1",
                  "--seed", "5", "--touches-out", str(touches_out), "--attempts-out", str(attempts_out), "--json")
    assert run.returncode == 0, run.stderr
    touches = [json.loads(x) for x in touches_out.read_text(encoding="utf-8").splitlines()]
    attempts = [json.loads(x) for x in attempts_out.read_text(encoding="utf-8").splitlines()]
    sms = [x for x in touches if x["step"] == "notice" and x["status"] == "sent"]
    per_second = Counter(datetime.fromisoformat(x["at"]).replace(microsecond=0) for x in sms)
    assert len(sms) > 40 and max(per_second.values()) == 2  # SMS/s held (and used)
    calls = [a for a in attempts if a["channel"] == "call"]
    placed = Counter(datetime.fromisoformat(a["at"]).replace(microsecond=0) for a in calls)
    assert len(calls) >= 10 and max(placed.values()) == 1  # calls/s held
    assert {a["trunk"] for a in calls} == {"line3"}
    edges = sorted([(datetime.fromisoformat(a["at"]), 1) for a in calls] +
                   [(datetime.fromisoformat(a["ended_at"]), -1) for a in calls])
    busy, peak = 0, 0
    for _, step in edges:
        busy += step
        peak = max(peak, busy)
    assert peak == 3  # the trunk was full at times, never over (at every simulated instant)
    skipped = [x for x in touches if x["step"] == "call" and x["status"] == "skipped"]
    assert any(x["reason"] == "missing_fact:product" for x in skipped)  # no deposit product on record
    never_called = {x["customer_id"] for x in skipped if x["reason"].startswith("missing_fact:")}
    assert never_called and not never_called & {a["customer_id"] for a in calls}
