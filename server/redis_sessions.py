"""Sessions in Redis: records, locks and the idempotency cache with TTLs, so that any worker can
serve any callback and a killed worker loses nothing. (The WeCom side's shared state, `RedisRecent`
and `RedisOnce`, is core.shared_kv: both edges use it.)

Keys (under the configured prefix): `call:<id>` hash {v: version, r: record JSON}; `resp:<id>` hash
{key: response bytes}; `lock:<id>` token with a lease; `active` sorted set (call id → expiry, for
the calls-active gauge); `gen` the scripts generation. A commit is one Lua script: compare the
version, write record + responses + TTLs, all or nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.shared_kv import SessionsUnavailable
from server.sessions import QUEUED, Begin, CallRecord

T = TypeVar("T")

_COMMIT = """
if ARGV[8] ~= '' and redis.call('GET', KEYS[4]) == ARGV[8] then redis.call('DEL', KEYS[4]) end
local cur = redis.call('HGET', KEYS[1], 'v') or '0'
if cur ~= ARGV[1] then return 0 end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'v', ARGV[7], 'r', ARGV[2])
  if ARGV[4] == '1' then redis.call('ZREM', KEYS[3], ARGV[5])
  else redis.call('ZADD', KEYS[3], ARGV[6], ARGV[5]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if #ARGV > 8 then
  for i = 9, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return 1
"""

# The cached answer; else the record (none: unknown call, no lock taken) with the lock if it is free.
_BEGIN = """
local body = redis.call('HGET', KEYS[1], ARGV[1])
if body then return {0, body} end
local rec = redis.call('HGET', KEYS[2], 'r')
if not rec then return {1, false} end
if redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[3]) then return {2, rec} end
return {3, rec}
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisSessions:
    """`SessionStore` on Redis (see module docstring)."""

    kind = "redis"

    def __init__(self, url: str, *, prefix: str, ttl_s: int, lock_ttl_ms: int,
                 max_connections: int = 512) -> None:
        self.prefix = prefix
        self.ttl_ms = int(ttl_s * 1000)
        self.lock_ttl_ms = int(lock_ttl_ms)
        try:
            pool = aioredis.BlockingConnectionPool.from_url(
                url, max_connections=max_connections, timeout=5, socket_timeout=2,
                socket_connect_timeout=2, retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), 3),
                retry_on_error=[RedisConnectionError, RedisTimeoutError])
        except ValueError as exc:
            raise ValueError(f"HUASHU_REDIS_URL is not a valid Redis URL: {exc}") from None
        self.r = aioredis.Redis(connection_pool=pool)
        self._commit = self.r.register_script(_COMMIT)
        self._unlock = self.r.register_script(_UNLOCK)
        self._begin = self.r.register_script(_BEGIN)
        self.url = url
        self._nonce, self._taken = secrets.token_hex(6), 0

    def _k(self, kind: str, call_id: str = "") -> str:
        return f"{self.prefix}{kind}:{call_id}" if call_id else f"{self.prefix}{kind}"

    async def _do(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except RedisError as exc:
            raise SessionsUnavailable(f"Redis at HUASHU_REDIS_URL failed during {what}: {exc}") from exc

    async def load(self, call_id: str) -> CallRecord | None:
        raw = await self._do("load", lambda: self.r.hget(self._k("call", call_id), "r"))
        return None if raw is None else CallRecord.loads(raw)

    async def response(self, call_id: str, key: str) -> bytes | None:
        raw = await self._do("response", lambda: self.r.hget(self._k("resp", call_id), key))
        if raw is None:
            return None
        return raw.encode() if isinstance(raw, str) else bytes(raw)

    def _token(self) -> str:
        # unique per lock taking (ownership, not a secret): no system call per callback
        self._taken += 1
        return f"{self._nonce}:{self._taken}"

    async def begin(self, call_id: str, key: str, wait_s: float) -> Begin:
        token = self._token()
        keys = [self._k("resp", call_id), self._k("call", call_id), self._k("lock", call_id)]
        args: list[str | int] = [key, token, self.lock_ttl_ms]
        deadline = time.monotonic() + max(wait_s, 0.0)
        pause = 0.002
        while True:
            status, raw = await self._do("begin", lambda: self._begin(keys=keys, args=args))
            if status == 0:
                return Begin(cached=bytes(raw))
            if status == 1:
                return Begin()
            if status == 2:
                return Begin(record=CallRecord.loads(raw), token=token)
            if time.monotonic() + pause > deadline:
                return Begin(record=CallRecord.loads(raw))
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.025)

    async def commit(self, call_id: str, record: CallRecord | None, responses: Mapping[str, bytes],
                     expect_version: int, unlock: str | None = None) -> bool:
        args: list[str | bytes | int] = [
            str(expect_version), record.dumps() if record is not None else "", self.ttl_ms,
            "1" if record is not None and record.state.get("ended") else "0", call_id,
            int(time.time() * 1000) + self.ttl_ms, str(record.version if record is not None else 0),
            unlock or ""]
        for key, body in responses.items():
            args += [key, body]
        keys = [self._k("call", call_id), self._k("resp", call_id), self._k("active"), self._k("lock", call_id)]
        done = await self._do("commit", lambda: self._commit(keys=keys, args=args))
        return bool(done)

    async def lock(self, call_id: str, wait_s: float) -> str | None:
        token = self._token()
        key = self._k("lock", call_id)
        deadline = time.monotonic() + max(wait_s, 0.0)
        pause = 0.002
        while True:
            got = await self._do("lock", lambda: self.r.set(key, token, nx=True, px=self.lock_ttl_ms))
            if got:
                return token
            if time.monotonic() + pause > deadline:
                return None
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.025)

    async def queue(self, call_id: str, seq: int, event: bytes) -> None:
        key = self._k("resp", call_id)

        async def run() -> None:
            async with self.r.pipeline(transaction=True) as pipe:
                pipe.hset(key, f"{QUEUED}{seq}", event)
                pipe.pexpire(key, self.ttl_ms)
                await pipe.execute()
        await self._do("queue", run)

    async def queued(self, call_id: str) -> dict[int, bytes]:
        found = await self._do("queued", lambda: self.r.hgetall(self._k("resp", call_id)))
        out: dict[int, bytes] = {}
        for k, v in found.items():
            name = k.decode() if isinstance(k, bytes) else str(k)
            if name.startswith(QUEUED):
                out[int(name[len(QUEUED):])] = v if isinstance(v, bytes) else str(v).encode()
        return out

    async def unlock(self, call_id: str, token: str) -> None:
        await self._do("unlock", lambda: self._unlock(keys=[self._k("lock", call_id)], args=[token]))

    async def active_calls(self) -> int:
        key = self._k("active")

        async def run() -> int:
            await self.r.zremrangebyscore(key, "-inf", int(time.time() * 1000))
            return int(await self.r.zcard(key))
        return await self._do("active_calls", run)

    async def generation(self) -> int:
        raw = await self._do("generation", lambda: self.r.get(self._k("gen")))
        return int(raw or 0)

    async def bump_generation(self) -> int:
        return int(await self._do("bump_generation", lambda: self.r.incr(self._k("gen"))))

    async def ping(self) -> None:
        await self._do("ping", lambda: self.r.ping())

    async def close(self) -> None:
        with contextlib.suppress(RedisError):
            await self.r.aclose()

    async def delete_prefix(self) -> int:
        """Remove every key under this prefix (tests clean up with it)."""
        n = 0
        async for key in self.r.scan_iter(match=self.prefix + "*", count=500):
            n += int(await self.r.delete(key))
        return n
