"""`huashu transcribe FILE… [--backend vosk|whisper] [--json]`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("transcribe")(transcribe)


def transcribe(
    files: list[Path] = typer.Argument(..., help="Audio files (WAV, raw needs --rate; MP3/OGG need ffmpeg)."),
    backend: str = typer.Option(None, "--backend", help="vosk | whisper (default: HUASHU_ASR_BACKEND)."),
    as_json: bool = typer.Option(False, "--json", help='One JSON object per file: {"file","text","confidence","duration_s"}.'),
    hint: list[str] = typer.Option([], "--hint", help="Expected phrase (repeatable): whisper prompt / vosk grammar."),
    grammar: bool = typer.Option(False, "--grammar", help="vosk: only recognize the --hint phrases."),
    track: str = typer.Option(None, "--track", help="Use the hints this talk track ships for --node."),
    node: str = typer.Option(None, "--node", help="Node of --track the audio is a reply at (huashu tracks hints)."),
    rate: int = typer.Option(None, "--rate", help="Sample rate of headerless (raw) input."),
    encoding: str = typer.Option(None, "--encoding", help="Encoding of headerless input: pcm16 | mulaw | alaw."),
) -> None:
    """Transcribe audio files, one output line per file, in order. Silence or noise gives ""."""
    from rich.console import Console
    from rich.progress import Progress

    from asr import AsrError, AsrHints, AudioError, load_recognizer, transcribe_bytes
    from core.settings import get_settings

    err = Console(stderr=True)
    name = (backend or get_settings().asr_backend).lower()
    if name not in ("vosk", "whisper"):
        err.print(f"[red]error:[/] --backend must be vosk or whisper (got {name!r}); the text backend takes "
                  "the gateway's transcript, not audio")
        raise typer.Exit(2)
    try:
        rec = load_recognizer(get_settings(), name)
    except AsrError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    phrases = (*_track_hints(track, node, err), *hint)
    hints = AsrHints(tuple(dict.fromkeys(phrases)), grammar=grammar) if phrases else None
    failed = 0
    with Progress(console=err, transient=True, disable=len(files) < 3 or not err.is_terminal) as progress:
        task = progress.add_task("transcribing", total=len(files))
        for path in files:
            try:
                data = path.read_bytes()
                t, duration = transcribe_bytes(data, rec, hints, declared_rate=rate, declared_encoding=encoding)
            except (OSError, AudioError) as exc:
                failed += 1
                msg = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                err.print(f"[red]error:[/] {path}: {msg}")
                if as_json:
                    print(json.dumps({"file": str(path), "error": msg}, ensure_ascii=False), flush=True)
                else:
                    print(f"{path}\t", flush=True)
                progress.advance(task)
                continue
            if as_json:
                print(json.dumps({"file": str(path), "text": t.text, "confidence": round(t.confidence, 4),
                                  "duration_s": round(duration, 3)}, ensure_ascii=False), flush=True)
            else:
                print(f"{path}\t{t.text}", flush=True)
            progress.advance(task)
    sys.stdout.flush()
    if failed:
        raise typer.Exit(1)


def _track_hints(track: str | None, node: str | None, err: object) -> tuple[str, ...]:
    """The compiled hints of --track at --node (both or neither)."""
    from rich.console import Console

    assert isinstance(err, Console)
    if not track and not node:
        return ()
    if not (track and node):
        err.print("[red]error:[/] --track and --node go together")
        raise typer.Exit(2)
    from core.settings import get_settings
    from dialogue.hints import phrases_for
    from dialogue.loader import ScriptError, load_bundle

    try:
        bundle = load_bundle(get_settings().effective_scripts_dir)
        t = bundle.track(track)
    except (ScriptError, KeyError) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if node not in t.nodes or not t.nodes[node].waits:
        waiting = ", ".join(n for n, x in t.nodes.items() if x.waits)
        err.print(f"[red]error:[/] track {track} has no waiting node {node!r} (waiting nodes: {waiting})")
        raise typer.Exit(2)
    return phrases_for(bundle.root, t, node)
