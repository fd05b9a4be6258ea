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
    # vosk: restrict recognition to `phrases` (+ unknown-word) — for short yes/no/number turns.
    # Whisper always uses the phrases as its initial prompt, whatever this says.
    grammar: bool = False


class Recognizer(Protocol):
    """Batch recognition of mono 16-bit PCM at `sample_rate` (see asr.audio for decoding)."""

    sample_rate: int

    def transcribe(self, pcm: bytes, hints: AsrHints | None = None) -> Transcript: ...


class RecognizerStream(Protocol):
    """One utterance being recognized incrementally (audio at the recognizer's sample_rate)."""

    def accept(self, pcm: bytes) -> Transcript | None:
        """Add audio; returns a partial result (is_final=False) when the backend has a new one."""
        ...

    def prepare(self) -> None:
        """The speaker may have stopped: work out the result for the audio so far now, so that
        `finish` is instant if no more audio comes (no-op for backends that are always ready)."""
        ...

    def finish(self) -> Transcript:
        """The final result for all accepted audio; the stream is done after this."""
        ...


class StreamingRecognizer(Recognizer, Protocol):
    """A recognizer that can also recognize incrementally, one utterance per stream."""

    def stream(self, hints: AsrHints | None = None) -> RecognizerStream: ...
