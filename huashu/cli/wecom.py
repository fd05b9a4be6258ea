"""`huashu report`: the campaign report of a talk track as one HTML file (plots embedded)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer

from huashu.cli._lazy import BarColumn, MofNCompleteColumn, Progress, Settings, TextColumn, TimeElapsedColumn, console

if TYPE_CHECKING:
    from dialogue.engine import DialogueEngine

err = console(stderr=True)
out = console()


def report(
    track: Annotated[str, typer.Option("--track", help="talk-track id")],
    since: Annotated[str | None, typer.Option("--since", help="ISO date/time, or 7d / 24h")] = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="HTML file (default report-<track>.html)")] = None,
    demo_calls: Annotated[int, typer.Option("--demo-calls", min=0, max=100_000,
                                            help="first simulate N scripted calls of the track into the store")] = 0,
    seed: Annotated[int, typer.Option("--seed", help="seed of the simulated calls")] = 7,
) -> None:
    """Per-node funnel, barge-in, outcomes, grades, intents, fallback and A/B variants of a track."""
    from core.yamlio import ScriptError
    from dialogue.assembly import load_scripts
    from huashu.runtime import build_runtime
    from store import open_store
    from store.errors import StoreError
    from wecom.api import parse_since
    from wecom.report import build_report

    settings = Settings()
    tz = ZoneInfo(settings.timezone)
    try:
        when = parse_since(since, tz)
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    target = out_path or Path(f"report-{track}.html")
    try:
        bundle = load_scripts(settings)
        if demo_calls and track not in bundle.tracks:
            err.print(f"[red]unknown track {track!r} (known: {', '.join(sorted(bundle.tracks))})[/]")
            raise typer.Exit(2)
        store = open_store(settings)
        if demo_calls:
            runtime = build_runtime(settings)
            _simulate(runtime.engine, track, demo_calls, seed, settings)
    except (ScriptError, StoreError) as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    definition = bundle.tracks.get(track)
    results = store.list_conversations(track=track, since=when)
    if definition is None and not results:
        err.print(f"[red]unknown track {track!r} and no conversations stored for it "
                  f"(known: {', '.join(sorted(bundle.tracks))})[/]")
        raise typer.Exit(2)
    data, html = build_report(results, track, definition, when, datetime.now(tz))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html, encoding="utf-8")
    except OSError as exc:
        err.print(f"[red]cannot write {target}: {exc.strerror}[/]")
        raise typer.Exit(1) from None
    conv = f"{data.converted / data.n:.1%}" if data.n else "-"
    out.print(f"[green]wrote[/] {target}: {data.n} conversations, conversion {conv}, "
              f"fallback {data.fallback_rate:.1%}, {len(data.variants)} variant(s)")


def _simulate(engine: DialogueEngine, track: str, n: int, seed: int, settings: Settings) -> None:
    from wecom.demo_calls import load_script, simulate_calls

    try:
        script = load_script(settings.effective_scripts_dir)
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    start = datetime.now(ZoneInfo(settings.timezone)).replace(hour=20, minute=0, second=0, microsecond=0)
    with Progress(TextColumn("simulating calls"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err) as bar:
        task = bar.add_task("calls", total=n)
        simulate_calls(engine, track, n, script=script, start=start, seed=seed,
                       progress=lambda k: bar.advance(task, k))


def register(app: typer.Typer) -> None:
    app.command()(report)
