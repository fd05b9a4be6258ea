"""Clip files for the gateway's player, and recorded customer turns through the audio endpoint."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from tests.conftest import ROOT
from tests.server.conftest import TRACK, client_for, context, record

AUDIO = ROOT / "tests" / "data" / "audio"


def _fmt(wav: bytes) -> tuple[int, int, int]:
    """(format tag, sample rate, bits) of a WAV file."""
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    pos = 12
    while pos < len(wav):
        cid, size = wav[pos:pos + 4], struct.unpack_from("<I", wav, pos + 4)[0]
        if cid == b"fmt ":
            tag, _ch, rate, _br, _ba, bits = struct.unpack_from("<HHIIHH", wav, pos + 8)
            return tag, rate, bits
        pos += 8 + size + (size & 1)
    raise AssertionError("no fmt chunk")


@pytest.mark.parametrize("backend", ["memory"])
def test_clip_urls_of_a_call_serve_telephone_audio(make_settings: Callable[..., Settings], backend: str) -> None:
    settings = make_settings()
    with client_for(settings) as client:
        start = client.post("/v1/calls", json={"call_id": "c", "customer_id": "u", "track": TRACK}).json()
        urls = [a["url"].removeprefix(settings.public_base_url) for a in start["actions"] if a["type"] == "play"]
        assert any("?" in u for u in urls), "a clip with variables carries them in its URL"
        for url in urls:
            sep = "&" if "?" in url else "?"
            ulaw = client.get(f"{url}{sep}rate=8000&encoding=ulaw")
            assert ulaw.status_code == 200 and ulaw.headers["content-type"] == "audio/wav"
            assert _fmt(ulaw.content) == (7, 8000, 8)
            pcm = client.get(f"{url}{sep}encoding=pcm&rate=16000")
            assert _fmt(pcm.content) == (1, 16000, 16)
            assert client.get(f"{url}{sep}rate=8000&encoding=ulaw").content == ulaw.content
        cached = list((Path(settings.cache_dir) / "clips").glob("*.wav"))
        assert len(cached) == 2 * len(urls)
        other_gift = client.get("/v1/clips/xiaomei/wag_opening.wav?gift=" + "护肤小样礼包")
        assert other_gift.status_code in (200, 404)  # a value nobody recorded is named, never a 500
        assert client.get("/v1/clips/xiaomei/no_such_clip.wav").status_code == 404
        assert client.get("/v1/clips/nobody/disclosure.wav").status_code == 404
        assert client.get("/v1/clips/xiaomei/disclosure.wav?encoding=gsm").status_code == 422
        assert client.get("/v1/clips/xiaomei/disclosure.wav?rate=4000").status_code == 422


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["memory"])
def test_audio_upload_is_a_speech_event(make_settings: Callable[..., Settings], backend: str) -> None:
    """Real ASR (the configured recognizer) on committed telephone recordings. The budget is
    lifted: this is about recognition, not the deadline (a cold model may miss 1.5 s)."""
    with client_for(make_settings(callback_budget_ms=60_000)) as client:
        client.post("/v1/calls", json={"call_id": "c", "customer_id": "u", "track": TRACK})
        said = client.post("/v1/calls/c/audio?seq=1", content=(AUDIO / "tel" / "zh13.wav").read_bytes(),
                           headers={"Content-Type": "audio/wav"})
        assert said.status_code == 200, said.text
        turn = record(client, "c").state["turns"][-1]
        assert turn["user"] and turn["kind"] == "speech"  # wiring, not ASR accuracy (see bench/asr.py)
        again = client.post("/v1/calls/c/audio?seq=1", content=(AUDIO / "noise" / sorted(
            p.name for p in (AUDIO / "noise").glob("*.wav"))[0]).read_bytes())
        assert again.content == said.content  # replay: no second recognition, same bytes
        noise = sorted((AUDIO / "noise").glob("*.wav"))[0].read_bytes()
        quiet = client.post("/v1/calls/c/audio", content=noise)  # no seq: the next one
        assert quiet.status_code == 200
        last = record(client, "c")
        assert last.last_seq == 2 and last.state["turns"][-1]["kind"] == "silence"
        assert client.post("/v1/calls/c/audio?seq=3", content=b"not audio at all").status_code == 422
        assert client.post("/v1/calls/c/audio?seq=3", content=b"").status_code == 422
        assert "huashu_asr_seconds_count" in client.get("/metrics").text
        assert context(client).extras.get("asr") is not None


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["memory"])
def test_streaming_socket_recognises_and_replies(make_settings: Callable[..., Settings], backend: str) -> None:
    """8 kHz PCM frames in → speech_start/final from the real ASR → a reply; control frames too."""
    from asr.audio import decode

    pcm = decode((AUDIO / "tel" / "zh13.wav").read_bytes(), target_rate=8000).pcm
    frames = [pcm[i:i + 320] for i in range(0, len(pcm), 320)] + [b"\0" * 320] * 75  # + 1.5 s of silence
    with client_for(make_settings(callback_budget_ms=60_000)) as client:
        client.post("/v1/calls", json={"call_id": "c", "customer_id": "u", "track": TRACK})
        with client.websocket_connect("/v1/calls/c/stream?encoding=pcm16&rate=8000") as ws:
            for frame in frames:
                ws.send_bytes(frame)
            seen: list[dict[str, Any]] = []
            while not seen or seen[-1]["type"] != "reply":
                seen.append(ws.receive_json())
            kinds = [m["type"] for m in seen]
            assert kinds[0] == "speech_start" and "final" in kinds
            final = next(m for m in seen if m["type"] == "final")
            assert final["text"]
            assert seen[-1]["seq"] == 1 and seen[-1]["actions"]
            ws.send_text('{"type": "nonsense"}')
            assert ws.receive_json()["type"] == "error"
            ws.send_text('{"type": "hangup"}')
            last = ws.receive_json()
            assert last["type"] == "reply" and last["seq"] == 2 and last["ended"] is True
        assert record(client, "c").state["turns"][1]["user"] == final["text"]
        with client.websocket_connect("/v1/calls/c/stream") as ws:  # ended call: told to hang up
            assert ws.receive_json()["actions"] == [{"type": "hangup"}]


@pytest.mark.parametrize("backend", ["memory"])
def test_streaming_socket_is_signed(make_settings: Callable[..., Settings], backend: str) -> None:
    from starlette.websockets import WebSocketDisconnect

    from server.security import sign

    with client_for(make_settings(gateway_secret="s")) as client:
        with pytest.raises(WebSocketDisconnect), client.websocket_connect("/v1/calls/c/stream") as ws:
            ws.receive_json()
        with client.websocket_connect("/v1/calls/c/stream", headers={"X-Huashu-Signature": sign("s", b"")}) as ws:
            assert ws.receive_json()["actions"] == [{"type": "hangup"}]  # unknown call, but let in
