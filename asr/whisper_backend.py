"""faster-whisper (CTranslate2) backend. The only module that imports faster_whisper / ctranslate2.

Decoding is done with the CTranslate2 model directly instead of `WhisperModel.transcribe`,
for two reasons that matter on a phone line:
- latency: `transcribe` always encodes a 30 s window (~1 s on two cores for the base model);
  customer replies are 1-6 s, so the encoder gets the utterance plus a short silent tail
  (`window_pad_s`, at least `min_window_s`), several times cheaper;
- no hallucinated text: one pass (beam search, 2 beams) on a VAD segment, then the result is dropped when the
  model itself says it is not speech (no_speech_prob with a low log-probability), when it is
  repetitive junk (compression ratio, repeated n-grams), when it only echoes the prompt, or when
  it is one of Whisper's well-known subtitle credits.
"""

from __future__ import annotations

import math
import re
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np

from asr.errors import ModelError
from asr.hotwords import apply_hints
from asr.normalize import collapse_repeat, normalize_text, to_simplified
from asr.types import AsrHints, Transcript

SAMPLE_RATE = 16000
_FRAMES_PER_S = 100
# Whisper's favourite inventions on silence/noise (subtitle credits, "thanks for watching").
_JUNK = ("字幕", "Amara", "请不吝点赞", "点赞订阅", "订阅我的频道", "谢谢观看", "感谢观看", "谢谢收看",
         "感谢收看", "明镜与点点", "独播剧场", "Subtitles by", "编曲", "作词")


@dataclass(frozen=True, slots=True)
class WhisperConfig:
    language: str = "zh"
    # Prompt before the node's hint phrases. Empty by default: the classic "以下是普通话的句子。"
    # did not lower CER on the dev set, and Whisper echoes prompt words ("普通") on short noises;
    # Traditional output is converted by OpenCC anyway.
    base_prompt: str = ""
    # Two beams: lower CER with hints on the dev set in every condition (clean 11.1 → 10.1 %,
    # telephone 14.3 → 13.4 %, noisy 17.1 → 14.6 %) for ~25 % more decode time, which the
    # hangover still hides; wider beams gained nothing more on dev telephone audio.
    beam_size: int = 2
    window_pad_s: float = 2.0  # silence appended to the utterance inside the encoder window
    min_window_s: float = 5.0
    fallback_logprob: float | None = None  # e.g. -0.7: unsure on the short window → decode again on 30 s (3x cost)
    cpu_threads: int = 2
    num_workers: int = 1  # concurrent decodes (each with cpu_threads)
    compute_type: str = "int8"
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0  # with no_speech_threshold: Whisper's own "this was silence" rule
    no_speech_strong: float = 0.7  # above this it is not speech, however sure of the words
    min_logprob: float = -3.0  # below this the text is noise whatever no_speech_prob says
    unsure_logprob: float = -1.5  # ...and below this too when no_speech_prob is above
    unsure_no_speech: float = 0.3
    compression_ratio_threshold: float = 2.4
    max_chars_per_s: float = 9.0
    max_tokens_per_s: float = 8.0  # decode budget; Mandarin is ~4-6 characters a second
    hint_by_sound: bool = True  # rewrite homophones of the hint phrases (asr.hotwords)
    # Utterances of different calls that end together are decoded as one batch (one encoder and
    # one beam search over up to max_batch of them): under load a decode worker takes the oldest
    # waiting utterance and every other one that can share its batch (take_batch) instead of
    # one. Results are those of one at a time; 1: one at a time (HUASHU_ASR_MAX_BATCH).
    max_batch: int = 8


@dataclass(frozen=True, slots=True)
class Decoded:
    """Raw outcome of one decode, before the guards (kept for the benchmark and tests)."""

    text: str
    avg_logprob: float
    no_speech_prob: float
    kept: bool
    reason: str = ""
    window_s: float = 0.0  # encoder window used (30.0 after a fallback)


def _echoes(norm: str, prompt_norm: str, hints: AsrHints | None, no_speech: float) -> bool:
    """Whisper reading its prompt back: the output is one stretch of the prompt, or a string of
    hint phrases, rather than one phrase (a reply that *is* a phrase is fine). Short ones (two
    short phrases, as "不需要不用了" could really be said) count only when the model doubts speech."""
    phrases = {q for p in (hints.phrases if hints else ()) if len(q := normalize_text(p)) >= 2}
    if norm in phrases:
        return False
    doubt = len(norm) >= 8 or no_speech > 0.2
    m = SequenceMatcher(None, norm, prompt_norm, autojunk=False).find_longest_match(0, len(norm), 0, len(prompt_norm))
    if m.size >= 4 and m.size >= 0.6 * len(norm) and norm[m.a : m.a + m.size] not in phrases and doubt:
        return True
    covered = [False] * len(norm)
    used = set()
    for p in phrases:
        for hit in re.finditer(re.escape(p), norm):
            covered[hit.start() : hit.end()] = [True] * len(p)
            used.add(p)
    if len(used) >= 2 and sum(covered) >= 0.8 * len(norm) and doubt:
        return True
    # Mostly one hint phrase while the model itself leans towards "no speech" (on white noise
    # with the prompt "好的、不需要…" it wrote "你不需要" at no_speech 0.6): the prompt talking.
    return bool(used) and sum(covered) >= 0.6 * len(norm) and no_speech > 0.5


def collapse_loops(text: str) -> str:
    """Whisper's decoding loops → one copy: "晚上8点以后再打晚上8点以后再打" and
    "现在什么价格?现在什么价格?现在什么价…" read "晚上8点以后再打" / "现在什么价格".

    Any unit of 2-12 characters said again right after itself is kept once (a customer's own
    "好的好的" means the same to the NLU as "好的"); a cut-off copy at the end goes too. Digit
    runs are left alone: 8888 in a phone number is not a loop."""
    plain = re.sub(r"[\s\W_]+", "", text)
    for m in re.finditer(r"(.{2,12}?)\1+", plain):
        unit, rest = m.group(1), plain[m.end() :]
        if unit.isdigit():
            continue
        tail = next((k for k in range(len(unit) - 1, 0, -1) if rest.startswith(unit[:k])), 0)
        copies = (m.end() - m.start()) // len(unit)
        if copies >= 3 or tail == 0 or tail >= 2 or len(unit) >= 3:
            rest = rest[tail:]
        return plain[: m.start()] + unit + collapse_loops(rest)
    return text


def take_batch(queue: list[_Job], max_batch: int) -> tuple[list[_Job], list[_Job]]:
    """→ (the oldest waiting job and up to max_batch - 1 more with the same key, the rest in order).

    Same prompt length: CTranslate2 needs <|startoftranscript|> at one position in a batch (it
    raises otherwise, so calls at nodes with different hints could not share one). Same window:
    each utterance is encoded exactly as it would be alone, so batching changes no result (on
    the telephone test set, batches of mixed windows changed 3 of 54 texts, CER 9.3 → 9.6 %;
    grouped ones none), and short utterances do not pay for a long one's window."""
    if not queue:
        return [], []
    key = queue[0].key
    batch = [j for j in queue if j.key == key][: max(1, max_batch)]
    return batch, [j for j in queue if all(j is not b for b in batch)]


@dataclass(eq=False)
class _Job:
    """One utterance waiting for a batched decode. `key` = (prompt length, encoder window):
    only jobs with the same key share a batch (see WhisperRecognizer._take)."""

    samples: np.ndarray
    hints: AsrHints | None
    key: tuple[int, float] = (0, 0.0)
    done: threading.Event = field(default_factory=threading.Event)
    result: Decoded | None = None
    error: BaseException | None = None


class WhisperRecognizer:
    """Batch + streaming recognizer on a local CTranslate2 Whisper model (16 kHz input)."""

    sample_rate = SAMPLE_RATE

    def __init__(self, model_dir: Path, config: WhisperConfig | None = None) -> None:
        import ctranslate2
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        self.config = cfg = config or WhisperConfig()
        self.model_dir = model_dir
        try:
            self._model = WhisperModel(str(model_dir), device="cpu", compute_type=cfg.compute_type,
                                       cpu_threads=cfg.cpu_threads, num_workers=cfg.num_workers,
                                       local_files_only=True)
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(f"cannot load the Whisper model in {model_dir}: {exc}") from exc
        self._storage = ctranslate2.StorageView.from_array
        self._tok = Tokenizer(self._model.hf_tokenizer, True, task="transcribe", language=cfg.language)
        self._suppress = sorted({*self._tok.non_speech_tokens, self._tok.transcribe, self._tok.translate,
                                 self._tok.sot, self._tok.sot_prev, self._tok.sot_lm, self._tok.no_speech})
        self._prompt_cache: dict[tuple[str, ...], tuple[list[int], str]] = {}
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._busy = 0
        self._queue: list[_Job] = []
        self._slots = threading.Semaphore(cfg.num_workers)  # batches decoding at once
        # Running totals for benchmarks and metrics: utterances decoded, model passes (a batch
        # is one), speculative decodes started and those whose result was used.
        self.counts = {"decoded": 0, "passes": 0, "speculative": 0, "speculative_used": 0}

    def speculate(self, fn: Callable[[], Transcript]) -> Future[Transcript] | None:
        """Run `fn` in the background if a model worker is idle, else None: under load,
        speculative decodes that may be thrown away must not queue ahead of real ones."""
        with self._lock:
            if self._busy >= self.config.num_workers:
                return None
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.config.num_workers, thread_name_prefix="whisper")
            self.counts["speculative"] += 1
            return self._executor.submit(fn)

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    # -- protocol -----------------------------------------------------------------------------

    def transcribe(self, pcm: bytes, hints: AsrHints | None = None) -> Transcript:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        return self.to_transcript(self.decode(samples, hints), len(samples) / SAMPLE_RATE)

    def stream(self, hints: AsrHints | None = None) -> WhisperStream:
        return WhisperStream(self, hints)

    # -- internals ----------------------------------------------------------------------------

    def _prompt(self, hints: AsrHints | None) -> tuple[list[int], str]:
        """Decoder prefix: [<|startofprev|> prompt] <|startoftranscript|><|zh|><|transcribe|><|notimestamps|>."""
        phrases = tuple(hints.phrases) if hints else ()
        key = (self.config.base_prompt, *phrases)
        with self._lock:
            cached = self._prompt_cache.get(key)
        if cached is None:
            text = self.config.base_prompt + ("、".join(phrases) + "。" if phrases else "")
            prev = [self._tok.sot_prev, *self._tok.encode(" " + text.strip())[-223:]] if text.strip() else []
            cached = ([*prev, *self._tok.sot_sequence, self._tok.no_timestamps], text)
            with self._lock:
                self._prompt_cache[key] = cached
        return cached

    def decode(self, samples: np.ndarray, hints: AsrHints | None = None) -> Decoded:
        """Recognize one utterance (float32 at 16 kHz, at most 30 s)."""
        with self._lock:
            self._busy += 1
        try:
            if self.config.max_batch <= 1 or self.config.fallback_logprob is not None:
                return self._decode(samples, hints)
            return self._batched(samples, hints)
        finally:
            with self._lock:
                self._busy -= 1

    def _window_s(self, speech_s: float) -> float:
        cfg = self.config
        return float(min(30.0, max(cfg.min_window_s, math.ceil(speech_s + cfg.window_pad_s))))

    def _batched(self, samples: np.ndarray, hints: AsrHints | None) -> Decoded:
        """Queue this utterance; a caller that gets a decode slot decodes the oldest waiting
        utterance together with every other waiting one that can share its batch (its own or
        other calls'), and hands out the results. It goes on until its own is done."""
        job = _Job(samples, hints, (len(self._prompt(hints)[0]), self._window_s(len(samples) / SAMPLE_RATE)))
        with self._lock:
            self._queue.append(job)
        while not job.done.is_set():
            with self._slots:
                with self._lock:
                    batch, self._queue = take_batch(self._queue, self.config.max_batch)
                if batch:
                    self._decode_batch(batch)
            if not batch:  # ours was taken by a batch that another caller is decoding
                job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _decode_batch(self, jobs: list[_Job]) -> None:
        try:
            speech = [len(j.samples) / SAMPLE_RATE for j in jobs]
            window_s = max(self._window_s(s) for s in speech)
            prompts = [self._prompt(j.hints) for j in jobs]
            outs = self._run_batch([j.samples for j in jobs], window_s, [p for p, _ in prompts], speech)
            self._count("passes")
            self._count("decoded", len(jobs))
            for j, (text, logprob, no_speech), (_, prompt_text), s in zip(jobs, outs, prompts, speech, strict=True):
                j.result = self._guard(text, logprob, no_speech, s, prompt_text, j.hints, window_s)
        except Exception as exc:  # every waiting caller gets the error, none hangs
            for j in jobs:
                j.error = exc
        finally:
            for j in jobs:
                j.done.set()

    def _run_batch(self, batch: list[np.ndarray], window_s: float, prompts: list[list[int]],
                   speech: list[float]) -> list[tuple[str, float, float]]:
        n = int(window_s * SAMPLE_RATE)
        feats = []
        for samples in batch:
            audio = np.zeros(n, dtype=np.float32)
            audio[: min(n, len(samples))] = samples[:n]
            feats.append(self._model.feature_extractor(audio)[:, : int(window_s * _FRAMES_PER_S)])
        encoded = self._model.model.encode(self._storage(np.ascontiguousarray(np.stack(feats))), to_cpu=False)
        longest = max(len(p) for p in prompts)
        max_new = int(self.config.max_tokens_per_s * max(speech)) + 8
        results = self._model.model.generate(
            encoded, prompts, beam_size=self.config.beam_size, max_length=longest + max_new,
            return_scores=True, return_no_speech_prob=True, suppress_blank=True, suppress_tokens=self._suppress,
        )
        out = []
        for res in results:
            ids = [t for t in res.sequences_ids[0] if t < self._tok.eot]
            logprob = float(res.scores[0]) if res.scores else -10.0
            out.append((self._tok.decode(ids).strip(), logprob, float(res.no_speech_prob)))
        return out

    def _decode(self, samples: np.ndarray, hints: AsrHints | None) -> Decoded:
        cfg = self.config
        speech_s = len(samples) / SAMPLE_RATE
        window_s = self._window_s(speech_s)
        prompt, prompt_text = self._prompt(hints)
        text, logprob, no_speech = self._run(samples, window_s, prompt, speech_s)
        self._count("passes")
        self._count("decoded")
        if cfg.fallback_logprob is not None and window_s < 30.0 and logprob < cfg.fallback_logprob:
            # Unsure on the short window: the full 30 s window Whisper was trained on does better
            # on hard (noisy) audio, at ~3x the cost, so only for these.
            retry = self._run(samples, 30.0, prompt, speech_s)
            if retry[1] > logprob:  # keep whichever pass the model is surer of
                window_s, (text, logprob, no_speech) = 30.0, retry
        return self._guard(text, logprob, no_speech, speech_s, prompt_text, hints, window_s)

    def _run(self, samples: np.ndarray, window_s: float, prompt: list[int], speech_s: float) -> tuple[str, float, float]:
        n = int(window_s * SAMPLE_RATE)
        audio = np.zeros(n, dtype=np.float32)
        audio[: min(n, len(samples))] = samples[:n]
        feats = self._model.feature_extractor(audio)[:, : int(window_s * _FRAMES_PER_S)]
        encoded = self._model.model.encode(self._storage(np.ascontiguousarray(feats[None])), to_cpu=False)
        max_new = int(self.config.max_tokens_per_s * speech_s) + 8  # above real speech rates; cuts loops short
        res = self._model.model.generate(
            encoded, [prompt], beam_size=self.config.beam_size, max_length=len(prompt) + max_new,
            return_scores=True, return_no_speech_prob=True, suppress_blank=True,
            suppress_tokens=self._suppress,
        )[0]
        ids = [t for t in res.sequences_ids[0] if t < self._tok.eot]
        logprob = float(res.scores[0]) if res.scores else -10.0
        return self._tok.decode(ids).strip(), logprob, float(res.no_speech_prob)

    def _guard(self, text: str, logprob: float, no_speech: float, speech_s: float, prompt_text: str,
               hints: AsrHints | None, window_s: float) -> Decoded:
        cfg = self.config

        def drop(reason: str) -> Decoded:
            return Decoded(text, logprob, no_speech, False, reason, window_s)

        text = collapse_repeat(collapse_loops(text))
        norm = normalize_text(text)
        if not norm:
            return drop("empty")
        if no_speech > cfg.no_speech_threshold and logprob < cfg.logprob_threshold:
            return drop("no_speech")  # Whisper's own rule
        if no_speech > cfg.no_speech_strong:
            return drop("no_speech")  # real replies stay far below this, even one-word ones
        if logprob < cfg.min_logprob or (logprob < cfg.unsure_logprob and no_speech > cfg.unsure_no_speech):
            return drop("low_logprob")
        raw = text.encode("utf-8")
        if len(raw) > 24 and len(raw) / len(zlib.compress(raw)) > cfg.compression_ratio_threshold:
            return drop("compression_ratio")
        if re.search(r"(.)\1{4,}", norm):
            return drop("repetition")
        if len(norm) > cfg.max_chars_per_s * speech_s + 4:
            return drop("too_long")
        if any(j in to_simplified(text) for j in _JUNK):
            return drop("junk_phrase")
        if prompt_text and _echoes(norm, normalize_text(prompt_text), hints, no_speech):
            return drop("prompt_echo")
        if hints and hints.phrases and cfg.hint_by_sound:
            text = apply_hints(norm, hints.phrases)
        return Decoded(text, logprob, no_speech, True, "", window_s)

    @staticmethod
    def to_transcript(d: Decoded, duration_s: float) -> Transcript:
        if not d.kept:
            return Transcript("", 0.0, 0.0, duration_s)
        conf = max(0.0, min(1.0, math.exp(d.avg_logprob) * (1.0 - 0.5 * d.no_speech_prob)))
        return Transcript(normalize_text(d.text), round(conf, 4), 0.0, duration_s)


class WhisperStream:
    """Collects one utterance. `prepare` starts decoding in the background (the speaker paused)
    when a model worker is idle, so that by the time the hangover confirms the end, `finish`
    usually only collects the result; if more speech came after all, that result is dropped."""

    def __init__(self, rec: WhisperRecognizer, hints: AsrHints | None) -> None:
        self._rec, self._hints = rec, hints
        self._chunks: list[np.ndarray] = []
        self._n = 0
        self._pending: tuple[int, Future[Transcript]] | None = None

    def accept(self, pcm: bytes) -> Transcript | None:
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        if len(x):
            self._chunks.append(x)
            self._n += len(x)
        return None  # no partials: every Whisper pass costs a full decode

    def _decode(self, samples: np.ndarray) -> Transcript:
        if len(samples) == 0:
            return Transcript("", 0.0)
        return self._rec.to_transcript(self._rec.decode(samples, self._hints), len(samples) / SAMPLE_RATE)

    def _samples(self) -> np.ndarray:
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)

    def prepare(self) -> None:
        if self._pending is not None and self._pending[0] == self._n:
            return
        samples = self._samples()
        future = self._rec.speculate(lambda: self._decode(samples))
        self._pending = (self._n, future) if future is not None else None

    def finish(self) -> Transcript:
        if self._pending is not None and self._pending[0] == self._n:
            self._rec._count("speculative_used")
            return self._pending[1].result()
        return self._decode(self._samples())
