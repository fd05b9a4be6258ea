"""`huashu transcribe`: one line per file, in order; clear errors, no tracebacks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from core.settings import get_settings
from huashu.cli import asr as cli_asr
from tests.asr.conftest import AUDIO, vosk_ko_model


@pytest.fixture
def app() -> typer.Typer:
    a = typer.Typer()
    cli_asr.register(a)

    @a.callback()
    def _root() -> None:  # keep `transcribe` a subcommand, as in the real CLI
        pass

    return a


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, asr_cache: Path) -> Iterator[None]:
    monkeypatch.setenv("HUASHU_CACHE_DIR", str(asr_cache))
    monkeypatch.setenv("HUASHU_VOSK_MODEL", str(vosk_ko_model()))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.slow
def test_json_lines_in_order_with_errors_reported(app: typer.Typer, env: None, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio at all")
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes((AUDIO / "tel" / "zh21.wav").read_bytes()[:2000])
    files = [AUDIO / "tel" / "zh15.wav", AUDIO / "noise" / "pink8.wav", garbage, truncated, AUDIO / "clean" / "zh01.wav"]
    r = CliRunner().invoke(app, ["transcribe", "--backend", "whisper", "--json", *map(str, files)])
    assert r.exit_code == 1
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [d["file"] for d in lines] == [str(f) for f in files]
    assert lines[0]["text"] and set(lines[0]) == {"file", "text", "confidence", "duration_s"}
    assert lines[0]["duration_s"] == pytest.approx(2.758, abs=0.01)
    assert lines[1] == {"file": str(files[1]), "text": "", "confidence": 0.0, "duration_s": 4.0}
    assert "not a recognised audio format" in lines[2]["error"]
    assert "truncated" in lines[3]["error"]
    assert lines[4]["text"]
    assert "Traceback" not in r.output


@pytest.mark.slow
def test_plain_output_with_vosk_and_grammar(app: typer.Typer, env: None) -> None:
    files = [AUDIO / "ko" / "ko02.wav", AUDIO / "ko" / "ko03.wav"]
    r = CliRunner().invoke(app, ["transcribe", "--backend", "vosk", "--hint", "네", "--hint", "아니요", "--grammar",
                                 *map(str, files)])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [f"{files[0]}\t네", f"{files[1]}\t아니요"]


def test_bad_backend_and_missing_model_exit_2(app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    wav = str(AUDIO / "tel" / "zh01.wav")
    r = CliRunner().invoke(app, ["transcribe", "--backend", "text", wav])
    assert r.exit_code == 2 and "vosk or whisper" in r.output
    monkeypatch.setenv("HUASHU_VOSK_MODEL", "/nonexistent/vosk-model")
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(app, ["transcribe", "--backend", "vosk", wav])
    finally:
        get_settings.cache_clear()
    assert r.exit_code == 2
    assert "/nonexistent/vosk-model" in r.output and "vosk-model-small-cn-0.22" in r.output
    assert "Traceback" not in r.output


CALLS = AUDIO.parent / "calls" / "audio"


@pytest.mark.slow
def test_track_and_node_hints(app: typer.Typer, env: None) -> None:
    from huashu.cli import _register_all
    from huashu.cli import app as huashu_app

    _register_all()
    r = CliRunner().invoke(huashu_app, ["transcribe", "--backend", "whisper", "--json", "--track", "wecom_add_gift",
                                        "--node", "opening", str(CALLS / "c09" / "01.wav")])
    assert r.exit_code == 0, r.output
    assert "短信" in json.loads(r.stdout)["text"]
    bad = CliRunner().invoke(huashu_app, ["transcribe", "--backend", "whisper", "--track", "wecom_add_gift",
                                          "--node", "close_added", str(CALLS / "c09" / "01.wav")])
    assert bad.exit_code == 2 and "no waiting node" in bad.output
