"""The per-process server context every route shares (`ServerContext`, reached with `ctx`), and
how its session store is opened. Routes import this module, never server.app (which imports them).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from core.settings import Settings
from core.shared_kv import SessionsUnavailable
from dialogue.assembly import Runtime, load_scripts
from dialogue.engine import DialogueEngine
from server.calls import CallService
from server.metrics import Metrics
from server.sessions import MemorySessions, SessionStore

GENERATION_CHECK_S = 1.0


@dataclass
class ServerContext:
    """Everything a request needs, built once per process by the lifespan."""

    settings: Settings
    runtime: Runtime
    sessions: SessionStore
    calls: CallService
    metrics: Metrics
    executor: ThreadPoolExecutor
    engine: DialogueEngine  # the runtime's engine, built with the server's batching classifier
    generation: int = 0
    checked_at: float = 0.0
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    extras: dict[str, Any] = field(default_factory=dict)  # lazily loaded: ASR recognizer, clip cache

    async def reload_tracks(self) -> list[str]:
        """Load and validate the scripts again and swap them in (raises ScriptError: nothing changes)."""
        async with self.reload_lock:
            bundle = await asyncio.get_running_loop().run_in_executor(
                self.executor, load_scripts, self.settings, self.runtime.actions)
            self.runtime.bundle = bundle
            self.runtime.engine.bundle = bundle
            self.engine.bundle = bundle
            self.extras.pop("clips", None)
            return sorted(bundle.tracks)

    async def ensure_current(self) -> None:
        """Another worker reloaded the tracks: follow (checked at most once a second)."""
        now = time.monotonic()
        if now - self.checked_at < GENERATION_CHECK_S:
            return
        self.checked_at = now
        try:
            generation = await self.sessions.generation()
        except SessionsUnavailable:  # Redis away: serve on (an opt-out must reach its do-not-contact write)
            return
        if generation > self.generation:
            await self.reload_tracks()
            self.generation = generation


def ctx(request: Request) -> ServerContext:
    context: ServerContext = request.app.state.huashu
    return context


def open_sessions(settings: Settings) -> SessionStore:
    """Redis when HUASHU_REDIS_URL is set, else in-process."""
    if settings.redis_url:
        from server.redis_sessions import RedisSessions

        return RedisSessions(settings.redis_url, prefix=settings.redis_prefix,
                             ttl_s=settings.session_ttl_s, lock_ttl_ms=settings.lock_ttl_ms,
                             heartbeat_ms=settings.worker_heartbeat_ms)
    return MemorySessions(settings.session_ttl_s)
