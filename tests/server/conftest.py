"""Server fixtures: apps on in-process or Redis sessions, a frozen clock, signing helpers.

Redis is the local server (127.0.0.1:6379, HUASHU_TEST_REDIS_URL to change); every test uses its
own key prefix and removes its keys. Unreachable → Redis tests skip (fail with
HUASHU_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from core.parse import ClassifyContext, Parse
from core.settings import Settings
from core.shared_kv import SessionsUnavailable
from dialogue.assembly import Runtime
from huashu.app import create_app
from huashu.runtime import build_runtime
from server.context import ServerContext
from server.redis_sessions import RedisSessions
from server.security import sign
from tests.conftest import skip_or_fail
from tests.dialogue.keywords import KeywordClassifier

REDIS_URL = os.environ.get("HUASHU_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 6, 2, 10, 0, tzinfo=TZ)  # inside the calling window
TRACK = "wecom_add_gift"


def _with_redis(url: str, prefix: str, fn: Callable[[RedisSessions], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        sessions = RedisSessions(url, prefix=prefix, ttl_s=60, lock_ttl_ms=1000)
        try:
            return await fn(sessions)
        finally:
            await sessions.close()
    return asyncio.run(run())


def redis_problem(url: str = REDIS_URL) -> str | None:
    try:
        _with_redis(url, "", lambda s: s.ping())
        return None
    except SessionsUnavailable as exc:
        return str(exc)


def clear_prefix(url: str, prefix: str) -> None:
    _with_redis(url, prefix, lambda s: s.delete_prefix())


@pytest.fixture(scope="session")
def redis_url() -> str:
    problem = redis_problem()
    if problem:
        skip_or_fail(problem)
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"huashu-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    clear_prefix(redis_url, prefix)


class SlowClassifier(KeywordClassifier):
    """The keyword stand-in, `delay_s` slower, counting its calls (for budget/duplicate tests)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls = 0
        self._lock = threading.Lock()

    def classify(self, text: str, context: ClassifyContext | None = None) -> Parse:
        with self._lock:
            self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        return super().classify(text, context)


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_settings(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Callable[..., Settings]:
    """Settings on a temp SQLite store; on the `redis` backend with a unique key prefix."""
    extra: dict[str, Any] = {}
    if backend == "redis":
        extra["redis_url"] = request.getfixturevalue("redis_url")
        extra["redis_prefix"] = request.getfixturevalue("redis_prefix")

    def make(**overrides: Any) -> Settings:
        return Settings(**{"data_dir": tmp_path / "data", "cache_dir": tmp_path / "cache", **extra, **overrides})
    return make


def make_runtime(settings: Settings, classifier: Any = None) -> Runtime:
    return build_runtime(settings, classifier=classifier or KeywordClassifier())


@contextmanager
def client_for(settings: Settings, *, classifier: Any = None, clock: Callable[[], datetime] | None = None,
               runtime: Runtime | None = None) -> Iterator[TestClient]:
    rt = runtime or make_runtime(settings, classifier)
    app = create_app(settings, runtime=rt, clock=clock or (lambda: NOW))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    if runtime is None and rt.store is not None:
        close = getattr(rt.store, "close", None)
        if close is not None:
            close()


def context(client: TestClient) -> ServerContext:
    return client.app.state.huashu  # type: ignore[attr-defined]


def record(client: TestClient, call_id: str) -> Any:
    """The stored CallRecord (read through the app's own event loop)."""
    sessions = context(client).sessions
    return client.portal.call(sessions.load, call_id)  # type: ignore[union-attr]


def signed(secret: str, body: bytes, t: int | None = None) -> dict[str, str]:
    return {"X-Huashu-Signature": sign(secret, body, t), "Content-Type": "application/json"}
