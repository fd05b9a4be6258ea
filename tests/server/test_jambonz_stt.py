"""Our recogniser as a jambonz custom speech vendor: a client speaking jambonz's STT protocol
frame by frame (Bearer key, `start`, binary LINEAR16, `stop`) with real audio; and the adapter's
gather naming that vendor with the node's hints."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from starlette.websockets import WebSocketDisconnect

from asr.audio import decode
from core.settings import Settings
from server.jambonz import to_verbs
from server.jambonz_stt import PATH, start_hints
from tests.conftest import ROOT
from tests.server.conftest import TRACK, client_for

KEY = "stt-key-for-tests"
CALL = ROOT / "tests" / "data" / "calls" / "audio" / "c09" / "01.wav"  # 「短信我没收到啊」


def _linear16_8k(path: Path) -> bytes:
    return decode(path.read_bytes(), target_rate=8000).pcm


def test_start_hints_and_gather_recognizer() -> None:
    assert start_hints({"type": "start", "hints": ["短信", {"phrase": "尾款"}, 3]}) == ["短信", "尾款"]
    assert start_hints({"type": "start", "options": {"hints": ["定金"]}}) == ["定金"]
    verbs = to_verbs([{"type": "listen", "timeout_ms": 5000}], "s", 2,
                     {"vendor": "custom:huashu", "language": "zh-CN", "hints": ["短信"]})
    assert verbs[-1]["recognizer"] == {"vendor": "custom:huashu", "language": "zh-CN", "hints": ["短信"]}


@pytest.mark.slow
def test_a_jambonz_client_gets_a_final_transcription_of_real_audio(make_settings: Callable[..., Settings]) -> None:
    pcm = _linear16_8k(CALL)
    with client_for(make_settings(jambonz_stt_key=KEY)) as client, \
            client.websocket_connect(PATH, headers={"Authorization": f"Bearer {KEY}"}) as ws:
        ws.send_text(json.dumps({"type": "start", "language": "zh-CN", "format": "raw", "encoding": "LINEAR16",
                                 "sampleRateHz": 8000, "interimResults": False, "hints": ["短信", "没收到"]}))
        for i in range(0, len(pcm), 320):  # 20 ms frames, as jambonz sends them
            ws.send_bytes(pcm[i:i + 320])
        ws.send_bytes(np.zeros(8000, "<i2").tobytes())  # a second of line silence after the reply
        ws.send_text(json.dumps({"type": "stop"}))
        got = [json.loads(ws.receive_text())]
        with pytest.raises(WebSocketDisconnect):  # the vendor closes after stop
            ws.receive_text()
    assert got[0]["type"] == "transcription" and got[0]["is_final"] is True
    assert "短信" in got[0]["alternatives"][0]["transcript"]
    assert 0 < got[0]["alternatives"][0]["confidence"] <= 1


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
