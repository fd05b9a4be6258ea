"""WebSocket streaming of call audio (placeholder until asr.streaming exists)."""

from __future__ import annotations

from fastapi import FastAPI, WebSocket


def register(app: FastAPI) -> None:
    @app.websocket("/v1/calls/{call_id}/stream")
    async def stream(websocket: WebSocket, call_id: str) -> None:
        await websocket.close(code=1011, reason="streaming ASR not available")
