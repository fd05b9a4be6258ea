"""Customer turns from audio files, for `huashu simulate --audio`: each file is one turn."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from core.conversation import CustomerEvent, EventKind
from core.settings import Settings
from dialogue.schema import Track

AUDIO_SUFFIXES = {".wav", ".mp3", ".ogg", ".ulaw", ".pcm"}


def expand(paths: Sequence[Path]) -> list[Path]:
    """Files in order; a folder contributes its audio files sorted by name."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in AUDIO_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"--audio: no such file or folder: {p}")
    return files


def audio_events(settings: Settings, paths: Sequence[Path], track: Track) -> Iterator[CustomerEvent]:
    """Recognise each file (VAD-gated: silence gives an empty transcript → a silence turn)."""
    from asr import load_recognizer
    from asr.audio import decode
    from asr.types import AsrHints

    recognizer = load_recognizer(settings)
    hints = AsrHints(tuple(h for node in track.nodes.values() for h in node.hints))
    for path in expand(paths):
        audio = decode(path.read_bytes(), target_rate=recognizer.sample_rate)
        result = recognizer.transcribe(audio.pcm, hints)
        if result.text.strip():
            yield CustomerEvent(EventKind.SPEECH, text=result.text, confidence=result.confidence)
        else:
            yield CustomerEvent(EventKind.SILENCE)
