"""VAD-gated recognition of whole recordings: the backend only ever sees speech segments."""

from __future__ import annotations

from typing import cast

import numpy as np

from asr.audio import decode, resample, to_int16
from asr.normalize import normalize_text
from asr.types import AsrHints, Recognizer, RecognizerStream, StreamingRecognizer, Transcript
from asr.vad import SAMPLE_RATE, VadConfig, speech_segments


class GatedRecognizer:
    """A backend behind the VAD. Takes 16 kHz PCM; silence and noise give Transcript("")."""

    sample_rate = SAMPLE_RATE

    def __init__(self, backend: Recognizer, vad: VadConfig | None = None, name: str = "") -> None:
        self.backend = backend
        self.vad = vad or VadConfig()
        self.name = name or type(backend).__name__

    def _to_backend(self, pcm: bytes) -> bytes:
        rate = self.backend.sample_rate
        if rate == SAMPLE_RATE:
            return pcm
        return to_int16(resample(np.frombuffer(pcm, "<i2"), SAMPLE_RATE, rate)).tobytes()

    def transcribe(self, pcm: bytes, hints: AsrHints | None = None) -> Transcript:
        duration = len(pcm) / 2 / SAMPLE_RATE
        found = []
        for seg in speech_segments(pcm, self.vad):
            t = self.backend.transcribe(self._to_backend(seg.pcm), hints)
            if t.text:
                found.append((t, seg))
        if not found:
            return Transcript("", 0.0, 0.0, duration)
        weights = [s.speech_end_s - s.start_s + 1e-3 for _, s in found]
        conf = sum(t.confidence * w for (t, _), w in zip(found, weights, strict=True)) / sum(weights)
        text = normalize_text(" ".join(t.text for t, _ in found))
        return Transcript(text, round(conf, 4), found[0][1].start_s, found[-1][1].speech_end_s)

    def stream(self, hints: AsrHints | None = None) -> RecognizerStream:
        """An ungated stream on the backend (the StreamingSession does its own VAD)."""
        backend = self.backend
        if hasattr(backend, "stream"):
            return cast(StreamingRecognizer, backend).stream(hints)
        return BufferedStream(backend, hints)


class BufferedStream:
    """Streaming adapter for a batch-only recognizer: collect, recognize at the end."""

    def __init__(self, rec: Recognizer, hints: AsrHints | None) -> None:
        self._rec, self._hints = rec, hints
        self._pcm = bytearray()
        self._ready: tuple[int, Transcript] | None = None

    def accept(self, pcm: bytes) -> Transcript | None:
        self._pcm += pcm
        return None

    def prepare(self) -> None:
        if self._ready is None or self._ready[0] != len(self._pcm):
            self._ready = (len(self._pcm), self._rec.transcribe(bytes(self._pcm), self._hints))

    def finish(self) -> Transcript:
        if self._ready is not None and self._ready[0] == len(self._pcm):
            return self._ready[1]
        return self._rec.transcribe(bytes(self._pcm), self._hints)


def transcribe_bytes(
    data: bytes,
    recognizer: Recognizer,
    hints: AsrHints | None = None,
    *,
    declared_rate: int | None = None,
    declared_encoding: str | None = None,
) -> tuple[Transcript, float]:
    """Decode any supported audio and recognize it → (transcript, duration_s).

    Raises `AudioError` for input that is not audio. `recognizer` should come from
    `asr.load_recognizer` (VAD-gated), so noise-only input returns an empty transcript.
    """
    audio = decode(data, declared_rate=declared_rate, declared_encoding=declared_encoding,
                   target_rate=recognizer.sample_rate)
    return recognizer.transcribe(audio.pcm, hints), audio.duration_s
