"""Our recogniser as a jambonz custom speech vendor: a client speaking jambonz's STT protocol
frame by frame (Bearer key, `start`, binary LINEAR16, `stop`) with real audio; and the adapter's
gather naming that vendor with the node's hints."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from starlette.websockets import WebSocketDisconnect

from asr.audio import decode
from core.settings import Settings
from server.jambonz import to_verbs
from server.jambonz_stt import PATH, start_call_sid, start_hints
from tests.conftest import ROOT
from tests.server.conftest import TRACK, client_for

KEY = "stt-key-for-tests"
CALL = ROOT / "tests" / "data" / "calls" / "audio" / "c09" / "01.wav"  # 「短信我没收到啊」


def _linear16_8k(path: Path) -> bytes:
    return decode(path.read_bytes(), target_rate=8000).pcm


class _Recording:
    """The real recognizer, noting the hints each utterance is recognised with."""

    def __init__(self, rec: Any) -> None:
        self.rec = rec
        self.hints: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rec, name)

    def stream(self, hints: Any = None) -> Any:
        self.hints.append(hints)
        return self.rec.stream(hints)

    def transcribe(self, pcm: bytes, hints: Any = None) -> Any:
        self.hints.append(hints)
        return self.rec.transcribe(pcm, hints)


def _start(**options: Any) -> str:
    """A start frame as mod_jambonz_transcribe writes it (keys in its order; `options` always there)."""
    return json.dumps({"type": "start", "language": "zh-CN", "format": "raw", "encoding": "LINEAR16",
                       "interimResults": False, "sampleRateHz": 8000, "options": options}, ensure_ascii=False)


def test_start_hints_where_jambonz_puts_them() -> None:
    # string hints travel as a list; {phrase, boost} hints as a JSON string of the list
    assert start_hints(json.loads(_start(hints=["短信", "尾款"], hintsBoost=10))) == ["短信", "尾款"]
    as_objects = json.dumps([{"phrase": "定金", "boost": 5}, {"phrase": " 尾款 "}, {"boost": 1}])
    assert start_hints(json.loads(_start(hints=as_objects))) == ["定金", "尾款"]
    assert start_hints(json.loads(_start())) == []
    assert start_hints({"type": "start", "hints": ["短信", 3, "x" * 41]}) == ["短信"]  # other clients
    assert start_hints(json.loads(_start(hints="not json"))) == []
    assert start_call_sid(json.loads(_start(callSid="jb-9")), {}) == "jb-9"
    assert start_call_sid({"type": "start"}, {"call_sid": "jb-q"}) == "jb-q"
    verbs = to_verbs([{"type": "listen", "timeout_ms": 5000}], "s", 2,
                     {"vendor": "custom:huashu", "language": "zh-CN", "hints": ["短信"]})
    assert verbs[-1]["recognizer"] == {"vendor": "custom:huashu", "language": "zh-CN", "hints": ["短信"]}


def _recognise(ws: Any, pcm: bytes, start: str) -> dict[str, Any]:
    ws.send_text(start)
    for i in range(0, len(pcm), 320):  # 20 ms frames, as jambonz sends them
        ws.send_bytes(pcm[i:i + 320])
    ws.send_bytes(np.zeros(8000, "<i2").tobytes())  # a second of line silence after the reply
    ws.send_text(json.dumps({"type": "stop"}))
    got = json.loads(ws.receive_text())
    with pytest.raises(WebSocketDisconnect):  # the vendor closes after stop
        ws.receive_text()
    return cast(dict[str, Any], got)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["memory"])
def test_a_jambonz_client_gets_a_final_transcription_of_real_audio(make_settings: Callable[..., Settings],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """jambonz's start frame with `options.hints`: those phrases are the recognizer's hints (and
    Whisper's prompt); with `options` carrying only `callSid`, the hints of that call's node."""
    import asr

    real, recordings = asr.load_recognizer, []

    def recording(settings: Settings, *args: Any, **kw: Any) -> Any:
        recordings.append(_Recording(real(settings, *args, **kw)))
        return recordings[-1]

    monkeypatch.setattr(asr, "load_recognizer", recording)
    pcm = _linear16_8k(CALL)
    phrases = ["短信", "没收到", "验证码"]
    headers = {"Authorization": f"Bearer {KEY}"}
    with client_for(make_settings(jambonz_stt_key=KEY, jambonz_stt_vendor="custom:huashu")) as client:
        with client.websocket_connect(PATH, headers=headers) as ws:
            got = _recognise(ws, pcm, _start(hints=phrases, hintsBoost=20, callSid="jb-none"))
        assert got["type"] == "transcription" and got["is_final"] is True
        assert "短信" in got["alternatives"][0]["transcript"]
        assert 0 < got["alternatives"][0]["confidence"] <= 1
        rec = recordings[0]
        assert [tuple(h.phrases) for h in rec.hints] == [tuple(phrases)]
        whisper = rec.rec.backend
        assert (whisper.config.base_prompt, *phrases) in whisper._prompt_cache  # the decoder's prompt

        webhook = {"call_sid": "jb-stt-2", "direction": "outbound", "from": "4008208820", "to": "13812345678",
                   "call_status": "in-progress", "customerData": {"customer_id": "cust-stt2", "track": TRACK}}
        gather = client.post("/jambonz/calls", json=webhook).json()[-1]
        with client.websocket_connect(PATH, headers=headers) as ws:
            _recognise(ws, pcm, _start(callSid="jb-stt-2"))
        assert list(rec.hints[-1].phrases) == gather["recognizer"]["hints"] and len(gather["recognizer"]["hints"]) >= 5


def test_wrong_key_and_bad_start_are_refused(make_settings: Callable[..., Settings]) -> None:
    with client_for(make_settings(jambonz_stt_key=KEY)) as client:
        with pytest.raises(WebSocketDisconnect) as info, \
                client.websocket_connect(PATH, headers={"Authorization": "Bearer nope"}) as ws:
            ws.receive_text()
        assert info.value.code == 1008
        with client.websocket_connect(PATH, headers={"Authorization": f"Bearer {KEY}"}) as ws:
            ws.send_text(json.dumps({"type": "start", "encoding": "MULAW", "sampleRateHz": 8000}))
            assert json.loads(ws.receive_text())["type"] == "error"


def test_gather_names_our_vendor_with_the_node_s_hints(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(jambonz_stt_vendor="custom:huashu")
    with client_for(settings) as client:
        webhook = {"call_sid": "jb-stt", "direction": "outbound", "from": "4008208820", "to": "13812345678",
                   "call_status": "in-progress", "customerData": {"customer_id": "cust-stt", "track": TRACK}}
        verbs = client.post("/jambonz/calls", json=webhook).json()
        recognizer = verbs[-1]["recognizer"]
        assert recognizer["vendor"] == "custom:huashu" and recognizer["language"] == "zh-CN"
        assert "短信" in recognizer["hints"] and len(recognizer["hints"]) >= 5
