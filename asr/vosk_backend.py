"""vosk (Kaldi) backend. The only module that imports vosk.

Always loads a model from a local directory (`HUASHU_VOSK_MODEL`): `vosk.Model(lang=...)` would
try to download one, which an offline engine must never do. Input is 16 kHz PCM (Kaldi resamples
to the model's own rate, 8 or 16 kHz). Hints with `grammar=True` restrict recognition to the
node's phrases, which is what makes short yes/no/number turns reliable on small models.
"""

from __future__ import annotations

import atexit
import json
import logging
import re
import threading
import weakref
from pathlib import Path
from typing import Any

from asr.errors import ModelError
from asr.hotwords import apply_hints
from asr.models import VOSK_HELP
from asr.normalize import normalize_text
from asr.types import AsrHints, Transcript

SAMPLE_RATE = 16000
_log = logging.getLogger(__name__)
_HAN = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff]+$")


_LIVE: weakref.WeakSet[VoskRecognizer] = weakref.WeakSet()


@atexit.register
def _free_models() -> None:
    """vosk frees a model in `Model.__del__` through its module's globals, which are already gone
    when the interpreter tears modules down ("'NoneType' object has no attribute
    'vosk_model_free'" at every exit). Dropping our references while vosk is intact frees them."""
    for recognizer in list(_LIVE):
        recognizer._model = None


class VoskRecognizer:
    """Streaming recognizer on a local vosk model directory."""

    sample_rate = SAMPLE_RATE

    def __init__(self, model_dir: Path) -> None:
        import vosk

        vosk.SetLogLevel(-1)  # Kaldi logs every grammar word to stderr otherwise
        self.model_dir = model_dir
        try:
            self._model = vosk.Model(str(model_dir))
        except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
            raise ModelError(f"HUASHU_VOSK_MODEL={model_dir}: vosk could not load it ({exc}); {VOSK_HELP}") from exc
        self._vosk = vosk
        self._grammar_cache: dict[tuple[str, ...], str | None] = {}
        self._lock = threading.Lock()
        _LIVE.add(self)

    def has_word(self, word: str) -> bool:
        return int(self._model.vosk_model_find_word(word)) >= 0

    def grammar(self, phrases: tuple[str, ...]) -> str | None:
        """JSON grammar for vosk: the phrases the model can spell (Han phrases may be split into
        characters), plus [unk] when the model has it. None when no phrase is usable."""
        with self._lock:
            if phrases in self._grammar_cache:
                return self._grammar_cache[phrases]
        usable: list[str] = []
        for phrase in phrases:
            words = phrase.split()
            if words and all(self.has_word(w) for w in words):
                usable.append(" ".join(words))
            elif _HAN.match(phrase) and all(self.has_word(c) for c in phrase):
                usable.append(" ".join(phrase))
            else:
                _log.warning("vosk model %s cannot spell hint phrase %r; left out of the grammar",
                             self.model_dir, phrase)
        if usable and self.has_word("[unk]"):
            usable.append("[unk]")
        result = json.dumps(usable, ensure_ascii=False) if usable else None
        with self._lock:
            self._grammar_cache[phrases] = result
        return result

    def _kaldi(self, hints: AsrHints | None) -> Any:
        grammar = self.grammar(tuple(hints.phrases)) if hints and hints.grammar and hints.phrases else None
        if grammar is None:
            rec = self._vosk.KaldiRecognizer(self._model, float(SAMPLE_RATE))
        else:
            rec = self._vosk.KaldiRecognizer(self._model, float(SAMPLE_RATE), grammar)
        rec.SetWords(True)
        return rec

    def transcribe(self, pcm: bytes, hints: AsrHints | None = None) -> Transcript:
        s = self.stream(hints)
        s.accept(pcm)
        return s.finish()

    def stream(self, hints: AsrHints | None = None) -> VoskStream:
        # Without a grammar, hint phrases still fix homophones in the result (asr.hotwords).
        by_sound = tuple(hints.phrases) if hints and not hints.grammar else ()
        return VoskStream(self._kaldi(hints), by_sound)


def _words(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [w for w in result.get("result", []) if w.get("word") not in (None, "[unk]", "<unk>")]


class VoskStream:
    """Kaldi's own endpointer may cut a long turn into several results; they are joined."""

    def __init__(self, rec: Any, by_sound: tuple[str, ...] = ()) -> None:
        self._rec = rec
        self._by_sound = by_sound
        self._words: list[dict[str, Any]] = []
        self._samples = 0
        self._last_partial = ""

    def _text(self, extra: str = "") -> str:
        return normalize_text(" ".join([*(w["word"] for w in self._words), extra]))

    def accept(self, pcm: bytes) -> Transcript | None:
        self._samples += len(pcm) // 2
        if self._rec.AcceptWaveform(pcm):
            self._words += _words(json.loads(self._rec.Result()))
            partial = self._text()
        else:
            partial = self._text(json.loads(self._rec.PartialResult()).get("partial", ""))
        if partial == self._last_partial:
            return None
        self._last_partial = partial
        return Transcript(partial, 0.0, 0.0, self._samples / SAMPLE_RATE, is_final=False)

    def prepare(self) -> None:
        """Kaldi decodes as audio arrives; the final result is always ready."""

    def finish(self) -> Transcript:
        self._words += _words(json.loads(self._rec.FinalResult()))
        if not self._words:
            return Transcript("", 0.0, 0.0, self._samples / SAMPLE_RATE)
        conf = sum(float(w.get("conf", 0.0)) for w in self._words) / len(self._words)
        text = apply_hints(self._text(), self._by_sound) if self._by_sound else self._text()
        return Transcript(text, round(conf, 4), float(self._words[0].get("start", 0.0)),
                          float(self._words[-1].get("end", self._samples / SAMPLE_RATE)))
