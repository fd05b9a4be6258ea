"""Small shared state in Redis for code that runs in worker threads: capped recent lists and
seen-once ids, so that N workers agree (the WeCom inbox and processed callbacks use them).

Also the one error every Redis-backed store raises when Redis cannot be reached: callers answer
503 and the sender retries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import redis
from redis.exceptions import RedisError

from core import fastjson

T = TypeVar("T")


class SessionsUnavailable(RuntimeError):
    """The session store cannot be reached (Redis down); callers answer 503 and the gateway retries."""


class _SyncRedis:
    """A blocking client for code that runs in worker threads (the WeCom routes)."""

    def __init__(self, url: str, prefix: str) -> None:
        try:
            self.r = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, max_connections=64)
        except ValueError as exc:
            raise ValueError(f"HUASHU_REDIS_URL is not a valid Redis URL: {exc}") from None
        self.prefix = prefix

    def _do(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except RedisError as exc:
            raise SessionsUnavailable(f"Redis at HUASHU_REDIS_URL failed during {what}: {exc}") from exc


class RedisRecent(_SyncRedis):
    """The newest `size` JSON items per key (a capped list with a TTL), shared by every worker."""

    def __init__(self, url: str, *, prefix: str, size: int, ttl_s: int) -> None:
        super().__init__(url, prefix)
        self.size, self.ttl_s = size, ttl_s

    def append(self, key: str, item: dict[str, object]) -> None:
        name = f"{self.prefix}recent:{key}"

        def run() -> None:
            with self.r.pipeline(transaction=True) as pipe:
                pipe.rpush(name, fastjson.dumps(item))
                pipe.ltrim(name, -self.size, -1)
                pipe.expire(name, self.ttl_s)
                pipe.execute()
        self._do("recent.append", run)

    def items(self, key: str) -> list[dict[str, object]]:
        raw = self._do("recent.items", lambda: self.r.lrange(f"{self.prefix}recent:{key}", 0, -1))
        return [fastjson.loads(x) for x in raw]


class RedisOnce(_SyncRedis):
    """Ids processed at most once across workers within a TTL (SET NX)."""

    def __init__(self, url: str, *, prefix: str, ttl_s: int) -> None:
        super().__init__(url, prefix)
        self.ttl_s = ttl_s

    def first_time(self, key: str, now: float | None = None) -> bool:
        """True the first time `key` is seen within the TTL, by any worker (and records it)."""
        return bool(self._do("once.first_time", lambda: self.r.set(f"{self.prefix}once:{key}", 1, nx=True,
                                                                   ex=self.ttl_s)))

    def forget(self, key: str) -> None:
        """Let a redelivery through again (processing the first delivery failed)."""
        self._do("once.forget", lambda: self.r.delete(f"{self.prefix}once:{key}"))
