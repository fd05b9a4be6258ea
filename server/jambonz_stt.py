"""Our recogniser as a jambonz custom speech vendor: `WS /stt/jambonz`.

jambonz's custom STT protocol (docs.jambonz.org, "Adding custom speech vendors"): jambonz opens a
WebSocket with `Authorization: Bearer <api key>` (the key given to the vendor in its portal) and
sends a JSON `start` control frame ({"type": "start", "language", "format": "raw", "encoding":
"LINEAR16", "sampleRateHz", "interimResults", …}), then binary frames of 16-bit little-endian PCM
at that rate, and finally {"type": "stop"}. We answer with {"type": "transcription", "is_final",
"alternatives": [{"transcript", "confidence"}], "channel", "language"} frames — one final per
utterance (Whisper has no partials; vosk's are sent when interimResults is true) — and
{"type": "error", "error"} on bad input. After `stop` we send the final of an utterance still
open and close the socket, as the protocol asks of the vendor.

Hints: what jambonz forwards. For a `custom:` vendor jambonz-feature-server
(lib/utils/transcription-utils.js, `vendor.startsWith('custom:')`) builds `options` from the
gather's `recognizer.customOptions.options` plus `hints` (the `recognizer.hints` array as is when
its items are strings, a JSON string of it when they are `{phrase, boost}` objects), `hintsBoost`
and `callSid` (jambonz >= 0.9.2); mod_jambonz_transcribe (jb_transcribe_glue.cpp,
sendStartMessage) puts that object in the start frame as `options` (an empty object when there is
none). So: the phrases of `options.hints` (a bare top-level `hints` list is accepted from other
clients); without any, the compiled hints of the node that `options.callSid` (or `call_sid` /
`?call_sid=`) waits at. `hintsBoost` is ignored: Whisper's prompt has no weights.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from core.conversation import SessionState
from server import security
from server.context import ServerContext
from server.recognizer import hints_for, recognizer
from store.phones import mask_id

log = logging.getLogger("huashu.server.jambonz_stt")
PATH = "/stt/jambonz"
_MAX_HINTS = 100


def transcription(text: str, confidence: float, *, final: bool, language: str) -> dict[str, Any]:
    return {"type": "transcription", "is_final": final, "channel": 1, "language": language,
            "alternatives": [{"transcript": text, "confidence": round(confidence, 4)}]}


def _phrases(raw: Any) -> list[str] | None:
    """A hints value as jambonz forwards it: a list of strings or {phrase} objects, or that list
    as a JSON string (what jambonz sends for object hints); None when it is not one."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    if not isinstance(raw, list):
        return None
    phrases = [h.get("phrase") if isinstance(h, dict) else h for h in raw]
    return [p.strip() for p in phrases if isinstance(p, str) and 0 < len(p.strip()) <= 40][:_MAX_HINTS]


def start_hints(msg: dict[str, Any]) -> list[str]:
    """Hint phrases a start frame carries: `options.hints` (jambonz), else a top-level `hints`."""
    options = msg.get("options")
    for holder in (options, msg):
        if isinstance(holder, dict) and "hints" in holder:
            phrases = _phrases(holder["hints"])
            if phrases:
                return phrases
    return []


def start_call_sid(msg: dict[str, Any], query: Any) -> str:
    """The call a start frame belongs to: `options.callSid` (jambonz >= 0.9.2), else a top-level
    `call_sid` / `callSid` or `?call_sid=` on the socket URL; "" when none."""
    options = msg.get("options")
    for value in ((options or {}).get("callSid") if isinstance(options, dict) else None,
                  msg.get("call_sid"), msg.get("callSid"), query.get("call_sid")):
        if isinstance(value, str) and value and len(value) <= 128:
            return value
    return ""


def authorised(c: ServerContext, ws: WebSocket) -> bool:
    key = c.settings.jambonz_stt_key
    if not key:
        return bool(c.settings.insecure_dev)
    return security.bearer_ok(ws.headers.get("authorization"), [key])


async def _call_hints(c: ServerContext, call_sid: str) -> Any:
    rec = await c.sessions.load(call_sid)
    return None if rec is None else hints_for(c, SessionState.from_dict(rec.state))


class _Recognition:
    """One jambonz STT connection: a StreamingSession fed the call leg's LINEAR16 frames."""

    def __init__(self, c: ServerContext, ws: WebSocket) -> None:
        self.c, self.ws = c, ws
        self.session: Any = None
        self.language = "zh-CN"
        self.interim = False
        self.call_sid = ""
        self.hints: Any = None  # the AsrHints this connection recognises with (after start)

    async def send(self, data: dict[str, Any]) -> None:
        await self.ws.send_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")))

    async def start(self, msg: dict[str, Any]) -> None:
        from asr.streaming import StreamingSession
        from asr.types import AsrHints

        if msg.get("encoding", "LINEAR16") != "LINEAR16":
            raise ValueError(f"encoding {msg.get('encoding')!r}: only LINEAR16 is supported")
        rate = int(msg.get("sampleRateHz", 8000))
        if rate not in (8000, 16000, 24000, 48000):
            raise ValueError(f"sampleRateHz {rate}: use 8000, 16000, 24000 or 48000")
        self.language = str(msg.get("language") or "zh-CN")[:16]
        self.interim = bool(msg.get("interimResults"))
        hints = AsrHints(tuple(start_hints(msg)))
        self.call_sid = start_call_sid(msg, self.ws.query_params)
        if not hints.phrases and self.call_sid:  # jambonz sent no hints: the node the call waits at
            hints = await _call_hints(self.c, self.call_sid) or hints
        self.hints = hints
        self.session = StreamingSession(await recognizer(self.c), input_rate=rate, encoding="pcm16", hints=hints)

    async def results(self, events: list[Any]) -> None:
        for ev in events:
            if ev.type == "final" and ev.text.strip():
                await self.send(transcription(ev.text, ev.confidence, final=True, language=self.language))
            elif ev.type == "partial" and self.interim and ev.text.strip():
                await self.send(transcription(ev.text, ev.confidence, final=False, language=self.language))

    async def audio(self, frame: bytes) -> None:
        if self.session is None:
            raise ValueError("audio before the start control message")
        loop = asyncio.get_running_loop()
        await self.results(await loop.run_in_executor(self.c.executor, self.session.feed, frame))

    async def stop(self) -> None:
        if self.session is not None:
            loop = asyncio.get_running_loop()
            await self.results(await loop.run_in_executor(self.c.executor, self.session.close))
            self.session = None


def register(app: FastAPI) -> None:
    @app.websocket(PATH)
    async def jambonz_stt(websocket: WebSocket) -> None:
        c: ServerContext = websocket.app.state.huashu
        if not authorised(c, websocket):
            c.metrics.auth_failures.labels("websocket").inc()
            await websocket.close(code=1008)
            return
        await websocket.accept()
        rec = _Recognition(c, websocket)
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes") is not None:
                    await rec.audio(message["bytes"])
                    continue
                msg = json.loads(message.get("text") or "{}")
                kind = msg.get("type") if isinstance(msg, dict) else None
                if kind == "start":
                    await rec.start(msg)
                    log.info("jambonz stt started (%s @ %s Hz, %d hints)", rec.language, msg.get("sampleRateHz"),
                             len(rec.hints.phrases))
                elif kind == "stop":
                    await rec.stop()
                    await websocket.close(code=1000)
                    return
                else:
                    raise ValueError(f"unknown control message type {kind!r}")
        except (ValueError, TypeError) as exc:
            await rec.send({"type": "error", "error": str(exc)})
            await websocket.close(code=1003)
        except WebSocketDisconnect:
            pass
        finally:
            log.debug("jambonz stt closed %s", mask_id(rec.call_sid or "-"))
