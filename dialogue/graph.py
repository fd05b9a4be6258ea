"""Draw a talk track as a picture for ops review: SVG, HTML (SVG + hover), PNG (matplotlib).

Layout: Graphviz `dot` (Debian package `graphviz`) places the nodes, routes the edges and puts
each edge label where it overlaps nothing; we draw the result ourselves (node titles, clip words
on hover, colours by grade). Without `dot` on the machine a simple layered layout is used (BFS
columns from the start node; labels may then overlap) and a warning says so. The global
handlers are one box whose edges are dashed; end nodes are coloured by the grade of their outcome.
"""

from __future__ import annotations

import html
import logging
import shutil
import subprocess
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from core.vocab import OUTCOME_GRADE
from dialogue.facts import sample_values
from dialogue.loader import Bundle
from dialogue.render import render_text
from dialogue.schema import BACK, Branch, Track

log = logging.getLogger(__name__)

HANDLERS = "⚑handlers"  # id of the pseudo-node holding the global handlers
GRADE_COLORS = {"A": "#2e7d32", "B": "#00897b", "C": "#f9a825", "D": "#ef6c00", "E": "#757575", "F": "#c62828"}
GRADE_FILLS = {"A": "#e8f5e9", "B": "#e0f2f1", "C": "#fff8e1", "D": "#fff3e0", "E": "#f5f5f5", "F": "#ffebee"}
KIND_STYLE = {  # border, fill
    "wait": ("#1565c0", "#e3f2fd"), "say": ("#5c6bc0", "#ffffff"), "branch": ("#6a1b9a", "#f3e5f5"),
    "return": ("#546e7a", "#eceff1"), "handlers": ("#37474f", "#fafafa"),
}
NODE_W, NODE_H, COL_GAP, ROW_GAP, MARGIN, TITLE_H = 210, 46, 120, 16, 24, 64
FONT = "'Noto Sans CJK SC','Noto Sans SC','PingFang SC','Microsoft YaHei',sans-serif"


@dataclass(frozen=True, slots=True)
class GNode:
    id: str
    label: str  # the node id (or "global handlers")
    sub: str  # a short line of what the bot says, or the outcome
    tooltip: str  # every clip's words, rendered with the track's default variables
    kind: str  # wait | say | branch | return | end | transfer | handlers
    outcome: str = ""
    x: float = 0.0
    y: float = 0.0

    @property
    def colors(self) -> tuple[str, str]:
        if self.kind in ("end", "transfer"):
            grade = OUTCOME_GRADE.get(self.outcome, "C")
            return GRADE_COLORS[grade], GRADE_FILLS[grade]
        return KIND_STYLE[self.kind]


@dataclass(frozen=True, slots=True)
class GEdge:
    src: str
    dst: str
    label: str
    dashed: bool = False  # a global handler (or silence / fallback limit)
    points: tuple[tuple[float, float], ...] = ()  # dot's spline: p0, then (c1, c2, p) per segment
    label_at: tuple[float, float] | None = None  # where dot put the label (centre)


@dataclass(frozen=True)
class Layout:
    track: str
    title: str
    nodes: dict[str, GNode]
    edges: tuple[GEdge, ...]
    width: float
    height: float
    legend: tuple[tuple[str, str], ...] = field(default=())  # (colour, text)


def _short(text: str, limit: int = 14) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _edges(track: Track) -> list[GEdge]:
    merged: dict[tuple[str, str, bool], list[str]] = {}

    def add(src: str, dst: str, label: str, dashed: bool = False) -> None:
        merged.setdefault((src, dst, dashed), []).append(label)

    for node_id, node in track.nodes.items():
        for intent, edge in node.on.items():
            if edge.goto != BACK:
                add(node_id, edge.goto, intent)
        if isinstance(node.next, str):
            add(node_id, node.next, "")
        elif isinstance(node.next, Branch):
            for value, target in node.next.cases.items():
                add(node_id, target, f"{node.next.subject}={value}")
            if node.next.unset is not None:
                add(node_id, node.next.unset, f"{node.next.subject} unset")
            add(node_id, node.next.default, "else")
    for intent, edge in track.handlers.items():
        add(HANDLERS, edge.goto, intent, True)
    add(HANDLERS, track.silence.then, f"silence×{track.silence.limit + 1}", True)
    add(HANDLERS, track.fallback.then, f"not understood×{track.fallback.limit + 1}", True)
    return [GEdge(s, d, " / ".join(labels), dashed) for (s, d, dashed), labels in merged.items()]


def _gnodes(bundle: Bundle, track: Track) -> dict[str, GNode]:
    persona = bundle.persona_for(track)
    values = {"agent_name": persona.name, "brand": persona.brand, **persona.variables,
              **sample_values(track, date.today())}
    out: dict[str, GNode] = {}
    for node_id, node in track.nodes.items():
        texts = [render_text(persona.clips[c].text, values) for c in node.say if c in persona.clips]
        backs = [i for i, e in node.on.items() if e.goto == BACK]
        tip = "\n".join(f"[{c}] {t}" for c, t in zip(node.say, texts, strict=False))
        if backs:
            tip += f"\n↩ {', '.join(backs)}: back to where the customer was"
        outcome = ""
        if node.end is not None:
            kind, outcome = "end", node.end.outcome
            sub = f"■ {outcome} ({OUTCOME_GRADE[outcome]})"
        elif node.transfer is not None:
            kind, outcome = "transfer", "transferred"
            sub = f"☎ transfer: {node.transfer}"
        elif isinstance(node.next, Branch):
            kind, sub = "branch", f"◇ {node.next.subject}?"
        elif node.return_:
            kind, sub = "return", "↩ " + _short(texts[0] if texts else "", 12)
        else:
            kind = "wait" if node.waits else "say"
            sub = _short(texts[-1] if texts else "", 14)
            if backs:
                sub = "↩ " + _short(sub, 12)
        label = (node.title or node_id) + ("  ▶" if node_id == track.start else "")
        out[node_id] = GNode(node_id, label, sub, tip or node_id, kind, outcome)
    handler_tip = "\n".join(f"{i} → {e.goto}" for i, e in track.handlers.items())
    out[HANDLERS] = GNode(HANDLERS, "全局处理 global handlers", "any waiting node (dashed)", handler_tip, "handlers")
    return out


def _layers(track: Track, edges: Iterable[GEdge]) -> dict[str, int]:
    succ: dict[str, list[str]] = {}
    for e in edges:
        succ.setdefault(e.src, []).append(e.dst)
    layer = {track.start: 0, HANDLERS: 0}
    queue = deque([track.start, HANDLERS])
    while queue:
        cur = queue.popleft()
        for nxt in succ.get(cur, ()):
            if nxt not in layer:
                layer[nxt] = layer[cur] + 1
                queue.append(nxt)
    last = max(layer.values()) + 1
    for node_id in track.nodes:  # unreachable nodes (validation forbids them) still get drawn
        layer.setdefault(node_id, last)
    return layer


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _plain_fields(line: str) -> list[str]:
    """One line of `dot -Tplain`: space-separated, "quoted" fields may hold spaces."""
    import shlex

    return shlex.split(line, posix=True)


def dot_layout(track: Track, nodes: dict[str, GNode], edges: list[GEdge]) -> Layout | None:
    """Positions and edge routes from Graphviz dot (None when dot is not installed)."""
    exe = shutil.which("dot")
    if exe is None:
        return None
    ppi = 100.0  # our pixels per dot inch
    ids = {n: f"n{i}" for i, n in enumerate(nodes)}
    lines = ["digraph track {", "rankdir=LR; nodesep=0.22; ranksep=0.9; splines=true;",
             f'node [shape=box fixedsize=true width={NODE_W / ppi} height={NODE_H / ppi}];',
             'edge [fontsize=10 fontname="DejaVu Sans"];']
    lines += [f"{ids[n]};" for n in [track.start, HANDLERS, *[n for n in nodes if n not in (track.start, HANDLERS)]]]
    for e in edges:
        lines.append(f"{ids[e.src]} -> {ids[e.dst]} [label={_quote(e.label)}];" if e.label
                     else f"{ids[e.src]} -> {ids[e.dst]};")
    lines.append("}")
    # No timeout: dot on a track-sized graph is bounded work, and subprocess's timed wait polls
    # with time.sleep, which libfaketime (the README tour test fakes the hour) fails with EINVAL.
    run = subprocess.run([exe, "-Tplain"], input="\n".join(lines), capture_output=True, text=True, check=False)
    if run.returncode != 0:
        log.warning("dot failed (%s); using the built-in layout", run.stderr.strip()[:200])
        return None
    back = {v: k for k, v in ids.items()}
    height_in = 0.0
    centres: dict[str, tuple[float, float]] = {}
    routes: dict[tuple[str, str], list[tuple[tuple[tuple[float, float], ...], tuple[float, float] | None]]] = {}
    width_in = 0.0
    for line in run.stdout.splitlines():
        f = _plain_fields(line)
        if not f:
            continue
        if f[0] == "graph":
            width_in, height_in = float(f[2]), float(f[3])
        elif f[0] == "node":
            centres[back[f[1]]] = (float(f[2]), float(f[3]))
        elif f[0] == "edge":
            n = int(f[3])
            pts = tuple((float(f[4 + 2 * i]), float(f[5 + 2 * i])) for i in range(n))
            rest = f[4 + 2 * n:]
            at = (float(rest[1]), float(rest[2])) if len(rest) >= 5 else None
            routes.setdefault((back[f[1]], back[f[2]]), []).append((pts, at))

    def px(p: tuple[float, float]) -> tuple[float, float]:
        return MARGIN + p[0] * ppi, TITLE_H + (height_in - p[1]) * ppi

    placed = {n: GNode(g.id, g.label, g.sub, g.tooltip, g.kind, g.outcome,
                       px(centres[n])[0] - NODE_W / 2, px(centres[n])[1] - NODE_H / 2) for n, g in nodes.items()}
    routed = []
    for e in edges:
        pts, at = routes[(e.src, e.dst)].pop(0)
        routed.append(GEdge(e.src, e.dst, e.label, e.dashed, tuple(px(p) for p in pts),
                            px(at) if at is not None else None))
    return Layout(track.id, "", placed, tuple(routed), MARGIN * 2 + width_in * ppi, TITLE_H + height_in * ppi + 70)


def build_layout(bundle: Bundle, track_id: str) -> Layout:
    """Compute the picture of one track: positions, edges, colours (Graphviz dot when installed)."""
    track = bundle.track(track_id)
    edges = _edges(track)
    nodes = _gnodes(bundle, track)
    legend = tuple((GRADE_COLORS[g], f"{g} {OUTCOME_GRADE_NAMES[g]}") for g in GRADE_COLORS)
    title = f"{track.title}（{track.id}）"
    laid = dot_layout(track, nodes, edges)
    if laid is not None:
        return Layout(laid.track, title, laid.nodes, laid.edges, laid.width, laid.height, legend)
    log.warning("Graphviz dot not found (apt-get install graphviz): built-in layout, labels may overlap")
    layer = _layers(track, edges)
    columns: dict[int, list[str]] = {}
    for node_id in [track.start, HANDLERS, *track.nodes]:
        if node_id not in columns.get(layer[node_id], []):
            columns.setdefault(layer[node_id], []).append(node_id)
    preds: dict[str, list[str]] = {}
    for e in edges:
        preds.setdefault(e.dst, []).append(e.src)
    row: dict[str, float] = {}
    for col in sorted(columns):
        ids = columns[col]
        if col > 0:  # barycentre of the parents in earlier columns keeps edges short
            def key(n: str) -> float:
                ps = [row[p] for p in preds.get(n, ()) if p in row]
                return sum(ps) / len(ps) if ps else float("inf")

            ids.sort(key=key)
        for i, n in enumerate(ids):
            row[n] = i
    tallest = max(len(v) for v in columns.values())
    placed: dict[str, GNode] = {}
    for col, ids in columns.items():
        offset = (tallest - len(ids)) * (NODE_H + ROW_GAP) / 2  # centre short columns
        for i, n in enumerate(ids):
            g = nodes[n]
            placed[n] = GNode(g.id, g.label, g.sub, g.tooltip, g.kind, g.outcome,
                              MARGIN + col * (NODE_W + COL_GAP), TITLE_H + offset + i * (NODE_H + ROW_GAP))
    width = MARGIN * 2 + len(columns) * NODE_W + (len(columns) - 1) * COL_GAP
    height = TITLE_H + tallest * (NODE_H + ROW_GAP) + 70
    return Layout(track.id, title, placed, tuple(edges), width, height, legend)


OUTCOME_GRADE_NAMES = {"A": "已承诺", "B": "有兴趣", "C": "中立", "D": "拒绝", "E": "未接通", "F": "屏蔽"}


Point = tuple[float, float]


def _curve(layout: Layout, e: GEdge) -> tuple[tuple[Point, Point, Point, Point], Point]:
    """Cubic Bézier control points of an edge and the point where its label goes."""
    a, b = layout.nodes[e.src], layout.nodes[e.dst]
    if b.x > a.x:  # forward: right side to left side
        x1, y1, x2, y2 = a.x + NODE_W, a.y + NODE_H / 2, b.x, b.y + NODE_H / 2
        dx = (x2 - x1) / 2
        c1, c2 = (x1 + dx, y1), (x2 - dx, y2)
        t = 0.78  # near the target: targets differ in height, so labels rarely collide
    else:  # same column or backwards: loop out through the gap on the left
        x1, y1, x2, y2 = a.x, a.y + NODE_H / 2, b.x, b.y + NODE_H / 2
        bend = -COL_GAP * 0.45
        c1, c2 = (x1 + bend, y1), (x2 + bend, y2)
        t = 0.5
    pts = ((x1, y1), c1, c2, (x2, y2))
    label = (_bez(x1, c1[0], c2[0], x2, t), _bez(y1, c1[1], c2[1], y2, t))
    return pts, label


def _path(layout: Layout, e: GEdge) -> tuple[str, Point]:
    """SVG path data of an edge and its label point."""
    if e.points:
        head, *rest = e.points
        segs = " ".join(f"C{rest[i][0]:.1f},{rest[i][1]:.1f} {rest[i + 1][0]:.1f},{rest[i + 1][1]:.1f} "
                        f"{rest[i + 2][0]:.1f},{rest[i + 2][1]:.1f}" for i in range(0, len(rest) - 2, 3))
        return f"M{head[0]:.1f},{head[1]:.1f} {segs}", e.label_at or head
    (p0, p1, p2, p3), label = _curve(layout, e)
    return (f"M{p0[0]:.1f},{p0[1]:.1f} C{p1[0]:.1f},{p1[1]:.1f} {p2[0]:.1f},{p2[1]:.1f} "
            f"{p3[0]:.1f},{p3[1]:.1f}"), label


def _bez(p0: float, p1: float, p2: float, p3: float, t: float) -> float:
    s = 1 - t
    return s * s * s * p0 + 3 * s * s * t * p1 + 3 * s * t * t * p2 + t * t * t * p3


def _text_width(text: str, size: float) -> float:
    return sum(size if ord(ch) > 0x2E80 else size * 0.6 for ch in text)


def to_svg(layout: Layout) -> str:
    """The picture as a standalone SVG document (tooltips as <title>)."""
    esc = html.escape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{layout.width:.0f}" height="{layout.height:.0f}" '
           f'viewBox="0 0 {layout.width:.0f} {layout.height:.0f}" font-family="{esc(FONT)}">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#607d8b"/></marker></defs>',
           '<rect width="100%" height="100%" fill="#ffffff"/>',
           f'<text x="{MARGIN}" y="34" font-size="20" font-weight="bold" fill="#263238">{esc(layout.title)}</text>']
    labels = []
    for e in layout.edges:
        d, (lx, ly) = _path(layout, e)
        dash = ' stroke-dasharray="5,4"' if e.dashed else ""
        color = "#90a4ae" if e.dashed else "#607d8b"
        out.append(f'<path class="edge" data-src="{esc(e.src)}" data-dst="{esc(e.dst)}" d="{d}" fill="none" '
                   f'stroke="{color}" stroke-width="1.3"{dash} marker-end="url(#arrow)"><title>'
                   f'{esc(e.src)} → {esc(e.dst)}: {esc(e.label)}</title></path>')
        if not e.label:
            continue
        w = _text_width(e.label, 10) + 6
        labels.append(f'<g class="elabel"><rect x="{lx - w / 2:.1f}" y="{ly - 8:.1f}" width="{w:.1f}" height="14" '
                      f'rx="3" fill="#ffffff" fill-opacity="0.85"/><text x="{lx:.1f}" y="{ly + 3:.1f}" font-size="10" '
                      f'text-anchor="middle" fill="#37474f">{esc(e.label)}</text></g>')
    out += labels
    for n in layout.nodes.values():
        stroke, fill = n.colors
        width = 2.6 if n.label.endswith("▶") or n.kind in ("end", "transfer") else 1.4
        dash = ' stroke-dasharray="4,3"' if n.kind in ("branch", "handlers") else ""
        out.append(f'<g class="node" id="node-{esc(n.id)}" data-node="{esc(n.id)}"><title>{esc(n.id)}\n'
                   f'{esc(n.tooltip)}</title><rect x="{n.x:.1f}" y="{n.y:.1f}" width="{NODE_W}" height="{NODE_H}" '
                   f'rx="8" fill="{fill}" stroke="{stroke}" stroke-width="{width}"{dash}/>'
                   f'<text x="{n.x + 10:.1f}" y="{n.y + 19:.1f}" font-size="13" font-weight="bold" fill="#212121">'
                   f'{esc(n.label)}</text><text x="{n.x + 10:.1f}" y="{n.y + 37:.1f}" font-size="11" '
                   f'fill="#455a64">{esc(n.sub)}</text></g>')
    y = layout.height - 28
    x = float(MARGIN)
    for color, text in layout.legend:
        out.append(f'<rect x="{x:.0f}" y="{y - 11:.0f}" width="14" height="14" rx="3" fill="{color}"/>'
                   f'<text x="{x + 20:.0f}" y="{y:.0f}" font-size="12" fill="#37474f">{esc(text)}</text>')
        x += 40 + _text_width(text, 12)
    out.append(f'<text x="{x + 10:.0f}" y="{y:.0f}" font-size="12" fill="#607d8b">虚线 = 全局处理 · '
               f'↩ = 回答后回到原处 · ◇ = 按信息分支 · ▶ = 开始</text>')
    out.append("</svg>")
    return "\n".join(out)


HTML_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: {font}; margin: 16px; color: #263238; }}
svg {{ max-width: 100%; height: auto; }}
#tip {{ position: fixed; max-width: 520px; padding: 8px 10px; background: #263238; color: #fff;
       border-radius: 6px; font-size: 13px; white-space: pre-wrap; pointer-events: none; display: none; }}
.node {{ cursor: pointer; }} .node:hover rect {{ stroke-width: 3.5; }}
.dim {{ opacity: 0.15; }}
</style></head><body>
<p>鼠标停在节点上可看机器人说的话；点一个节点只看它的连线（再点一次恢复）。</p>
{svg}
<div id="tip"></div>
<script>
const tip = document.getElementById('tip');
let focus = null;
document.querySelectorAll('.node').forEach(g => {{
  const text = g.querySelector('title').textContent;
  g.addEventListener('mousemove', ev => {{ tip.textContent = text; tip.style.display = 'block';
    tip.style.left = (ev.clientX + 14) + 'px'; tip.style.top = (ev.clientY + 14) + 'px'; }});
  g.addEventListener('mouseleave', () => {{ tip.style.display = 'none'; }});
  g.addEventListener('click', () => {{
    focus = focus === g.dataset.node ? null : g.dataset.node;
    document.querySelectorAll('.edge').forEach(e => e.classList.toggle('dim',
      focus !== null && e.dataset.src !== focus && e.dataset.dst !== focus));
  }});
}});
</script></body></html>
"""


def to_html(layout: Layout) -> str:
    """A page embedding the SVG, with hover tooltips showing each node's words."""
    return HTML_PAGE.format(title=html.escape(layout.title), font=FONT, svg=to_svg(layout))


def _cjk_font() -> str | None:
    from matplotlib import font_manager

    for name in ("Noto Sans CJK SC", "Noto Sans SC", "Noto Serif CJK SC", "WenQuanYi Zen Hei", "SimHei",
                 "Microsoft YaHei", "PingFang SC"):
        try:
            font_manager.findfont(name, fallback_to_default=False)
            return name
        except ValueError:
            continue
    return None


def to_png(layout: Layout, path: Path, dpi: int = 150) -> None:
    """Render the same layout with matplotlib. Without a CJK font, Chinese text is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path as MplPath

    font = _cjk_font()
    if font is None:
        log.warning("no CJK font found (install fonts-noto-cjk); Chinese text is left out of %s", path)

    def txt(s: str) -> str:
        return s if font else "".join(ch for ch in s if ord(ch) < 0x2E80).strip()

    family = [font, "DejaVu Sans"] if font else ["DejaVu Sans"]
    fig = plt.figure(figsize=(layout.width / 100, layout.height / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, layout.width)
    ax.set_ylim(layout.height, 0)
    ax.axis("off")
    pt = 72 / 100  # layout pixels → points (the figure is laid out at 100 dpi, saved at `dpi`)
    ax.text(MARGIN, 34, txt(layout.title), fontsize=20 * pt, fontweight="bold", family=family, va="baseline")
    for e in layout.edges:
        if e.points:
            pts, (lx, ly) = e.points, e.label_at or e.points[0]
        else:
            pts, (lx, ly) = _curve(layout, e)
        curve = MplPath(pts, [MplPath.MOVETO, *[MplPath.CURVE4] * (len(pts) - 1)])
        ax.add_patch(FancyArrowPatch(path=curve, arrowstyle="-|>", mutation_scale=9, lw=0.9,
                                     color="#90a4ae" if e.dashed else "#607d8b",
                                     linestyle=(0, (4, 3)) if e.dashed else "-"))
        if e.label:
            ax.text(lx, ly, e.label, fontsize=10 * pt, ha="center", va="center", color="#37474f", family=family,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
    for n in layout.nodes.values():
        stroke, fill = n.colors
        ax.add_patch(FancyBboxPatch((n.x, n.y), NODE_W, NODE_H, boxstyle="round,pad=0,rounding_size=8",
                                    fc=fill, ec=stroke, lw=2.0 if n.kind in ("end", "transfer") else 1.1,
                                    linestyle="--" if n.kind in ("branch", "handlers") else "-"))
        ax.text(n.x + 10, n.y + 19, txt(n.label), fontsize=13 * pt, fontweight="bold", family=family,
                va="baseline", color="#212121")
        ax.text(n.x + 10, n.y + 37, txt(n.sub), fontsize=11 * pt, family=family, va="baseline", color="#455a64")
    x = float(MARGIN)
    y = layout.height - 28
    for color, text in layout.legend:
        ax.add_patch(FancyBboxPatch((x, y - 11), 14, 14, boxstyle="round,pad=0,rounding_size=3", fc=color, ec="none"))
        ax.text(x + 20, y, text, fontsize=12 * pt, family=family, va="baseline", color="#37474f")
        x += 40 + _text_width(text, 12)
    fig.savefig(path, dpi=dpi, facecolor="white")
    plt.close(fig)


FORMATS = (".svg", ".png", ".html")


def write_graph(bundle: Bundle, track_id: str, out: Path) -> Path:
    """Draw `track_id` into `out`; the format follows the suffix (.svg, .png, .html)."""
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{out}: unsupported picture format {suffix or '(none)'!r}; use one of {', '.join(FORMATS)}")
    layout = build_layout(bundle, track_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".svg":
        out.write_text(to_svg(layout), encoding="utf-8")
    elif suffix == ".html":
        out.write_text(to_html(layout), encoding="utf-8")
    else:
        to_png(layout, out)
    return out
