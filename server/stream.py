"""`WS /v1/calls/{call_id}/stream`: the call's inbound audio streamed in, ASR and replies out.

The gateway (FreeSWITCH mod_audio_fork, jambonz `listen`) opens the socket (handshake signed like
any /v1/calls request, over an empty body) with `?encoding=pcm16|ulaw|alaw&rate=8000` and sends:
- binary frames: raw audio of any length;
- text frames (JSON control): {"type": "playback_done" | "silence" | "hangup"} or
  {"type": "dtmf", "digits": "1"} — the other events of the contract.
It receives JSON text frames:
- {"type": "speech_start" | "barge_in" | "partial" | "final" | "line_signal", "time_s", ...} from
  the ASR (asr.streaming.StreamingSession); `barge_in` means "stop the clip now"; `line_signal`
  (ring-back or 彩铃 music in the first seconds) ends the call as unreachable/no_answer;
- {"type": "reply", "seq", "actions": [...], "ended": bool} — the answer to a final transcript
  or a control event (the same bodies as POST …/events, under the same per-call rules);
- {"type": "error", "detail"} before the server closes on bad input.
Events get the next seq of the call; the socket closes (1000) after a reply that ends the call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from core.conversation import CustomerEvent, EventKind, SessionState
from server.context import ServerContext
from server.recognizer import hints_for, recognizer
from store.phones import mask_id

log = logging.getLogger("huashu.server.stream")
_CONTROL = {"playback_done", "silence", "hangup", "dtmf"}


class _Leg:
    """One streaming connection: its ASR session and the call's next seq."""

    def __init__(self, c: ServerContext, ws: WebSocket, call_id: str, session: Any) -> None:
        self.c, self.ws, self.call_id, self.session = c, ws, call_id, session
        self.barged = False

    async def send(self, data: dict[str, Any]) -> None:
        await self.ws.send_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")))

    async def turn(self, event: CustomerEvent) -> bool:
        """Send one event through the calls service; reply; False once the call has ended."""
        rec = await self.c.sessions.load(self.call_id)
        seq = (rec.last_seq + 1) if rec is not None else 1
        t0 = time.monotonic()
        body = json.loads(await self.c.calls.event(self.call_id, seq, event, t0=t0))
        self.c.metrics.latency.labels("stream").observe(time.monotonic() - t0)
        await self.send({"type": "reply", "seq": seq, **body})
        plays = [a for a in body["actions"] if a["type"] == "play"]
        # Barge-in is reported only while a clip that allows it is (about to be) playing.
        self.session.set_barge_in(bool(plays) and all(a.get("barge_in", True) for a in plays))
        rec = await self.c.sessions.load(self.call_id)
        if rec is not None:
            self.session.set_hints(hints_for(self.c, SessionState.from_dict(rec.state)))
        return not body["ended"]

    async def on_audio(self, frame: bytes) -> bool:
        loop = asyncio.get_running_loop()
        events = await loop.run_in_executor(self.c.executor, self.session.feed, frame)
        return await self.on_asr(events)

    async def on_asr(self, events: list[Any]) -> bool:
        for ev in events:
            await self.send(ev.to_json())
            if ev.type == "barge_in":
                self.barged = True
            elif ev.type == "line_signal":  # ring-back / music where the customer should be
                if not await self.turn(CustomerEvent(EventKind.UNREACHABLE, reason=ev.text)):
                    return False
            elif ev.type == "final":
                barged, self.barged = self.barged, False
                if not ev.text.strip():
                    continue  # noise: the ASR heard no words; the gateway's listen timeout handles silence
                event = CustomerEvent(EventKind.SPEECH, text=ev.text, confidence=ev.confidence, barged_in=barged)
                if not await self.turn(event):
                    return False
        return True

    async def on_control(self, text: str) -> bool:
        try:
            msg = json.loads(text)
        except json.JSONDecodeError as exc:
            await self.send({"type": "error", "detail": f"control frame is not JSON: {exc.msg}"})
            return True
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind not in _CONTROL:
            await self.send({"type": "error", "detail": f"unknown control type {kind!r}; use {sorted(_CONTROL)}"})
            return True
        digits = msg.get("digits")
        if kind == "dtmf" and not (isinstance(digits, str) and digits[:32].strip()):
            await self.send({"type": "error", "detail": "dtmf needs digits"})
            return True
        if kind == "playback_done":
            self.session.set_barge_in(False)
        return await self.turn(CustomerEvent(EventKind(kind), digits=digits[:32] if kind == "dtmf" else None))


def register(app: FastAPI) -> None:
    @app.websocket("/v1/calls/{call_id}/stream")
    async def stream(websocket: WebSocket, call_id: str) -> None:
        from asr.errors import AsrError
        from asr.streaming import StreamingSession

        c: ServerContext = websocket.app.state.huashu
        encoding = websocket.query_params.get("encoding", "pcm16")
        rate_text = websocket.query_params.get("rate", "8000")
        await websocket.accept()
        rec = await c.sessions.load(call_id)
        if rec is None or rec.ended:
            await websocket.send_text(json.dumps({"type": "reply", "seq": 0, "actions": [{"type": "hangup"}],
                                                  "ended": True}))
            await websocket.close(code=1000)
            return
        try:
            rate = int(rate_text)
            state = SessionState.from_dict(rec.state)
            session = StreamingSession(await recognizer(c), input_rate=rate, encoding=encoding,
                                       hints=hints_for(c, state), screen_s=6.0 if state.user_turns == 0 else 0.0)
        except (ValueError, AsrError) as exc:
            await websocket.send_text(json.dumps({"type": "error", "detail": str(exc)}, ensure_ascii=False))
            await websocket.close(code=1003)
            return
        leg = _Leg(c, websocket, call_id, session)
        log.info("stream opened: call %s (%s @ %d Hz)", mask_id(call_id), encoding, rate)
        try:
            going = True
            while going:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("bytes") is not None:
                    going = await leg.on_audio(message["bytes"])
                elif message.get("text") is not None:
                    going = await leg.on_control(message["text"])
            if not going:
                await websocket.close(code=1000)
        except WebSocketDisconnect:
            pass
        log.info("stream closed: call %s", mask_id(call_id))
