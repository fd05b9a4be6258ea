"""`huashu report`: numbers in the HTML checked against conversations written to a real SQLite store."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from core.conversation import ConversationResult, TurnRecord, Utterance
from core.settings import Settings
from dialogue.assembly import Runtime
from dialogue.loader import Bundle
from store.sql import SqlStore
from tests.conftest import ROOT
from tests.wecom.conftest import TZ
from wecom.analytics import chi_square, two_proportion_z
from wecom.demo_calls import load_script, simulate_calls
from wecom.report import build_report

T0 = datetime(2026, 7, 1, 10, 0, tzinfo=TZ)
TRACK = "wecom_add_gift"


def turn(kind: str, node: str, clips: tuple[str, ...], at: datetime | None, intent: str | None = None,
         user: str | None = None, barged: bool = False) -> TurnRecord:
    return TurnRecord(user=user, kind=kind, intent=intent, confidence=0.9 if intent else None, node=node,
                      bot=tuple(Utterance(c, c) for c in clips), actions=(), barged_in=barged,
                      at=at.isoformat() if at else None)


def conv(cid: str, variant: str, start: datetime, turns: list[TurnRecord], path: tuple[str, ...], outcome: str,
         grade: str, ended_by: str, end: datetime | None = None, track: str = TRACK) -> ConversationResult:
    last = max((datetime.fromisoformat(t.at) for t in turns if t.at), default=start)
    return ConversationResult(cid, f"cust-{cid}", track, "xiaomei", "call", variant, start, end or last, outcome,
                              grade, (outcome,), {}, path, tuple(turns), ended_by)


def known_conversations() -> list[ConversationResult]:
    s = T0
    c1 = conv("k1", "a", s, [
        turn("start", "opening", ("disclosure", "wag_opening"), s),
        turn("speech", "explain", ("wag_explain",), s + timedelta(seconds=10), "greet", "喂", barged=True),
        turn("speech", "how_to_add", ("wag_how_to_add",), s + timedelta(seconds=30), "affirm", "好的"),
        turn("speech", "close_confirm", ("wag_confirm_add",), s + timedelta(seconds=50), "affirm", "好的"),
    ], ("opening", "explain", "how_to_add", "close_confirm"), "high_intent", "A", "bot")
    s2 = T0 + timedelta(hours=1)
    c2 = conv("k2", "a", s2, [
        turn("start", "opening", ("disclosure", "wag_opening"), s2),
        turn("speech", "opening", ("fallback_prompt", "wag_opening"), s2 + timedelta(seconds=8), "out_of_scope", "天气"),
        turn("hangup", "opening", (), s2 + timedelta(seconds=20)),
    ], ("opening",), "completed", "C", "customer")
    s3 = T0 + timedelta(hours=2)
    c3 = conv("k3", "b", s3, [
        turn("start", "opening", ("disclosure", "wag_opening"), s3),
        turn("speech", "persuade_once", ("wag_explain",), s3 + timedelta(seconds=5), "deny", "不需要", barged=True),
        turn("speech", "close_not_interested", ("bye_not_interested",), s3 + timedelta(seconds=25), "deny", "不用"),
    ], ("opening", "persuade_once", "close_not_interested"), "not_interested", "D", "bot")
    s4 = T0 + timedelta(hours=3)  # an old record without turn times: 30 s over 3 turns
    c4 = conv("k4", "b", s4, [
        turn("start", "opening", ("disclosure", "wag_opening"), None),
        turn("silence", "opening", ("silence_prompt", "wag_opening"), None),
        turn("hangup", "opening", (), None),
    ], ("opening",), "hung_up_early", "E", "customer", end=s4 + timedelta(seconds=30))
    other_track = conv("k5", "", s, [turn("start", "opening", ("pd_opening",), s)], ("opening",), "completed", "C",
                       "bot", track="presale_deposit")
    too_old = conv("k6", "a", T0 - timedelta(days=40), [turn("start", "opening", ("wag_opening",), T0 - timedelta(days=40))],
                   ("opening",), "no_response", "E", "bot")
    return [c1, c2, c3, c4, other_track, too_old]


class Cells(HTMLParser):
    """Collects <tr data-X="key"> rows' <td data-metric="m"> cells and [data-metric] outside tables."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[tuple[str, str], dict[str, str]] = {}
        self.kpis: dict[str, str] = {}
        self.images: set[str] = set()
        self._row: tuple[str, str] | None = None
        self._metric: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "tr":
            key = next(((k, v) for k, v in a.items() if k.startswith("data-")), None)
            self._row = key
            if key:
                self.rows[key] = {}
        if "data-metric" in a:
            self._metric = a["data-metric"]
        if tag == "img" and a.get("src", "").startswith("data:image/png;base64,"):
            self.images.add(a.get("id", ""))

    def handle_data(self, data: str) -> None:
        if self._metric is not None and data.strip():
            if self._row is not None:
                self.rows[self._row][self._metric] = data.strip()
            else:
                self.kpis[self._metric] = data.strip()
            self._metric = None

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None


def parse(html: str) -> tuple[dict[str, Any], Cells]:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert m
    cells = Cells()
    cells.feed(html)
    return json.loads(m.group(1)), cells


def test_report_numbers_match_the_stored_conversations(wsettings: Settings, store: SqlStore, tmp_path: Path) -> None:
    assert store.write_results(known_conversations()) == 6
    out = tmp_path / "report.html"
    env = {**os.environ, "HUASHU_DATA_DIR": str(wsettings.data_dir), "HUASHU_PHONE_KEY": wsettings.phone_key,
           "HUASHU_TIMEZONE": "Asia/Shanghai"}
    proc = subprocess.run([sys.executable, "-m", "huashu", "report", "--track", TRACK, "--since", "2026-06-15",
                           "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "4 conversations" in proc.stdout
    data, cells = parse(out.read_text(encoding="utf-8"))

    assert data["n"] == 4 and cells.kpis["n"] == "4" and data["converted"] == 1 and cells.kpis["conversion"] == "25.0%"
    assert data["outcomes"] == {"high_intent": 1, "completed": 1, "not_interested": 1, "hung_up_early": 1}
    assert data["grades"] == {"A": 1, "B": 0, "C": 1, "D": 1, "E": 1, "F": 0}
    assert cells.rows[("data-grade", "E")]["count"] == "1"
    # funnel
    nodes = {n["node"]: n for n in data["nodes"]}
    expected_reached = {"opening": 4, "explain": 1, "how_to_add": 1, "close_confirm": 1, "persuade_once": 1,
                        "close_not_interested": 1, "resend": 0}
    for node, n in expected_reached.items():
        assert nodes[node]["reached"] == n, node
        assert cells.rows[("data-node", node)]["reached"] == str(n)
    assert nodes["opening"]["hung_up_here"] == 2 and cells.rows[("data-node", "opening")]["hung_up_here"] == "2"
    assert sum(n["hung_up_here"] for n in data["nodes"]) == 2
    # dwell: opening waits 10, 8, 12, 5 (timed) and 10, 10 (k4: 30 s over 3 turns)
    assert nodes["opening"]["visits"] == 6
    assert nodes["opening"]["dwell_mean_s"] == pytest.approx(55 / 6)
    assert cells.rows[("data-node", "opening")]["dwell_mean_s"] == "9.2"
    assert nodes["explain"]["dwell_mean_s"] == pytest.approx(20.0) and nodes["persuade_once"]["dwell_mean_s"] == 20
    assert nodes["close_confirm"]["dwell_mean_s"] is None and data["dwell_estimated"] is True
    assert next(n["node"] for n in data["nodes"]) == "opening"  # funnel order starts at the track's start
    # barge-in per clip
    clips = {c["clip"]: c for c in data["clips"]}
    assert (clips["wag_opening"]["plays"], clips["wag_opening"]["barge_ins"]) == (4, 2)
    assert cells.rows[("data-clip", "wag_opening")]["rate"] == "50.0%"
    assert (clips["wag_explain"]["plays"], clips["wag_explain"]["barge_ins"]) == (2, 0)
    assert clips["wag_how_to_add"]["plays"] == 1 and "disclosure" not in clips
    # intents and fallback
    assert data["intents"] == {"affirm": 2, "deny": 2, "greet": 1, "out_of_scope": 1}
    assert (data["speech_turns"], data["fallback_turns"]) == (6, 1)
    assert cells.kpis["fallback_rate"] == "16.7%"
    # variants and significance: a = 1/2 converted, b = 0/2
    variants = {v["variant"]: v for v in data["variants"]}
    assert (variants["a"]["n"], variants["a"]["converted"], variants["b"]["n"], variants["b"]["converted"]) == (2, 1, 2, 0)
    z = 0.5 / math.sqrt(0.25 * 0.75 * (1 / 2 + 1 / 2))
    p = math.erfc(z / math.sqrt(2))
    tests = {s["test"]: s for s in data["significance"]}
    assert tests["two-proportion z-test"]["statistic"] == pytest.approx(z)
    assert tests["two-proportion z-test"]["p_value"] == pytest.approx(p)
    assert tests["chi-square"]["statistic"] == pytest.approx(z * z) and tests["chi-square"]["p_value"] == pytest.approx(p)
    assert tests["chi-square"]["significant"] is False
    assert {"plot-funnel", "plot-outcomes", "plot-intents", "plot-barge-in", "plot-variants"} <= cells.images


def test_significance_helpers() -> None:
    z, p = two_proportion_z(120, 1000, 90, 1000)  # type: ignore[misc]
    pooled = 210 / 2000
    assert z == pytest.approx((0.12 - 0.09) / math.sqrt(pooled * (1 - pooled) * 2 / 1000))
    assert p == pytest.approx(math.erfc(abs(z) / math.sqrt(2))) and p < 0.05
    assert two_proportion_z(0, 10, 0, 10) is None and two_proportion_z(1, 0, 1, 5) is None
    stat, p3 = chi_square([(10, 90), (20, 80), (30, 70)])  # type: ignore[misc]
    # by hand: expected converted 20 per row, not converted 80
    by_hand = sum((o - e) ** 2 / e for o, e in [(10, 20), (20, 20), (30, 20), (90, 80), (80, 80), (70, 80)])
    assert stat == pytest.approx(by_hand) and p3 < 0.01
    assert chi_square([(0, 5), (0, 7)]) is None


def test_report_cli_bad_input(wsettings: Settings, store: SqlStore, tmp_path: Path) -> None:
    env = {**os.environ, "HUASHU_DATA_DIR": str(wsettings.data_dir), "HUASHU_PHONE_KEY": wsettings.phone_key}
    run = [sys.executable, "-m", "huashu", "report"]
    bad_since = subprocess.run([*run, "--track", TRACK, "--since", "last tuesday"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=120)
    assert bad_since.returncode == 2 and "--since" in bad_since.stderr and "Traceback" not in bad_since.stderr
    unknown = subprocess.run([*run, "--track", "nope", "--out", str(tmp_path / "x.html")], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "unknown track 'nope'" in unknown.stderr and "Traceback" not in unknown.stderr


def test_demo_calls_report_has_the_funnel(kw_runtime: Runtime, bundle: Bundle, wsettings: Settings) -> None:
    """Simulated calls through the engine (stand-in NLU here; the CLI test below uses the real one)."""
    from store.demo import generate_customers

    store: Any = kw_runtime.store
    store.upsert_customers(list(generate_customers(50, 7, T0.date())))
    script = load_script(wsettings.effective_scripts_dir)
    n = simulate_calls(kw_runtime.engine, TRACK, 40, script=script, start=T0, seed=3)
    assert n == 40
    again = simulate_calls(kw_runtime.engine, TRACK, 40, script=script, start=T0, seed=3)  # same ids: nothing new
    results = store.list_conversations(track=TRACK)
    assert again == 40 and len(results) == 40
    report, html = build_report(results, TRACK, bundle.tracks[TRACK])
    data, cells = parse(html)
    assert "plot-funnel" in cells.images
    assert data["n"] == 40 and sum(data["outcomes"].values()) == 40
    assert {n["node"]: n["reached"] for n in data["nodes"]}["opening"] == 40
    assert data["speech_turns"] == sum(1 for r in results for t in r.turns if t.kind == "speech")
    assert any(c["barge_ins"] for c in data["clips"])
    assert report.dwell_estimated is False  # the engine stamps every turn


@pytest.mark.slow
def test_report_cli_on_demo_data_with_the_real_nlu(tmp_path: Path, nlu_model_dir: Path) -> None:
    env = {**os.environ, "HUASHU_DATA_DIR": str(tmp_path / "data"), "HUASHU_PHONE_KEY": "demo-report",
           "HUASHU_NLU_MODEL_DIR": str(nlu_model_dir)}
    cli = [sys.executable, "-m", "huashu"]
    demo = subprocess.run([*cli, "customers", "demo", "--n", "300"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr
    out = tmp_path / "demo-report.html"
    proc = subprocess.run([*cli, "report", "--track", "presale_deposit", "--demo-calls", "60", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    data, cells = parse(out.read_text(encoding="utf-8"))
    assert "plot-funnel" in cells.images and data["n"] >= 60  # plus the demo generator's earlier calls
    assert data["speech_turns"] > 0 and data["nodes"][0]["reached"] >= 60


def test_funnel_follows_the_main_path_with_drop_off_per_step() -> None:
    from dataclasses import replace

    from wecom.analytics import funnel, main_path

    from .conftest import NOW, call_result

    base = call_result("x", "c1", "high_intent", NOW)

    def conv(i: int, path: tuple[str, ...], grade: str, ended_by: str) -> ConversationResult:
        return replace(base, conversation_id=f"c{i}", node_path=path, grade=grade, ended_by=ended_by)
    results = [conv(i, ("opening", "explain", "answer_price", "explain", "close_send_link"), "A", "bot")
               for i in range(3)]
    results += [conv(3, ("opening", "close_send_link"), "A", "bot"),
                conv(4, ("opening", "explain"), "C", "customer"), conv(5, ("opening", "explain"), "C", "customer"),
                conv(6, ("opening",), "E", "customer")]
    steps = main_path(results, None)
    assert steps == ("opening", "explain", "answer_price", "close_send_link")  # first visits, converted paths
    got = [(s.node, s.reached, s.dropped, s.hung_up_before) for s in funnel(results, steps)]
    assert got == [("opening", 7, 0, 0), ("explain", 5, 2, 1), ("answer_price", 3, 2, 2),
                   ("close_send_link", 3, 0, 0)]
