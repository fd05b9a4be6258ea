"""`text` backend: the gateway runs its own ASR and sends text; we only normalise it so that the
NLU sees the same written form as from our own recognizers (Simplified, Arabic numbers)."""

from __future__ import annotations

from asr.errors import AsrError
from asr.normalize import normalize_text
from asr.types import AsrHints, Transcript

_NO_AUDIO = ("the text ASR backend takes the gateway's transcript and cannot recognize audio; "
             "set HUASHU_ASR_BACKEND=whisper or vosk (or pass --backend) to send audio")


class TextRecognizer:
    sample_rate = 16000

    def accept_text(self, text: str, confidence: float = 1.0) -> Transcript:
        """Normalise a transcript produced elsewhere; blank text stays empty (no speech)."""
        norm = normalize_text(text or "")
        return Transcript(norm, max(0.0, min(1.0, float(confidence))) if norm else 0.0)

    def transcribe(self, pcm: bytes, hints: AsrHints | None = None) -> Transcript:
        raise AsrError(_NO_AUDIO)

    def stream(self, hints: AsrHints | None = None) -> None:
        raise AsrError(_NO_AUDIO)
