"""Streaming session for one call leg: telephone frames in, ASR events out.

Pure call logic (no sockets): the server's WebSocket handler creates one session per call,
calls `feed()` for every binary frame (FreeSWITCH mod_audio_fork / jambonz `listen` style:
8 kHz 16-bit PCM by default, or mu-law/A-law) and sends back `event.to_json()` for each event
returned. Whisper decodes in its own worker threads from the moment the caller pauses; the
`feed()` that completes the hangover waits for that decode to finish (usually a few tens of ms,
up to a decode's length), and vosk decodes inside `feed()` — so an asyncio server should call
`feed()` through `asyncio.to_thread` / a worker pool.

Events, in order for one utterance:
  speech_start, barge_in (only while `barge_in` is allowed, e.g. during a clip that permits it),
  partial* (backends with incremental results: vosk), final (text may be "": noise, ignore it).
With `screen_s`, once in the call's first seconds: line_signal (text "no_answer") when ring-back
tone or music (彩铃) plays and nobody has spoken (asr.carrier).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from asr.audio import AudioError, Resampler, alaw_decode, mulaw_decode, to_int16
from asr.errors import AsrError
from asr.pipeline import BufferedStream
from asr.text_backend import TextRecognizer
from asr.types import AsrHints, Recognizer, RecognizerStream, StreamingRecognizer, Transcript
from asr.vad import SAMPLE_RATE, Endpointer, VadConfig, VadEvent

_ENCODINGS = {"pcm16": "pcm16", "linear16": "pcm16", "l16": "pcm16", "slin": "pcm16", "pcm": "pcm16",
              "mulaw": "mulaw", "ulaw": "mulaw", "pcmu": "mulaw", "alaw": "alaw", "pcma": "alaw"}


@dataclass(frozen=True, slots=True)
class AsrEvent:
    """type: "speech_start" | "barge_in" | "partial" | "final". Times are seconds of call audio."""

    type: str
    time_s: float
    text: str = ""
    confidence: float = 0.0
    start_s: float = 0.0
    end_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type, "time_s": round(self.time_s, 3)}
        if self.type in ("partial", "final"):
            d |= {"text": self.text, "confidence": round(self.confidence, 4),
                  "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3)}
        elif self.type == "line_signal":
            d["reason"] = self.text
        return d


class StreamingSession:
    """VAD-endpointed streaming recognition of one call's inbound audio.

    `recognizer` is any Recognizer (from `asr.load_recognizer`, or a bare backend); streaming
    backends get audio as it arrives, others get the utterance at its end. The recognizer's
    sample rate must be 16 kHz (both bundled backends are).
    """

    def __init__(
        self,
        recognizer: Recognizer,
        *,
        input_rate: int = 8000,
        encoding: str = "pcm16",
        hints: AsrHints | None = None,
        barge_in: bool = True,
        vad: VadConfig | None = None,
        screen_s: float = 0.0,
    ) -> None:
        enc = _ENCODINGS.get(encoding.lower())
        if enc is None:
            raise AudioError(f"unknown stream encoding {encoding!r}; use pcm16, mulaw or alaw")
        if isinstance(recognizer, TextRecognizer):
            raise AsrError("the text ASR backend has no audio recognizer; a streaming session needs whisper or vosk")
        if recognizer.sample_rate != SAMPLE_RATE:
            raise AudioError(f"StreamingSession needs a {SAMPLE_RATE} Hz recognizer, got {recognizer.sample_rate}")
        self._rec = recognizer
        self._enc = enc
        self._rate = input_rate
        self._resampler = Resampler(input_rate, SAMPLE_RATE)
        self._endpointer = Endpointer(vad or getattr(recognizer, "vad", None) or VadConfig())
        self.hints = hints
        self.barge_in = barge_in
        self._stream: RecognizerStream | None = None
        self._paused = False
        self._held: list[bytes] = []
        self._odd = b""
        self._samples_in = 0
        self.utterances = 0
        # The call's first seconds: ring-back or music (彩铃) before anyone speaks → "line_signal".
        self._screen = bytearray() if screen_s > 0 else None
        self._screen_checks = [t for t in (3.0, 6.0) if t <= max(screen_s, 3.0)]
        self._spoke = False

    # -- per-node controls -------------------------------------------------------------------

    def set_hints(self, hints: AsrHints | None) -> None:
        """Hints for the next utterance (the talk track's current node)."""
        self.hints = hints

    def set_barge_in(self, allowed: bool) -> None:
        """Whether speech should interrupt what is playing now."""
        self.barge_in = allowed

    @property
    def time_s(self) -> float:
        """Seconds of call audio received so far."""
        return self._samples_in / self._rate

    @property
    def in_speech(self) -> bool:
        return self._endpointer.in_speech

    # -- audio --------------------------------------------------------------------------------

    def _decode(self, frame: bytes) -> np.ndarray:
        if self._enc == "mulaw":
            return mulaw_decode(frame)
        if self._enc == "alaw":
            return alaw_decode(frame)
        data = self._odd + frame
        self._odd = data[len(data) - len(data) % 2 :]
        return np.frombuffer(data[: len(data) - len(data) % 2], "<i2")

    def feed(self, frame: bytes) -> list[AsrEvent]:
        """One frame of inbound audio (any length) → the events it completes."""
        x = self._decode(bytes(frame))
        self._samples_in += len(x)
        y = to_int16(self._resampler.process(x))
        out: list[AsrEvent] = []
        for ev in self._endpointer.feed(y):
            out += self._on_vad(ev)
        if self._screen is not None:
            out += self._screen_line(y)
        return out

    def _screen_line(self, y: np.ndarray) -> list[AsrEvent]:
        """Tone or music where a voice should be, judged at 3 s and 6 s while nobody has spoken."""
        from asr.carrier import line_signal_s

        assert self._screen is not None
        if self._spoke or not self._screen_checks:
            self._screen = None
            return []
        self._screen += y.tobytes()
        if len(self._screen) < self._screen_checks[0] * SAMPLE_RATE * 2:
            return []
        self._screen_checks.pop(0)
        if line_signal_s(bytes(self._screen), speech=[]) >= 2.0:
            self._screen = None
            return [AsrEvent("line_signal", self.time_s, "no_answer")]
        return []

    def close(self) -> list[AsrEvent]:
        """End of the call's audio: finish an utterance that is still open."""
        out: list[AsrEvent] = []
        for ev in self._endpointer.flush():
            out += self._on_vad(ev)
        return out

    def _open_stream(self) -> RecognizerStream:
        if hasattr(self._rec, "stream"):
            return cast(StreamingRecognizer, self._rec).stream(self.hints)
        return BufferedStream(self._rec, self.hints)

    def _on_vad(self, ev: VadEvent) -> list[AsrEvent]:
        if ev.kind == "start":
            self._spoke = True
            self._stream = self._open_stream()
            self._held = []
            out = [AsrEvent("speech_start", ev.time_s)]
            if self.barge_in:
                out.append(AsrEvent("barge_in", ev.time_s))
            return out + self._partial(self._stream.accept(ev.pcm), ev)
        if self._stream is None:
            return []
        if ev.kind == "audio":
            if self._paused:
                # Non-speech after a pause is held back, so that the speculative result stays
                # valid; it reaches the recognizer only if the speaker goes on.
                self._held.append(ev.pcm)
                return []
            return self._partial(self._stream.accept(ev.pcm), ev)
        if ev.kind == "pause":
            self._paused = True
            self._stream.prepare()  # decode now: usually done before the hangover runs out
            return []
        if ev.kind == "resume":
            self._paused = False
            held, self._held = b"".join(self._held), []
            return self._partial(self._stream.accept(held), ev) if held else []
        if ev.kind == "end":
            final = self._stream.finish()
            self._stream, self._paused, self._held = None, False, []
            self.utterances += 1
            return [AsrEvent("final", ev.time_s, final.text, final.confidence if final.text else 0.0,
                             ev.start_s, ev.speech_end_s)]
        return []

    @staticmethod
    def _partial(t: Transcript | None, ev: VadEvent) -> list[AsrEvent]:
        if t is None or not t.text:
            return []
        return [AsrEvent("partial", ev.time_s, t.text, t.confidence)]

