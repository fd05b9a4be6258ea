"""VAD-gated recognition of whole recordings: the backend only ever sees speech segments."""

from __future__ import annotations

from typing import cast

import numpy as np

from asr.audio import decode, resample, to_int16
from asr.normalize import collapse_repeat, normalize_text
from asr.types import AsrHints, Recognizer, RecognizerStream, StreamingRecognizer, Transcript
from asr.vad import SAMPLE_RATE, VadConfig, VadEvent, speech_segments


class GatedRecognizer:
    """A backend behind the VAD. Takes 16 kHz PCM; silence and noise give Transcript("")."""

    sample_rate = SAMPLE_RATE

    def __init__(self, backend: Recognizer, vad: VadConfig | None = None, name: str = "",
                 merge_gap_s: float = 1.0) -> None:
        self.backend = backend
        self.vad = vad or VadConfig()
        self.name = name or type(backend).__name__
        self.merge_gap_s = merge_gap_s

    def _to_backend(self, pcm: bytes) -> bytes:
        rate = self.backend.sample_rate
        if rate == SAMPLE_RATE:
            return pcm
        return to_int16(resample(np.frombuffer(pcm, "<i2"), SAMPLE_RATE, rate)).tobytes()

    def transcribe(self, pcm: bytes, hints: AsrHints | None = None) -> Transcript:
        duration = len(pcm) / 2 / SAMPLE_RATE
        found = []
        for start, speech_end, chunk in self._utterances(pcm):
            t = self.backend.transcribe(self._to_backend(chunk), hints)
            if t.text:
                found.append((t, start, speech_end))
        if not found:
            return Transcript("", 0.0, 0.0, duration)
        weights = [end - start + 1e-3 for _, start, end in found]
        conf = sum(t.confidence * w for (t, _, _), w in zip(found, weights, strict=True)) / sum(weights)
        # A reply said twice across two segments ("喂？喂？") or decoded twice reads once.
        text = normalize_text(collapse_repeat(" ".join(t.text for t, _, _ in found)))
        return Transcript(text, round(conf, 4), found[0][1], found[-1][2])

    def _utterances(self, pcm: bytes) -> list[tuple[float, float, bytes]]:
        """VAD segments of a whole recording, those less than `merge_gap_s` apart joined (with the
        pause between them): a recorded turn "好的，谢谢，再见" is one utterance to the recognizer,
        which then has the whole sentence as context."""
        groups: list[list[VadEvent]] = []
        for seg in speech_segments(pcm, self.vad):
            prev = groups[-1][-1] if groups else None
            if prev is not None and seg.start_s - prev.speech_end_s <= self.merge_gap_s \
                    and seg.time_s - groups[-1][0].start_s <= self.vad.max_segment_s:
                groups[-1].append(seg)
            else:
                groups.append([seg])
        out = []
        pre = self.vad.pre_roll_ms / 1000
        for g in groups:
            if len(g) == 1:
                out.append((g[0].start_s, g[0].speech_end_s, g[0].pcm))
                continue
            a = max(0, int((g[0].start_s - pre) * SAMPLE_RATE)) * 2
            b = int(g[-1].time_s * SAMPLE_RATE) * 2
            out.append((g[0].start_s, g[-1].speech_end_s, pcm[a:b]))
        return out

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
