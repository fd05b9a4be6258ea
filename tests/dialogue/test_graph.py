"""`huashu graph`: every track drawn as SVG / HTML / PNG with every node, readable as files."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dialogue.graph import GRADE_COLORS, HANDLERS, build_layout, write_graph
from dialogue.loader import Bundle, load_bundle
from huashu.cli import tracks as tracks_cli
from tests.conftest import SCRIPTS

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return load_bundle(SCRIPTS)


@pytest.mark.parametrize("track", ["wecom_add_gift", "presale_deposit", "balance_reminder", "repurchase_reminder",
                                   "winback_silent", "birthday_care"])
def test_svg_parses_and_has_every_node(tmp_path: Path, bundle: Bundle, track: str) -> None:
    path = write_graph(bundle, track, tmp_path / f"{track}.svg")
    root = ET.parse(path).getroot()
    drawn = {g.get("data-node") for g in root.iter(f"{SVG}g") if g.get("class") == "node"}
    assert drawn == set(bundle.tracks[track].nodes) | {HANDLERS}
    # intents label the edges; each global handler appears once (from the handlers box)
    edge_titles = [t.text or "" for p in root.iter(f"{SVG}path") if p.get("class") == "edge" for t in p]
    assert sum(1 for t in edge_titles if t.startswith(HANDLERS) and "opt_out" in t) == 1


def test_end_nodes_are_coloured_by_grade(tmp_path: Path, bundle: Bundle) -> None:
    root = ET.parse(write_graph(bundle, "presale_deposit", tmp_path / "p.svg")).getroot()

    def stroke(node: str) -> str | None:
        g = next(g for g in root.iter(f"{SVG}g") if g.get("data-node") == node)
        rect = g.find(f"{SVG}rect")
        assert rect is not None
        return rect.get("stroke")

    assert stroke("close_opt_out") == GRADE_COLORS["F"]
    assert stroke("close_send_link") == GRADE_COLORS["A"]
    assert stroke("close_not_interested") == GRADE_COLORS["D"]


def test_html_embeds_the_svg_with_the_clip_words(tmp_path: Path, bundle: Bundle) -> None:
    text = write_graph(bundle, "balance_reminder", tmp_path / "b.html").read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>") and "<svg" in text
    assert "尾款是299元" in text  # the opening's words, rendered with the default variables, on hover


def test_png_is_an_image(tmp_path: Path, bundle: Bundle) -> None:
    path = write_graph(bundle, "birthday_care", tmp_path / "b.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_layout_puts_the_start_in_the_first_column(bundle: Bundle) -> None:
    layout = build_layout(bundle, "winback_silent")
    start = layout.nodes["opening"]
    assert start.x == min(n.x for n in layout.nodes.values())
    assert layout.nodes["close_coupon"].x > layout.nodes["offer"].x > start.x


def test_unsupported_format_is_refused(tmp_path: Path, bundle: Bundle) -> None:
    with pytest.raises(ValueError, match="unsupported picture format"):
        write_graph(bundle, "birthday_care", tmp_path / "b.pdf")


def _app() -> typer.Typer:
    app = typer.Typer()
    tracks_cli.register(app)
    return app


def test_cli_graph_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "w.svg"
    result = CliRunner().invoke(_app(), ["graph", "--track", "wecom_add_gift", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["--track", "nope", "--out", "x.svg"], "unknown track 'nope'"),
    (["--track", "wecom_add_gift", "--out", "x.pdf"], "use a .svg, .png or .html"),
])
def test_cli_graph_bad_input_is_a_clear_error(args: list[str], message: str) -> None:
    result = CliRunner().invoke(_app(), ["graph", *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


@pytest.mark.parametrize("track", ["presale_deposit", "balance_reminder", "winback_silent"])
def test_dot_layout_labels_overlap_no_node_and_no_other_label(bundle: Bundle, track: str) -> None:
    import shutil

    from dialogue.graph import NODE_H, NODE_W, _text_width

    if shutil.which("dot") is None:
        pytest.fail("Graphviz dot is missing: apt-get install -y graphviz (CI: .ci/run installs it)")
    layout = build_layout(bundle, track)
    assert all(e.points for e in layout.edges)  # routed by dot
    boxes = [(n.x, n.y, n.x + NODE_W, n.y + NODE_H) for n in layout.nodes.values()]
    labels = []
    for e in layout.edges:
        if e.label and e.label_at is not None:
            w = _text_width(e.label, 10) * 0.9  # dot's own metrics are a little narrower than our estimate
            labels.append((e.label_at[0] - w / 2, e.label_at[1] - 5, e.label_at[0] + w / 2, e.label_at[1] + 5))

    def overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
    assert not [(lab, box) for lab in labels for box in boxes if overlap(lab, box)]
    assert not [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:] if overlap(a, b)]
