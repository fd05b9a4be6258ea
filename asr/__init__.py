"""ASR front end: audio in → VAD endpointing → vosk / faster-whisper / gateway text → one
normalised transcript form for the NLU.

    from asr import load_recognizer, transcribe_bytes
    rec = load_recognizer(settings)                # VAD-gated; backend from HUASHU_ASR_BACKEND
    transcript, seconds = transcribe_bytes(wav_bytes, rec, AsrHints(phrases=("好的", "不需要")))

Streaming (gateway WebSocket): `asr.streaming.StreamingSession`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from asr.audio import Audio, decode
from asr.errors import AsrError, AudioError, ModelError
from asr.pipeline import GatedRecognizer, transcribe_bytes
from asr.types import AsrHints, Recognizer, RecognizerStream, StreamingRecognizer, Transcript
from asr.vad import VadConfig

if TYPE_CHECKING:
    from core.settings import Settings

__all__ = [
    "BACKENDS", "AsrError", "AsrHints", "Audio", "AudioError", "GatedRecognizer", "ModelError",
    "Recognizer", "RecognizerStream", "StreamingRecognizer", "Transcript", "decode",
    "load_recognizer", "transcribe_bytes",
]

BACKENDS = ("whisper", "vosk", "text")
_cache: dict[tuple[object, ...], Recognizer] = {}
_cache_lock = threading.Lock()


def vad_config(settings: Settings) -> VadConfig:
    t = settings.asr_vad_threshold
    return VadConfig(threshold=t, neg_threshold=max(0.01, min(0.35, t - 0.15)), hangover_ms=settings.asr_hangover_ms)


def load_recognizer(settings: Settings, backend: str | None = None, *, cached: bool = True) -> Recognizer:
    """The configured recognizer, VAD-gated (`text` excepted: it has no audio).

    Models load once per process and settings combination (`cached=False` forces a new one).
    Raises `ModelError` naming the setting and path when a model is missing.
    """
    name = (backend or settings.asr_backend or "whisper").strip().lower()
    if name not in BACKENDS:
        raise AsrError(f"unknown ASR backend {name!r} (HUASHU_ASR_BACKEND / --backend): use one of {', '.join(BACKENDS)}")
    key = (name, settings.whisper_model, settings.vosk_model, str(settings.cache_dir), settings.asr_threads,
           settings.asr_workers, settings.asr_hangover_ms, settings.asr_vad_threshold, settings.asr_max_batch)
    if cached:
        with _cache_lock:
            if key in _cache:
                return _cache[key]
    rec = _build(name, settings)
    if cached:
        with _cache_lock:
            rec = _cache.setdefault(key, rec)
    return rec


def _build(name: str, settings: Settings) -> Recognizer:
    if name == "text":
        from asr.text_backend import TextRecognizer

        return TextRecognizer()
    from asr import models

    if name == "vosk":
        from asr.vosk_backend import VoskRecognizer

        return GatedRecognizer(VoskRecognizer(models.vosk_model_dir(settings.vosk_model)), vad_config(settings), "vosk")
    from asr.whisper_backend import WhisperConfig, WhisperRecognizer

    model_dir = models.whisper_model_dir(settings.whisper_model, settings.cache_dir)
    cfg = WhisperConfig(cpu_threads=settings.asr_threads, num_workers=settings.asr_workers,
                        max_batch=settings.asr_max_batch)
    return GatedRecognizer(WhisperRecognizer(model_dir, cfg), vad_config(settings), "whisper")
