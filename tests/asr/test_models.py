"""asr.models / load_recognizer: local models only, verified, errors name the path and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from asr import AsrError, ModelError, load_recognizer
from asr.models import BASE_MODEL_SHA256, BASE_MODEL_SIZE, default_whisper_model, vosk_model_dir, whisper_model_dir
from asr.text_backend import TextRecognizer
from core.settings import Settings


def test_bundled_whisper_model_is_joined_once_and_verified(asr_cache: Path) -> None:
    d = default_whisper_model(asr_cache)
    model = d / "model.bin"
    assert model.stat().st_size == BASE_MODEL_SIZE
    assert (d / ".verified").read_text().strip() == BASE_MODEL_SHA256["model.bin"]
    assert {p.name for p in d.iterdir()} >= {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}
    mtime = model.stat().st_mtime_ns
    assert default_whisper_model(asr_cache) == d and model.stat().st_mtime_ns == mtime  # not joined again
    assert not [p for p in d.iterdir() if p.name.startswith(".model.bin.")]  # no temp file left behind


def test_a_damaged_join_is_redone(tmp_path: Path) -> None:
    d = default_whisper_model(tmp_path)
    with (d / "model.bin").open("r+b") as f:  # cut the file: size no longer matches the stamp
        f.truncate(1000)
    default_whisper_model(tmp_path)
    assert (d / "model.bin").stat().st_size == BASE_MODEL_SIZE


def test_whisper_setting_must_point_at_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=f"HUASHU_WHISPER_MODEL={tmp_path}.*model.bin"):
        whisper_model_dir(str(tmp_path), tmp_path)
    with pytest.raises(ModelError, match="HUASHU_WHISPER_MODEL=/nonexistent/whisper"):
        load_recognizer(Settings(whisper_model="/nonexistent/whisper", cache_dir=tmp_path), "whisper", cached=False)


def test_vosk_needs_a_local_model_and_says_where_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"HUASHU_VOSK_MODEL is not set.*vosk-model-small-cn-0\.22"):
        vosk_model_dir("")
    with pytest.raises(ModelError, match=r"HUASHU_VOSK_MODEL=/nonexistent/vosk: no such directory.*vosk-model-small-cn-0\.22"):
        load_recognizer(Settings(vosk_model="/nonexistent/vosk"), "vosk", cached=False)
    with pytest.raises(ModelError, match="not a vosk model"):
        vosk_model_dir(str(tmp_path))


def test_vosk_backend_never_asks_vosk_to_download() -> None:
    """vosk.Model(lang=...) / (model_name=...) download from the internet: only a path is allowed."""
    import ast

    import asr.vosk_backend

    tree = ast.parse(Path(asr.vosk_backend.__file__).read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "Model"]
    assert calls and all(not c.keywords and len(c.args) == 1 for c in calls)


def test_unknown_backend_and_text_backend() -> None:
    with pytest.raises(AsrError, match="unknown ASR backend 'kaldi'"):
        load_recognizer(Settings(), "kaldi")
    rec = load_recognizer(Settings(), "text")
    assert isinstance(rec, TextRecognizer)
    t = rec.accept_text("明天下午三點再打。", 0.92)
    assert (t.text, t.confidence) == ("明天下午3点再打", 0.92)
    assert rec.accept_text("  ", 0.9).text == "" and rec.accept_text("", 0.9).confidence == 0.0
    with pytest.raises(AsrError, match="cannot recognize audio"):
        rec.transcribe(b"\x00\x00" * 1600)


def test_recognizers_are_cached_per_settings(tmp_path: Path) -> None:
    s = Settings(cache_dir=tmp_path)
    assert load_recognizer(s, "text") is load_recognizer(s, "text")
    assert load_recognizer(s, "text", cached=False) is not load_recognizer(s, "text")


def test_unusable_cache_dir_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(ModelError, match=r"cannot create the model cache.*HUASHU_CACHE_DIR"):
        default_whisper_model(blocker / "cache")
