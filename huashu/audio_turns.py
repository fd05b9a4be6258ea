"""Customer turns from audio files, for `huashu simulate --audio`: each file is one turn."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from core.conversation import CustomerEvent, EventKind, SessionState
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


def audio_events(settings: Settings, paths: Sequence[Path], track: Track, scripts_root: Path,
                 current: Callable[[], SessionState | None]) -> Iterator[CustomerEvent]:
    """Recognise each file with the hints of the node the call waits at when that turn comes
    (`current()` is the call's latest state). Silence gives an empty transcript → a silence turn."""
    from asr import load_recognizer
    from asr.audio import decode
    from asr.carrier import screen_recording
    from asr.types import AsrHints
    from dialogue.hints import phrases_for

    recognizer = load_recognizer(settings)
    for path in expand(paths):
        audio = decode(path.read_bytes(), target_rate=recognizer.sample_rate)
        state = current()
        phrases = phrases_for(scripts_root, track, state.node, state.variables) if state else ()
        result = recognizer.transcribe(audio.pcm, AsrHints(phrases))
        line = screen_recording(audio.pcm, result.text, state is None or state.user_turns == 0)
        if line is not None:  # ring-back / music where the customer should be
            yield CustomerEvent(EventKind.UNREACHABLE, reason=line)
        elif result.text.strip():
            yield CustomerEvent(EventKind.SPEECH, text=result.text, confidence=result.confidence)
        else:
            yield CustomerEvent(EventKind.SILENCE)
