"""The campaign report as one self-contained HTML page: tables plus matplotlib plots embedded as
base64 PNGs (no external files, no CDN), and the numbers as JSON for machines."""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from matplotlib.figure import Figure

from core.conversation import ConversationResult
from dialogue.schema import Track
from wecom.analytics import ALPHA, TrackReport, analyse
from wecom.labels import GRADES_ZH, INTENTS_ZH, OUTCOMES_ZH, zh

TEMPLATES = Path(__file__).parent / "templates"
BLUE, RED, GREY = "#3b6fd8", "#d8453b", "#9aa3b2"
GRADE_COLORS = {"A": "#2e9d5b", "B": "#7cc36b", "C": "#e3c04b", "D": "#e88b3a", "E": "#9aa3b2", "F": "#d8453b"}
MAX_BARS = 20


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _barh(ax: Any, labels: list[str], values: list[float], color: str, title: str, fmt: str = "{:g}") -> None:
    y = list(range(len(labels)))
    ax.barh(y, values, color=color)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    for i, v in enumerate(values):
        ax.text(v, i, " " + fmt.format(v), va="center", fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)


def _cjk() -> None:
    """Chinese labels need a CJK font in matplotlib (Debian: fonts-noto-cjk)."""
    from matplotlib import font_manager, rcParams

    names = {f.name for f in font_manager.fontManager.ttflist}
    found = [n for n in ("Noto Sans CJK SC", "Noto Sans CJK JP", "WenQuanYi Zen Hei", "Droid Sans Fallback")
             if n in names]
    if found:
        rcParams["font.sans-serif"] = [*found, *rcParams["font.sans-serif"]]
        rcParams["axes.unicode_minus"] = False


def funnel_plot(report: TrackReport, title: Callable[[str], str]) -> str:
    steps = list(report.funnel)
    fig = Figure(figsize=(8, 0.45 * max(len(steps), 3) + 1.2))
    ax = fig.subplots()
    y = list(range(len(steps)))
    ax.barh(y, [s.reached for s in steps], color=BLUE, label="到达")
    ax.barh(y, [s.dropped for s in steps], left=[s.reached for s in steps], color=RED, alpha=0.35,
            label="上一步流失")
    for i, s in enumerate(steps):
        share = f"{s.reached / report.n:.0%}" if report.n else ""
        ax.text(s.reached + s.dropped, i, f" {s.reached}（{share}）", va="center", fontsize=8)
    ax.set_yticks(y, [f"{i + 1}. {title(s.node)}" for i, s in enumerate(steps)])
    ax.invert_yaxis()
    ax.set_xlabel("对话数")
    ax.set_title(f"主流程漏斗（共 {report.n} 通）", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def outcome_plot(report: TrackReport) -> str:
    fig = Figure(figsize=(10, 0.3 * max(len(report.outcomes), 6) + 1.2))
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    _barh(ax1, [OUTCOMES_ZH.get(k, k) for k in report.outcomes], list(report.outcomes.values()), BLUE, "结果")
    grades = list(report.grades)
    ax2.bar(grades, [report.grades[g] for g in grades], color=[GRADE_COLORS[g] for g in grades])
    ax2.set_title("评级", fontsize=10)
    ax2.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def intent_plot(report: TrackReport) -> str:
    items = list(report.intents.items())[:MAX_BARS]
    fig = Figure(figsize=(8, 0.3 * max(len(items), 4) + 1.2))
    ax = fig.subplots()
    _barh(ax, [INTENTS_ZH.get(k, k) for k, _ in items], [v for _, v in items], BLUE,
          f"客户意图（{report.speech_turns} 次说话中没听懂 {report.fallback_rate:.1%}）")
    return _png(fig)


def barge_in_plot(report: TrackReport) -> str | None:
    clips = [c for c in report.clips if c.plays][:MAX_BARS]
    if not clips:
        return None
    fig = Figure(figsize=(8, 0.3 * max(len(clips), 4) + 1.2))
    ax = fig.subplots()
    _barh(ax, [c.clip for c in clips], [100 * c.rate for c in clips], GREY, "每段录音被打断的比例（%）", "{:.0f}")
    return _png(fig)


def variant_plot(report: TrackReport) -> str | None:
    if len(report.variants) < 2:
        return None
    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    names = [v.variant or "默认" for v in report.variants]
    rates = [100 * v.rate for v in report.variants]
    # 95 % normal-approximation interval per variant
    errs = [196 * math.sqrt(v.rate * (1 - v.rate) / v.n) if v.n else 0.0 for v in report.variants]
    ax.bar(names, rates, yerr=errs, capsize=4, color=BLUE)
    ax.set_ylabel("转化率（A 级），%")
    ax.set_title("各版本转化率（95% 置信区间）", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def report_data(report: TrackReport) -> dict[str, Any]:
    """Every number of the report as plain JSON (embedded in the page, and for tests/tools)."""
    return {
        "track": report.track, "since": report.since.isoformat() if report.since else None, "n": report.n,
        "converted": report.converted, "outcomes": report.outcomes, "grades": report.grades,
        "intents": report.intents, "speech_turns": report.speech_turns, "fallback_turns": report.fallback_turns,
        "fallback_rate": round(report.fallback_rate, 6), "ended_by": report.ended_by,
        "mean_duration_s": report.mean_duration_s, "dwell_estimated": report.dwell_estimated,
        "nodes": [asdict(n) for n in report.nodes],
        "funnel": [{**asdict(s), "drop_rate": round(s.drop_rate, 6), "title": report.titles.get(s.node, s.node)}
                   for s in report.funnel],
        "clips": [{**asdict(c), "rate": round(c.rate, 6)} for c in report.clips],
        "variants": [{**asdict(v), "rate": round(v.rate, 6)} for v in report.variants],
        "significance": [{**asdict(s), "significant": s.significant} for s in report.significance],
    }


def render_html(report: TrackReport, title: str = "", generated_at: datetime | None = None) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    data = report_data(report)

    def node_title(node: str) -> str:
        return report.titles.get(node) or node

    _cjk()
    plots = {"funnel": funnel_plot(report, node_title), "outcomes": outcome_plot(report), "intents": intent_plot(report),
             "barge_in": barge_in_plot(report), "variants": variant_plot(report)} if report.n else {}
    return env.get_template("report.html").render(
        r=report, data=data, title=title, plots=plots, alpha=ALPHA, node_title=node_title, zh=zh,
        outcomes_zh=OUTCOMES_ZH, intents_zh=INTENTS_ZH, grades_zh=GRADES_ZH,
        generated_at=(generated_at or datetime.now()).isoformat(timespec="seconds"),
        data_json=json.dumps(data, ensure_ascii=False).replace("<", "\\u003c"))


def build_report(results: list[ConversationResult], track_id: str, track: Track | None = None,
                 since: datetime | None = None, generated_at: datetime | None = None) -> tuple[TrackReport, str]:
    """Analyse and render in one go: (numbers, HTML)."""
    report = analyse(results, track_id, track, since)
    return report, render_html(report, track.title if track else "", generated_at)
