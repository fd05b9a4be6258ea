"""asr.vad: Silero endpointing on real recordings — starts, ends after the hangover, no noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asr.audio import decode
from asr.vad import FRAME, SAMPLE_RATE, Endpointer, VadConfig, speech_segments
from tests.asr.conftest import AUDIO, noise_files


def pcm16k(path: Path) -> np.ndarray:
    return decode(path.read_bytes()).samples


def energy_bounds(x: np.ndarray) -> tuple[float, float]:
    """First and last 10 ms window clearly above the noise floor (seconds)."""
    win = 160
    e = np.sqrt(np.mean(x[: len(x) // win * win].astype(np.float64).reshape(-1, win) ** 2, axis=1))
    loud = np.nonzero(e > 0.05 * e.max())[0]
    return loud[0] * win / SAMPLE_RATE, (loud[-1] + 1) * win / SAMPLE_RATE


@pytest.mark.parametrize("path", noise_files(), ids=lambda p: p.stem)
def test_noise_and_silence_have_no_speech(path: Path) -> None:
    assert speech_segments(pcm16k(path).tobytes()) == []


@pytest.mark.parametrize("uid", ["zh01", "zh15", "zh33", "zh22"])
@pytest.mark.parametrize("kind", ["clean", "tel"])
def test_one_utterance_one_segment_with_the_speech_inside(kind: str, uid: str) -> None:
    x = pcm16k(AUDIO / kind / f"{uid}.wav")
    on, off = energy_bounds(x)
    segs = speech_segments(x.tobytes())
    assert len(segs) == 1
    seg = segs[0]
    assert on - 0.15 <= seg.start_s <= on + 0.15
    assert off - 0.25 <= seg.speech_end_s <= off + 0.15
    # the segment audio covers the speech (pre-roll before, hangover after)
    seg_len = len(seg.pcm) / 2 / SAMPLE_RATE
    assert seg_len >= (off - on)


def test_end_comes_one_hangover_after_the_last_speech() -> None:
    x = pcm16k(AUDIO / "clean" / "zh15.wav")
    for hangover in (300, 600):
        [seg] = speech_segments(x.tobytes(), VadConfig(hangover_ms=hangover))
        assert hangover / 1000 <= seg.time_s - seg.speech_end_s <= hangover / 1000 + FRAME / SAMPLE_RATE + 1e-9


def test_short_pause_does_not_split_a_long_pause_does() -> None:
    a, b = pcm16k(AUDIO / "clean" / "zh01.wav"), pcm16k(AUDIO / "clean" / "zh21.wav")
    _, a_off = energy_bounds(a)
    b_on, _ = energy_bounds(b)
    head, tail = a[: int(a_off * SAMPLE_RATE)], b[int(b_on * SAMPLE_RATE) :]
    for gap_s, n in ((0.15, 1), (0.9, 2)):
        joined = np.concatenate([head, np.zeros(int(gap_s * SAMPLE_RATE), np.int16), tail])
        assert len(speech_segments(joined.tobytes())) == n, gap_s


def test_streaming_events_in_order_and_start_is_early() -> None:
    x = pcm16k(AUDIO / "tel" / "zh18.wav")
    on, _ = energy_bounds(x)
    ep = Endpointer(VadConfig())
    fed, kinds, start_fed = 0, [], None
    for i in range(0, len(x), 320):  # 20 ms frames, as a gateway sends them
        chunk = x[i : i + 320]
        fed += len(chunk)
        for ev in ep.feed(chunk.tobytes()):
            kinds.append(ev.kind)
            if ev.kind == "start":
                start_fed = fed / SAMPLE_RATE
    kinds += [e.kind for e in ep.flush()]
    summary = [k for k in kinds if k != "audio"]
    assert summary[0] == "start" and summary[-1] == "end" and summary.count("start") == 1
    assert summary[-2] == "pause"
    assert start_fed is not None and start_fed - on < 0.35  # barge-in within a few frames of onset
    # every frame after the start is handed on exactly once ("start" pre-roll + "audio" frames)
    assert kinds.count("audio") > 10


def test_max_segment_forces_an_end() -> None:
    x = pcm16k(AUDIO / "clean" / "zh33.wav")
    segs = speech_segments(x.tobytes(), VadConfig(max_segment_s=1.0))
    assert len(segs) >= 2
    assert all(len(s.pcm) / 2 / SAMPLE_RATE <= 1.0 + FRAME / SAMPLE_RATE for s in segs)
