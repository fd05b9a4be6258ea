"""Persona recordings: `huashu persona script` (what the voice talent reads) and `persona import`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from huashu.cli._lazy import Settings, console

if TYPE_CHECKING:
    from dialogue.recordings import Line

err = console(stderr=True)
out = console()
persona_app = typer.Typer(help="Persona recordings: the script to record, importing the takes.", no_args_is_help=True)


def _plan(persona: str) -> tuple[dict[Path, Line], Path]:
    from core.yamlio import ScriptError
    from dialogue.loader import load_bundle
    from dialogue.recordings import plan

    root = Settings().effective_scripts_dir
    try:
        bundle = load_bundle(root)
    except ScriptError as exc:
        for problem in exc.problems:
            err.print(str(problem))
        raise typer.Exit(1) from None
    if persona not in bundle.personas:
        err.print(f"[red]unknown persona {persona!r} (known: {', '.join(sorted(bundle.personas))})[/]")
        raise typer.Exit(2)
    return plan(bundle, persona), root / "personas" / persona / "audio"


@persona_app.command("script")
def script(persona: Annotated[str, typer.Argument(help="persona id, e.g. xiaomei")],
           out_file: Annotated[Path, typer.Option("--out", help="CSV to write (opens in Excel)")]) -> None:
    """The recording script: every file to record, the exact words, and how it is spliced."""
    from dialogue.recordings import write_script

    lines, _ = _plan(persona)
    n = write_script(lines, out_file)
    out.print(f"wrote {out_file}: {n} file(s) to record for {persona}")


@persona_app.command("import")
def import_(persona: Annotated[str, typer.Argument(help="persona id, e.g. xiaomei")],
            takes: Annotated[Path, typer.Argument(help="folder of the talent's WAV/MP3 files, named as in the script")]
            ) -> None:
    """Convert and loudness-normalise the takes into the persona; report missing, extra, silent, clipped."""
    from dialogue.recordings import import_recordings

    if not takes.is_dir():
        err.print(f"[red]{takes}: not a folder[/]")
        raise typer.Exit(2)
    lines, audio_dir = _plan(persona)
    report = import_recordings(lines, takes, audio_dir)
    out.print(f"imported {len(report.imported)} take(s) into {audio_dir}")
    for label, items in (("missing", report.missing), ("silent", report.silent), ("clipped (too loud)", report.clipped),
                         ("extra (not in the script)", report.extra)):
        if items:
            shown = ", ".join(p.as_posix() for p in items[:20]) + (" …" if len(items) > 20 else "")
            out.print(f"{label}: {len(items)}: {shown}", soft_wrap=True)
    for path, why in report.unreadable:
        out.print(f"unreadable: {path.as_posix()}: {why}", soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(persona_app, name="persona")
