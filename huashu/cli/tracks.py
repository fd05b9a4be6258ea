"""Talk-track commands for ops people: `huashu test-stories` and `huashu graph`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from huashu.cli._lazy import Progress, Settings, Table, console

if TYPE_CHECKING:
    from dialogue.loader import Bundle

err = console(stderr=True)
out = console()


def _bundle(settings: Settings, scripts: Path | None) -> Bundle:
    from core.yamlio import ScriptError
    from dialogue.loader import load_bundle

    root = scripts or settings.effective_scripts_dir
    if not (root / "tracks").is_dir():
        err.print(f"[red]{root}: not a scripts folder (no tracks/ inside)[/]")
        raise typer.Exit(2)
    try:
        return load_bundle(root)
    except ScriptError as exc:
        for problem in exc.problems:
            err.print(str(problem))
        raise typer.Exit(1) from None


def test_stories(
    paths: Annotated[list[Path], typer.Argument(help="story files or folders (e.g. tests/stories)")],
    scripts: Annotated[Path | None, typer.Option("--scripts", help="scripts folder (default: the shipped scripts_zh)")] = None,
    track: Annotated[str | None, typer.Option("--track", help="only the stories of this track")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="print the transcript of failed stories")] = False,
) -> None:
    """Run YAML conversation stories through the engine and the real NLU; exit 1 if any fails."""
    from dialogue.engine import DialogueEngine
    from dialogue.stories import StoryFileError, collect, run_story

    settings = Settings()
    try:
        stories = collect(paths)
    except StoryFileError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    if track:
        stories = [s for s in stories if s.track == track]
    if not stories:
        err.print("[red]no stories found[/]")
        raise typer.Exit(2)
    bundle = _bundle(settings, scripts)
    try:
        from nlu import load_classifier
    except ImportError:
        err.print("[red]the NLU classifier is not installed (nlu.load_classifier); stories need it[/]")
        raise typer.Exit(2) from None
    classifier = load_classifier(settings, train_if_missing=True)
    engine = DialogueEngine(bundle, classifier)
    results = []
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("stories", total=len(stories))
        for i, story in enumerate(stories):
            results.append(run_story(engine, story, call_id=f"story-{i}"))
            progress.advance(task)
    table = Table(title="stories", show_lines=False)
    for col in ("", "track", "story", "outcome", "grade", "first mismatch"):
        table.add_column(col, overflow="fold")
    for r in results:
        mark = "[green]PASS[/]" if r.passed else "[red]FAIL[/]"
        table.add_row(mark, r.story.track, r.story.name, r.outcome or "-", r.grade or "-",
                      "" if r.passed else f"{r.where}: {r.failure}")
    out.print(table)
    failed = [r for r in results if not r.passed]
    if verbose:
        for r in failed:
            out.rule(f"{r.story.track}: {r.story.name}")
            for line in r.transcript:
                out.print(f"  {line}", markup=False)
    passed = len(results) - len(failed)
    out.print(f"{passed}/{len(results)} stories passed" + (f", [red]{len(failed)} failed[/]" if failed else ""))
    if failed:
        raise typer.Exit(1)


def graph(
    track: Annotated[str, typer.Option("--track", help="talk-track id")],
    out_file: Annotated[Path, typer.Option("--out", help="FILE.svg, FILE.png or FILE.html")],
    scripts: Annotated[Path | None, typer.Option("--scripts", help="scripts folder (default: the shipped scripts_zh)")] = None,
) -> None:
    """Draw a talk track: nodes, intents on edges, global handlers dashed, ends coloured by grade."""
    from dialogue.graph import FORMATS, write_graph

    if out_file.suffix.lower() not in FORMATS:
        err.print(f"[red]--out {out_file}: use a .svg, .png or .html file name[/]")
        raise typer.Exit(2)
    bundle = _bundle(Settings(), scripts)
    if track not in bundle.tracks:
        err.print(f"[red]unknown track {track!r} (known: {', '.join(sorted(bundle.tracks))})[/]")
        raise typer.Exit(2)
    try:
        path = write_graph(bundle, track, out_file)
    except OSError as exc:
        err.print(f"[red]cannot write {out_file}: {exc.strerror or exc}[/]")
        raise typer.Exit(1) from None
    out.print(f"wrote {path}")


tracks_app = typer.Typer(help="Talk tracks: the ASR hints each waiting node ships with.", no_args_is_help=True)


@tracks_app.command("hints")
def hints(
    track: Annotated[str, typer.Argument(help="talk-track id")],
    node: Annotated[str | None, typer.Argument(help="one node (default: every waiting node)")] = None,
    scripts: Annotated[Path | None, typer.Option("--scripts", help="scripts folder (default: the shipped scripts_zh)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help='{"node": [{"phrase", "source"}…]} instead of a table')] = False,
) -> None:
    """The hint phrases the recogniser gets at each waiting node, and where each one comes from."""
    import json

    from dialogue.hints import nlu_examples, node_hints, track_hints

    bundle = _bundle(Settings(), scripts)
    if track not in bundle.tracks:
        err.print(f"[red]unknown track {track!r} (known: {', '.join(sorted(bundle.tracks))})[/]")
        raise typer.Exit(2)
    t = bundle.tracks[track]
    examples = nlu_examples(bundle.root)
    if node is not None and node not in t.nodes:
        err.print(f"[red]track {track} has no node {node!r}[/]")
        raise typer.Exit(2)
    compiled = {node: node_hints(t, node, examples)} if node else track_hints(t, examples)
    if as_json:
        print(json.dumps({n: [{"phrase": h.phrase, "source": h.source} for h in nh.hints]
                          for n, nh in compiled.items()}, ensure_ascii=False))
        return
    for n, nh in compiled.items():
        table = Table(title=f"{track} · {n} ({len(nh.hints)} phrases, {nh.prompt_chars} chars)", title_justify="left")
        table.add_column("phrase")
        table.add_column("source", style="dim")
        for h in nh.hints:
            table.add_row(h.phrase, h.source)
        out.print(table)


def register(app: typer.Typer) -> None:
    app.command("test-stories")(test_stories)
    app.command("graph")(graph)
    app.add_typer(tracks_app, name="tracks")
