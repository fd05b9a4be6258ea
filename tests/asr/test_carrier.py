"""Calls that never reached the customer, from the first seconds of audio: carrier announcements,
voicemail, call-screening assistants (ASR text + rules) and ring-back / 彩铃 music (signal)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from asr import Recognizer, transcribe_bytes
from asr.audio import decode
from asr.carrier import classify_text, line_signal_s, screen_recording
from asr.streaming import StreamingSession
from tests.asr.conftest import AUDIO

CARRIER = AUDIO.parent / "carrier"


def clips() -> list[dict[str, Any]]:
    return list(yaml.safe_load((CARRIER / "carrier.yml").read_text("utf-8"))["clips"])


@pytest.mark.parametrize(("text", "reason"), [
    ("您拨打的电话已关机", "powered_off"), ("对不起，您拨打的号码是空号，请查证后再拨", "invalid_number"),
    ("您拨打的电话已停机", "suspended"), ("您拨打的用户正在通话中，请稍后再拨", "busy"),
    ("您拨打的电话暂时无法接通", "no_answer"), ("请在提示音后留言", "voicemail"),
    ("机主现在不方便接听，请问您有什么事？", "call_screening"),
    # the way a small model writes them: homophones matched by sound
    ("您播打低电话以关机", "powered_off"), ("对不起您不打地用户一战停服务", "suspended"),
    # people, who must never be taken for a machine
    ("喂，你好，哪位", None), ("我现在不方便，你晚点再打吧", None), ("我在通话，等下打给我", None),
    ("这个号码不存在的订单", None), ("我手机快没电了", None), ("你打错了", None),
])
def test_classify_text(text: str, reason: str | None) -> None:
    assert classify_text(text) == reason


def test_ring_back_and_music_are_line_signal_and_speech_is_not() -> None:
    data = {c["id"]: decode((CARRIER / f"{c['id']}.wav").read_bytes(), target_rate=16000).pcm for c in clips()}
    assert line_signal_s(data["k16"]) > 5.0  # six seconds of 彩铃 music
    assert screen_recording(data["k16"], "", first_turn=True) == "no_answer"
    assert screen_recording(data["k16"], "", first_turn=False) is None  # mid-call: not the carrier's
    for path in sorted((AUDIO / "tel").glob("*.wav"))[:20]:  # people talking
        assert line_signal_s(decode(path.read_bytes(), target_rate=16000).pcm) == 0.0, path.name


def test_the_stream_reports_music_in_the_first_seconds_but_not_a_voice() -> None:
    class Nothing:  # the recogniser's words do not matter here: the signal decides
        sample_rate = 16000

        def transcribe(self, pcm: bytes, hints: object = None) -> Any:
            from asr.types import Transcript

            return Transcript("喂", 0.9)

    def events(path: Path) -> list[str]:
        session = StreamingSession(Nothing(), input_rate=8000, encoding="mulaw", screen_s=6.0)
        raw = path.read_bytes()
        audio = raw[raw.index(b"data") + 8:]
        out = []
        for i in range(0, len(audio), 160):  # 20 ms mu-law frames, as a gateway sends them
            out += [e.type for e in session.feed(audio[i:i + 160])]
        return out + [e.type for e in session.close()]

    assert "line_signal" in events(CARRIER / "k16.wav")
    voice = events(CARRIER / "k17.wav")
    assert "line_signal" not in voice and "final" in voice


@pytest.mark.slow
def test_real_announcements_end_with_the_right_tag_and_people_never_do(whisper: Recognizer) -> None:
    right, machines = 0, 0
    for clip in clips():
        raw = (CARRIER / f"{clip['id']}.wav").read_bytes()
        transcript, _ = transcribe_bytes(raw, whisper)
        pcm = decode(raw, target_rate=16000).pcm
        found = classify_text(transcript.text) or screen_recording(pcm, transcript.text, first_turn=True)
        if clip["reason"] is None:
            assert found is None, (clip["id"], transcript.text)  # a person is never hung up on
        else:
            machines += 1
            right += found == clip["reason"]
    assert right >= 0.85 * machines, f"{right}/{machines}"
