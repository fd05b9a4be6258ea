"""asr.streaming.StreamingSession: 8 kHz gateway frames in → barge-in / partial / final events."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asr import AsrError, AsrHints, Recognizer, load_recognizer
from asr.audio import decode, mulaw_encode
from asr.metrics import cer_counts
from asr.streaming import AsrEvent, StreamingSession
from core.settings import Settings
from tests.asr.conftest import AUDIO, noise_files

FRAME = 160  # 20 ms at 8 kHz, as FreeSWITCH / jambonz send it


def call_audio(*names: str, gap_s: float = 1.0) -> np.ndarray:
    """8 kHz int16: the files one after another, each followed by `gap_s` of silence."""
    parts = []
    for name in names:
        parts += [decode((AUDIO / name).read_bytes(), target_rate=8000).samples, np.zeros(int(gap_s * 8000), np.int16)]
    return np.concatenate(parts)


def run(session: StreamingSession, x: np.ndarray, encoding: str = "pcm16") -> list[tuple[float, AsrEvent]]:
    """Feed frame by frame; return (seconds of audio fed when the event came out, event)."""
    out = []
    for i in range(0, len(x), FRAME):
        chunk = x[i : i + FRAME]
        data = mulaw_encode(chunk) if encoding == "mulaw" else chunk.tobytes()
        out += [(session.time_s, e) for e in session.feed(data)]
    out += [(session.time_s, e) for e in session.close()]
    return out


@pytest.mark.slow
def test_barge_in_at_speech_start_and_final_after_the_hangover(whisper: Recognizer) -> None:
    x = call_audio("tel/zh15.wav")
    events = run(StreamingSession(whisper, input_rate=8000), x)
    types = [e.type for _, e in events]
    assert types == ["speech_start", "barge_in", "final"]
    (_, start), (t_barge, barge), (t_final, final) = events
    assert barge.time_s == start.time_s
    assert t_barge - start.time_s < 0.2  # signalled within a few frames of the onset
    assert cer_counts("明天下午三点再打", final.text)[0] <= 2 and final.confidence > 0
    assert final.start_s == start.time_s and final.end_s < final.time_s
    # the final comes once the 300 ms hangover has passed, not before, and not much after
    assert 0.3 <= t_final - final.end_s <= 0.3 + 0.064 + 0.02
    assert final.to_json()["text"] == final.text and "3点" in final.text


@pytest.mark.slow
def test_barge_in_only_when_allowed_and_two_turns_in_order(whisper: Recognizer) -> None:
    s = StreamingSession(whisper, input_rate=8000, encoding="mulaw", barge_in=False)
    events = run(s, call_audio("tel/zh21.wav", "tel/zh27.wav"), encoding="mulaw")
    types = [e.type for _, e in events]
    assert types == ["speech_start", "final", "speech_start", "final"]
    finals = [e.text for _, e in events if e.type == "final"]
    assert finals[0] and finals[1] and finals[0] != finals[1]
    assert s.utterances == 2
    s.set_barge_in(True)
    s.set_hints(AsrHints(("多少钱",)))
    assert "barge_in" in [e.type for _, e in run(s, call_audio("tel/zh21.wav"), encoding="mulaw")]


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in noise_files() if p.stem.endswith("8")], ids=lambda p: p.stem)
def test_noise_on_the_line_produces_no_events(whisper: Recognizer, path: Path) -> None:
    x = decode(path.read_bytes(), target_rate=8000).samples
    assert run(StreamingSession(whisper, input_rate=8000), x) == []


@pytest.mark.slow
def test_vosk_streams_partials_before_the_final(vosk_ko: Recognizer) -> None:
    hints = AsrHints(("안녕하세요", "네", "아니요"), grammar=True)
    x = decode((AUDIO / "ko" / "ko01.wav").read_bytes(), target_rate=16000).samples
    events = run(StreamingSession(vosk_ko, input_rate=16000, hints=hints), np.concatenate([x, np.zeros(8000, np.int16)]))
    types = [e.type for _, e in events]
    assert types[:2] == ["speech_start", "barge_in"] and types[-1] == "final"
    assert "partial" in types
    assert events[-1][1].text == "안녕하세요"


@pytest.mark.slow
def test_odd_sized_pcm_frames_are_reassembled(vosk_ko: Recognizer) -> None:
    x = call_audio("ko/ko02.wav", gap_s=0.6).tobytes()
    s = StreamingSession(vosk_ko, input_rate=8000, hints=AsrHints(("네", "아니요"), grammar=True))
    events = [e for i in range(0, len(x), 333) for e in s.feed(x[i : i + 333])] + s.close()
    assert [e.type for e in events if e.type != "partial"] == ["speech_start", "barge_in", "final"]
    assert events[-1].text == "네"


def test_text_backend_and_bad_encoding_are_refused() -> None:
    with pytest.raises(AsrError, match="text ASR backend"):
        StreamingSession(load_recognizer(Settings(), "text"))
    with pytest.raises(AsrError, match="unknown stream encoding"):
        StreamingSession(load_recognizer(Settings(), "text"), encoding="opus")
