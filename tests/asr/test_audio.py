"""asr.audio: every accepted format decodes to the same mono int16 signal; bad input is an AudioError."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.audio import (
    Resampler,
    alaw_decode,
    decode,
    encode_wav,
    mulaw_decode,
    mulaw_encode,
    resample,
)
from asr.errors import AudioError
from tests.asr.conftest import AUDIO

RATE = 8000


def tone(freq: float = 440.0, rate: int = RATE, seconds: float = 0.5, amp: float = 8000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amp * np.sin(2 * np.pi * freq * t)).astype("<i2")


def wav(payload: bytes, *, tag: int, rate: int, bits: int, channels: int = 1, extensible: bool = False) -> bytes:
    width = bits // 8
    if extensible:
        fmt = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * width * channels, width * channels, bits)
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + b"\x00" * 14
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * width * channels, width * channels, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spec))])


def alaw_encode(x: np.ndarray) -> bytes:
    """Nearest A-law code for each sample (test helper: inverse of the decoder's table)."""
    table = alaw_decode(bytes(range(256))).astype(np.int32)
    return np.argmin(np.abs(x.astype(np.int32)[:, None] - table[None, :]), axis=1).astype(np.uint8).tobytes()


# ---------------------------------------------------------------- G.711


def test_g711_reference_values() -> None:
    mu = mulaw_decode(bytes([0x00, 0x80, 0xFF, 0x7F]))
    assert mu.tolist() == [-32124, 32124, 0, 0]
    a = alaw_decode(bytes([0xD5, 0x55, 0x2A, 0xAA]))
    assert a.tolist() == [8, -8, -32256, 32256]


def test_mulaw_round_trip_is_within_quantisation_error() -> None:
    x = np.linspace(-32000, 32000, 4001).astype("<i2")
    y = mulaw_decode(mulaw_encode(x)).astype(np.int32)
    err = np.abs(y - x.astype(np.int32))
    assert np.all(err <= np.maximum(8, np.abs(x.astype(np.int32)) * 0.07))
    assert mulaw_encode(np.array([0], "<i2")) == b"\xff"


# ---------------------------------------------------------------- WAV variants


@pytest.mark.parametrize("target", [8000, 16000])
def test_wav_pcm16_8k_is_resampled_keeping_pitch_and_length(target: int) -> None:
    x = tone(440)
    a = decode(encode_wav(x.tobytes(), RATE), target_rate=target)
    assert (a.sample_rate, a.source_rate, a.source_encoding) == (target, RATE, "pcm16")
    assert len(a.samples) == len(x) * target // RATE
    assert abs(peak_hz(a.samples, target) - 440) < 5
    assert a.duration_s == pytest.approx(0.5)


def test_wav_pcm8_mulaw_alaw_float_24bit_stereo_extensible_decode_to_the_same_tone() -> None:
    x = tone(300)
    f = x.astype(np.float64)
    variants = {
        "pcm8": wav((np.round(f / 256) + 128).clip(0, 255).astype(np.uint8).tobytes(), tag=1, rate=RATE, bits=8),
        "mulaw": encode_wav(x.tobytes(), RATE, "mulaw"),
        "alaw": wav(alaw_encode(x), tag=6, rate=RATE, bits=8),
        "float32": wav((f / 32767).astype("<f4").tobytes(), tag=3, rate=RATE, bits=32),
        "pcm24": wav(b"".join((int(v) * 256).to_bytes(3, "little", signed=True) for v in x), tag=1, rate=RATE, bits=24),
        "stereo": wav(np.repeat(x, 2).tobytes(), tag=1, rate=RATE, bits=16, channels=2),
        "extensible": wav(x.tobytes(), tag=1, rate=RATE, bits=16, extensible=True),
    }
    for name, data in variants.items():
        a = decode(data, target_rate=RATE)
        assert len(a.samples) == len(x), name
        err = np.abs(a.samples.astype(np.int32) - x.astype(np.int32))
        assert np.percentile(err, 99) < 600, name  # 8-bit formats quantise; shape is kept
    assert decode(variants["mulaw"], target_rate=RATE).source_encoding == "mulaw"
    assert decode(variants["alaw"], target_rate=RATE).source_encoding == "alaw"


def test_committed_telephone_file_is_mulaw_8k() -> None:
    a = decode((AUDIO / "tel" / "zh01.wav").read_bytes())
    assert (a.source_rate, a.source_encoding, a.sample_rate) == (8000, "mulaw", 16000)


def test_raw_input_needs_a_declared_rate() -> None:
    x = tone(500)
    a = decode(x.tobytes(), declared_rate=RATE, target_rate=RATE)
    assert np.array_equal(a.samples, x)
    u = decode(mulaw_encode(x), declared_rate=RATE, declared_encoding="PCMU", target_rate=16000)
    assert abs(peak_hz(u.samples, 16000) - 500) < 5
    with pytest.raises(AudioError, match="not a recognised audio format"):
        decode(x.tobytes())
    with pytest.raises(AudioError, match="declared sample rate"):
        decode(x.tobytes(), declared_encoding="mulaw")
    with pytest.raises(AudioError, match="unknown declared encoding"):
        decode(x.tobytes(), declared_rate=RATE, declared_encoding="opus")


# ---------------------------------------------------------------- bad input


def test_truncated_and_garbage_input_give_clear_errors() -> None:
    good = (AUDIO / "clean" / "zh01.wav").read_bytes()
    with pytest.raises(AudioError, match="truncated"):
        decode(good[: len(good) // 2])
    with pytest.raises(AudioError, match="no data chunk"):
        decode(good[:40])
    with pytest.raises(AudioError, match="empty"):
        decode(b"")
    with pytest.raises(AudioError, match="not a recognised audio format"):
        decode(b"<html>not audio</html>")
    with pytest.raises(AudioError, match="RIFF file is not WAVE"):
        decode(b"RIFF\x00\x00\x00\x00AVI LIST")
    with pytest.raises(AudioError, match="unsupported WAV encoding"):
        decode(wav(b"\x00" * 64, tag=0x11, rate=8000, bits=4))  # IMA ADPCM


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=256), st.integers(min_value=0, max_value=400))
def test_decode_never_fails_with_anything_but_audio_error(junk: bytes, cut: int) -> None:
    good = encode_wav(tone(200, seconds=0.02).tobytes(), RATE)
    for data in (junk, good[:cut] + junk, b"RIFF" + junk, good[:cut]):
        try:
            a = decode(data)
        except AudioError:
            continue
        assert a.sample_rate == 16000 and len(a.pcm) % 2 == 0


# ---------------------------------------------------------------- compressed (ffmpeg)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
@pytest.mark.parametrize("fmt", ["mp3", "ogg"])
def test_mp3_and_ogg_through_ffmpeg(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / "in.wav"
    src.write_bytes(encode_wav(tone(440, seconds=1.0).tobytes(), RATE))
    out = tmp_path / f"out.{fmt}"
    codec = ["-c:a", "libmp3lame"] if fmt == "mp3" else ["-c:a", "libvorbis"]
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), *codec, str(out)], check=True)
    data = out.read_bytes()
    a = decode(data)
    assert a.source_encoding == fmt and a.sample_rate == 16000
    assert 0.9 < a.duration_s < 1.2
    assert abs(peak_hz(a.samples, 16000) - 440) < 10
    with pytest.raises(AudioError):
        decode(data[:20])


# ---------------------------------------------------------------- resampler


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (16000, 8000), (44100, 16000), (48000, 16000), (11025, 8000)])
def test_resampler_keeps_frequency_and_streaming_equals_batch(src: int, dst: int) -> None:
    x = tone(1000, rate=src, seconds=0.4).astype(np.float64)
    y = resample(x, src, dst)
    assert len(y) == len(x) * dst // src
    assert abs(peak_hz(y, dst) - 1000) < 10
    mid = y[len(y) // 4 : -len(y) // 4]
    assert np.sqrt(2 * np.mean(mid**2)) == pytest.approx(8000, rel=0.03)
    whole = Resampler(src, dst).process(x)
    r = Resampler(src, dst)
    parts = np.concatenate([r.process(x[i : i + 160]) for i in range(0, len(x), 160)])
    assert np.allclose(parts, whole[: len(parts)]) and abs(len(parts) - len(whole)) <= 1


def test_resampler_removes_content_above_the_new_nyquist() -> None:
    y = resample(tone(6000, rate=16000, seconds=0.4).astype(np.float64), 16000, 8000)
    assert np.sqrt(np.mean(y[200:-200] ** 2)) < 8000 * 0.02  # 6 kHz cannot exist at 8 kHz: filtered out
