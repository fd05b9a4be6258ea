"""Gateway call routes: start, events, audio upload and the streaming WebSocket."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import FastAPI, Query, Request
from starlette.responses import Response

from core.conversation import CustomerEvent, EventKind, SessionState
from server import fastpath
from server import models as m
from server.context import ServerContext, ctx
from server.errors import Unprocessable
from server.recognizer import hints_for, recognizer


def _json(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/json")


def register(app: FastAPI) -> None:
    @app.post("/v1/calls", tags=["calls"], response_model=m.StartCallOut, openapi_extra=m.body_doc(m.StartCallIn),
              responses={409: {"model": m.Refused | m.Error, "description": "Refused by the compliance gate "
                                                                            "(or call_id reused)"},
                         **m.error_docs(400, 401, 413, 422, 503)})
    async def start_call(request: Request) -> Response:
        t0 = time.monotonic()
        c = ctx(request)
        await c.ensure_current()
        try:
            return _json(await fastpath.start_call(c, await request.body()))
        finally:
            c.metrics.latency.labels("start").observe(time.monotonic() - t0)

    @app.post("/v1/calls/{call_id}/events", tags=["calls"], response_model=m.EventOut,
              openapi_extra=m.body_doc(m.EventIn), responses=m.error_docs(400, 401, 413, 422, 503))
    async def call_event(call_id: str, request: Request) -> Response:
        t0 = time.monotonic()
        c = ctx(request)
        await c.ensure_current()
        try:
            return _json(await fastpath.call_event(c, call_id, await request.body(), t0))
        finally:
            c.metrics.latency.labels("event").observe(time.monotonic() - t0)

    @app.post("/v1/calls/{call_id}/audio", tags=["calls"], response_model=m.EventOut,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "audio/wav": {"schema": {"type": "string", "format": "binary"}},
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
              responses=m.error_docs(400, 401, 413, 422, 503))
    async def call_audio(
        call_id: str, request: Request,
        seq: Annotated[int | None, Query(ge=0, le=2**53, description="event sequence number (idempotency)")] = None,
        rate: Annotated[int | None, Query(ge=1000, le=192000, description="sample rate of raw audio")] = None,
        encoding: Annotated[str | None, Query(max_length=16, description="raw audio: pcm16 | ulaw | alaw")] = None,
    ) -> Response:
        """A recorded customer turn (WAV or declared raw audio) → ASR → the same as a speech event."""
        t0 = time.monotonic()
        c = ctx(request)
        await c.ensure_current()
        raw = await request.body()
        try:
            return _json(await audio_turn(c, call_id, raw, seq=seq, rate=rate, encoding=encoding, t0=t0))
        finally:
            c.metrics.latency.labels("audio").observe(time.monotonic() - t0)

    from server.stream import register as register_stream

    register_stream(app)


async def audio_turn(c: ServerContext, call_id: str, raw: bytes, *, seq: int | None, rate: int | None,
                     encoding: str | None, t0: float) -> bytes:
    """Decode now (bad audio → 422 at once), recognise inside the turn (counts against the budget)."""
    from asr.audio import decode

    fastpath.check_call_id(call_id)
    if not raw:
        raise Unprocessable("audio: empty body (send a WAV file)")
    if seq is None:  # no sequence number: this upload is the call's next event
        rec = await c.sessions.load(call_id)
        seq = (rec.last_seq + 1) if rec is not None else 1
    rec_ = await recognizer(c)
    loop = asyncio.get_running_loop()
    audio = await loop.run_in_executor(
        c.executor, lambda: decode(raw, declared_rate=rate, declared_encoding=encoding,
                                   target_rate=rec_.sample_rate))
    started = time.perf_counter()

    def prepare(state: SessionState) -> CustomerEvent:
        from asr.carrier import screen_recording

        result = rec_.transcribe(audio.pcm, hints_for(c, state))
        c.metrics.asr_latency.observe(time.perf_counter() - started)
        line = screen_recording(audio.pcm, result.text, state.user_turns == 0)
        if line is not None:  # ring-back / music where the customer should be
            return CustomerEvent(EventKind.UNREACHABLE, reason=line)
        return CustomerEvent(EventKind.SPEECH, text=result.text, confidence=result.confidence)

    return await c.calls.event(call_id, seq, CustomerEvent(EventKind.SPEECH), prepare=prepare, t0=t0)
