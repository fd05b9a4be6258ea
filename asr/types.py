"""Typed hand-off from ASR to NLU, and the recognizer protocol every backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Transcript:
    """A final (or partial) recognition result. Empty `text` means no speech was found."""

    text: str
    confidence: float
    start_s: float = 0.0
    end_s: float = 0.0
    is_final: bool = True


@dataclass(frozen=True, slots=True)
class AsrHints:
    """Per-node hints from the talk track: expected phrases (vosk grammar / whisper prompt)."""

    phrases: Sequence[str] = field(default_factory=tuple)


class Recognizer(Protocol):
    """Batch recognition of mono 16-bit PCM at `sample_rate` (see asr.audio for decoding)."""

    sample_rate: int

    def transcribe(self, pcm: bytes, hints: AsrHints | None = None) -> Transcript: ...
