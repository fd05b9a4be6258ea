"""Sessions in Redis: records, locks and the idempotency cache with TTLs, so that any worker can
serve any callback and a killed worker loses nothing. (The WeCom side's shared state, `RedisRecent`
and `RedisOnce`, is core.shared_kv: both edges use it.)

Keys (under the configured prefix): `call:<id>` hash {v: version, r: record JSON}; `resp:<id>` hash
{key: response bytes}; `jrn:<id>` hash {seq: event JSON} (the journal); `lock:<id>` token
`<worker>:<n>` with a lease; `alive:<worker>` this worker's heartbeat (a short TTL, refreshed in
the background and by every lock taking); `active` sorted set (call id → expiry, for the
calls-active gauge); `gen` the scripts generation. A commit is one Lua script: compare the version,
write record + responses + TTLs, all or nothing. Taking a lock is one script too: free → ours;
held by a worker whose heartbeat is gone (killed, frozen, cut off) → ours at once, not after the
lease; else busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
from server.sessions import Begin, CallRecord, JournalEntry

T = TypeVar("T")
log = logging.getLogger("huashu.server.sessions")

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

# Take the lock KEYS[1] for token ARGV[1] (lease ARGV[2] ms): 1 free, 2 taken from a dead owner
# (its `alive:<worker>` key, ARGV[3] .. worker, is gone), 0 busy. KEYS[2] is our own heartbeat,
# refreshed here (TTL ARGV[4] ms) so a lock is never held by a worker that looks dead.
_TAKE = """
local function take(lock, token, lease, alive_prefix)
  if redis.call('SET', lock, token, 'NX', 'PX', lease) then return 1 end
  local owner = redis.call('GET', lock)
  local worker = owner and string.match(owner, '^([^:]+):')
  if worker and redis.call('EXISTS', alive_prefix .. worker) == 0 then
    redis.call('SET', lock, token, 'PX', lease)
    return 2
  end
  return 0
end
"""

_LOCK = _TAKE + """
redis.call('SET', KEYS[2], '1', 'PX', ARGV[4])
return take(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
"""

# The cached answer; else (no record: unknown call, nothing written) journal the event (ARGV[4] =
# seq, ARGV[5] = event; '' = none) and return the record, with the lock and the journal if the
# lock could be taken. Status: 0 cached, 1 unknown, 2 locked, 3 busy, 4 locked from a dead owner.
_BEGIN = _TAKE + """
local body = redis.call('HGET', KEYS[1], ARGV[1])
if body then return {0, body} end
local rec = redis.call('HGET', KEYS[2], 'r')
if not rec then return {1, false} end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[5], ARGV[4], ARGV[5])
  redis.call('PEXPIRE', KEYS[5], ARGV[6])
end
redis.call('SET', KEYS[4], '1', 'PX', ARGV[8])
local got = take(KEYS[3], ARGV[2], ARGV[3], ARGV[7])
if got == 0 then return {3, rec} end
return {got == 1 and 2 or 4, rec, redis.call('HGETALL', KEYS[5])}
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisSessions:
    """`SessionStore` on Redis (see module docstring)."""

    kind = "redis"

    def __init__(self, url: str, *, prefix: str, ttl_s: int, lock_ttl_ms: int, heartbeat_ms: int = 3000,
                 max_connections: int = 512) -> None:
        self.prefix = prefix
        self.ttl_ms = int(ttl_s * 1000)
        self.lock_ttl_ms = int(lock_ttl_ms)
        self.heartbeat_ms = int(heartbeat_ms)
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
        self._lock = self.r.register_script(_LOCK)
        self.url = url
        self._nonce, self._taken = secrets.token_hex(6), 0
        self._alive = self._k("alive", self._nonce)
        self._heartbeat: asyncio.Task[None] | None = None
        # Locks whose release failed (Redis unreachable) while this worker lives on: released by
        # the heartbeat once Redis answers, so a live owner never holds a call for the whole lease.
        self._orphans: set[tuple[str, str]] = set()

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

    async def begin(self, call_id: str, key: str, wait_s: float, journal: JournalEntry | None = None) -> Begin:
        token = self._token()
        keys = [self._k("resp", call_id), self._k("call", call_id), self._k("lock", call_id), self._alive,
                self._k("jrn", call_id)]
        args: list[str | bytes | int] = [key, token, self.lock_ttl_ms, str(journal[0]) if journal else "",
                                         journal[1] if journal else b"", self.ttl_ms, self.prefix + "alive:",
                                         self.heartbeat_ms]
        deadline = time.monotonic() + max(wait_s, 0.0)
        pause = 0.002
        while True:
            found = await self._do("begin", lambda: self._begin(keys=keys, args=args))
            status, raw = found[0], found[1]
            if status == 0:
                return Begin(cached=bytes(raw))
            if status == 1:
                return Begin()
            if status in (2, 4):
                return Begin(record=CallRecord.loads(raw), token=token, journal=_journal(found[2]),
                             took_over=status == 4)
            if time.monotonic() + pause > deadline:
                return Begin(record=CallRecord.loads(raw))
            args[3], args[4] = "", b""  # journaled once is enough
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.025)

    async def journal(self, call_id: str, seq: int, event: bytes) -> None:
        key = self._k("jrn", call_id)

        async def run() -> None:
            async with self.r.pipeline(transaction=True) as pipe:
                pipe.hset(key, str(seq), event)
                pipe.pexpire(key, self.ttl_ms)
                await pipe.execute()
        await self._do("journal", run)

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
        try:
            done = await self._do("commit", lambda: self._commit(keys=keys, args=args))
        except SessionsUnavailable:
            if unlock:
                self._orphans.add((call_id, unlock))
            raise
        return bool(done)

    async def lock(self, call_id: str, wait_s: float) -> str | None:
        token = self._token()
        keys = [self._k("lock", call_id), self._alive]
        args: list[str | int] = [token, self.lock_ttl_ms, self.prefix + "alive:", self.heartbeat_ms]
        deadline = time.monotonic() + max(wait_s, 0.0)
        pause = 0.002
        while True:
            got = await self._do("lock", lambda: self._lock(keys=keys, args=args))
            if got:
                return token
            if time.monotonic() + pause > deadline:
                return None
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.025)

    async def unlock(self, call_id: str, token: str) -> None:
        try:
            await self._release(call_id, token)
        except SessionsUnavailable:
            self._orphans.add((call_id, token))
            raise

    async def start(self) -> None:
        """Announce this worker alive and keep it so (every third of the heartbeat TTL)."""
        if self._heartbeat is None:
            with contextlib.suppress(SessionsUnavailable):
                await self._beat()
            self._heartbeat = asyncio.ensure_future(self._beat_forever())

    async def _beat(self) -> None:
        await self._do("heartbeat", lambda: self.r.set(self._alive, 1, px=self.heartbeat_ms))
        for call_id, token in list(self._orphans):
            await self._release(call_id, token)
            self._orphans.discard((call_id, token))

    async def _release(self, call_id: str, token: str) -> None:
        await self._do("unlock", lambda: self._unlock(keys=[self._k("lock", call_id)], args=[token]))

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_ms / 3000)
            try:
                await self._beat()
            except SessionsUnavailable as exc:  # Redis away: our locks may be taken over meanwhile (safe)
                log.debug("heartbeat failed: %s", exc)

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
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
            with contextlib.suppress(RedisError):
                await self.r.delete(self._alive)  # shut down: our locks are free for others at once
        with contextlib.suppress(RedisError):
            await self.r.aclose()

    async def delete_prefix(self) -> int:
        """Remove every key under this prefix (tests clean up with it)."""
        n = 0
        async for key in self.r.scan_iter(match=self.prefix + "*", count=500):
            n += int(await self.r.delete(key))
        return n


def _journal(flat: list[bytes] | None) -> dict[int, bytes]:
    """HGETALL's flat [field, value, …] reply of the journal → {seq: event}."""
    items = flat or []
    return {int(items[i]): bytes(items[i + 1]) for i in range(0, len(items), 2)}
