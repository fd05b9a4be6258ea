"""Synthesize the demo persona's placeholder clips with espeak-ng (Mandarin voice `cmn-latn-pinyin`).

Real merchants record their own voice; these files only make the demo audible. For every clip of
the persona: `audio/<clip>.wav` (no variables) or `audio/<clip>.<n>.wav` (the static pieces
between variables); `audio/say/<token>.wav` for the say-as tokens; `audio/vars/<value>.wav` for
the default values of text variables the clips use (a file already there is kept: recorded
values win). 8 kHz mono 16-bit WAV, leading/trailing silence trimmed so splices sound tight.

    .venv/bin/python tools/make_demo_clips.py [--persona xiaomei] [--scripts scripts_zh] [--force] [--clean]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydub import AudioSegment
from pydub.silence import detect_leading_silence
from rich.console import Console
from rich.progress import Progress

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dialogue.audio import RATE, EspeakSynth, export_wav  # noqa: E402
from dialogue.loader import load_bundle  # noqa: E402

console = Console()


def _trim(segment: AudioSegment, keep_ms: int = 40) -> AudioSegment:
    start = max(0, detect_leading_silence(segment, silence_threshold=-45.0) - keep_ms)
    end = max(0, detect_leading_silence(segment.reverse(), silence_threshold=-45.0) - keep_ms)
    trimmed = segment[start: len(segment) - end]
    return trimmed if len(trimmed) > 0 else segment


def plan(scripts: Path, persona_id: str) -> dict[Path, str]:
    """Every file the persona needs (path relative to its audio/ folder) → the words to say."""
    from dialogue.recordings import plan as recording_plan

    return {path: line.text for path, line in recording_plan(load_bundle(scripts), persona_id).items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persona", default="xiaomei")
    parser.add_argument("--scripts", type=Path, default=ROOT / "scripts_zh")
    parser.add_argument("--force", action="store_true", help="regenerate files that exist (except vars/)")
    parser.add_argument("--clean", action="store_true", help="delete audio files no clip needs")
    args = parser.parse_args(argv)
    audio_dir = args.scripts / "personas" / args.persona / "audio"
    try:
        synth = EspeakSynth()
    except FileNotFoundError as exc:
        console.print(f"[red]{exc}[/]")
        return 2
    wanted = plan(args.scripts, args.persona)
    todo = [rel for rel in wanted if (args.force and rel.parts[0] != "vars") or not (audio_dir / rel).is_file()]
    with Progress(console=console) as progress:
        task = progress.add_task(f"synthesizing {args.persona}", total=len(todo))
        for rel in todo:
            path = audio_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(export_wav(_trim(synth(wanted[rel])), RATE, "pcm"))
            progress.advance(task)
    if args.clean:
        keep = {audio_dir / rel for rel in wanted}
        for stale in sorted(p for p in audio_dir.rglob("*.wav") if p not in keep):
            stale.unlink()
            console.print(f"removed {stale.relative_to(audio_dir)}")
    files = list(audio_dir.rglob("*.wav"))
    total = sum(p.stat().st_size for p in files)
    console.print(f"{len(todo)} generated, {len(files)} files, {total / 1e6:.2f} MB in {audio_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
