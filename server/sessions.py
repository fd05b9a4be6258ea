"""Where live calls are kept between callbacks: one small protocol, two implementations.

`MemorySessions` (default) keeps everything in this process; `server.redis_sessions.RedisSessions`
(when HUASHU_REDIS_URL is set) keeps it in Redis with TTLs so that any worker can serve any
callback. Both store, per call: the record (state + protocol bookkeeping), the idempotency cache
(response bytes by key), the journal (every speech/DTMF event by seq, written on receipt, before the
turn runs) and a lock; a commit writes the record and responses atomically, and only when the record
still has the version the caller read (so a worker whose lock expired cannot move a conversation
back). In Redis a lock whose owner stopped heartbeating is taken over by the next event, so a killed
worker holds a call for seconds, not for the whole lease.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from core import fastjson

# One journaled event: (seq, the event's JSON as written by server.calls).
JournalEntry = tuple[int, bytes]


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One live call: the engine's state plus what the protocol needs to stay idempotent.

    `pending`: a turn that missed the callback budget ({"seq", "event", "at"}); its result is
    `deferred` (the actions still owed to the gateway) once the slow turn has finished.
    """

    state: dict[str, Any]
    version: int = 1
    last_seq: int = 0
    start_digest: str = ""
    pending: dict[str, Any] | None = None
    deferred: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # adapter bookkeeping (jambonz seq…)

    @property
    def ended(self) -> bool:
        """Ended and nothing more owed: every further callback gets a plain hangup."""
        return bool(self.state.get("ended")) and not self.deferred

    def next(self, **changes: Any) -> CallRecord:
        return replace(self, version=self.version + 1, **changes)

    def dumps(self) -> bytes:
        return fastjson.dumps({"state": self.state, "version": self.version, "last_seq": self.last_seq,
                               "start_digest": self.start_digest, "pending": self.pending,
                               "deferred": self.deferred, "extra": self.extra})

    @classmethod
    def loads(cls, raw: bytes | str) -> CallRecord:
        d = fastjson.loads(raw)
        return cls(state=d["state"], version=int(d["version"]), last_seq=int(d["last_seq"]),
                   start_digest=d.get("start_digest", ""), pending=d.get("pending"),
                   deferred=d.get("deferred"), extra=d.get("extra") or {})


@dataclass(frozen=True, slots=True)
class Begin:
    """What `SessionStore.begin` found: the cached answer, or the record (None: unknown call)
    and, when the call's lock was taken for the caller, its token (None: still busy) and the
    call's journal (seq → event). `took_over`: the lock was taken from a dead owner."""

    cached: bytes | None = None
    record: CallRecord | None = None
    token: str | None = None
    journal: dict[int, bytes] = field(default_factory=dict)
    took_over: bool = False


class SessionStore(Protocol):
    """Call records, per-call locks and the idempotency cache (see module docstring)."""

    kind: str

    async def load(self, call_id: str) -> CallRecord | None: ...

    async def response(self, call_id: str, key: str) -> bytes | None: ...

    async def begin(self, call_id: str, key: str, wait_s: float, journal: JournalEntry | None = None) -> Begin:
        """One step for a callback: the cached answer for `key` if there is one; else `journal` is
        written to the call's journal (before any waiting) and the record is returned, with the
        call's lock taken (waiting up to `wait_s`, re-checking the cache meanwhile) and the journal.
        An unknown call is reported without locking or journaling."""
        ...

    async def journal(self, call_id: str, seq: int, event: bytes) -> None:
        """Journal one event ahead of `begin` (an opt-out: journaled before its do-not-contact write)."""
        ...

    async def commit(self, call_id: str, record: CallRecord | None, responses: Mapping[str, bytes],
                     expect_version: int, unlock: str | None = None) -> bool:
        """Write `record` (None: keep the record) and `responses` in one step when the stored
        version is `expect_version` (0: no record yet). False, writing nothing, on a conflict.
        `unlock`: release the lock held with this token in the same step (also on a conflict)."""
        ...

    async def lock(self, call_id: str, wait_s: float) -> str | None:
        """A token when the call's lock was taken within `wait_s`, else None."""
        ...

    async def unlock(self, call_id: str, token: str) -> None: ...

    async def active_calls(self) -> int: ...

    async def generation(self) -> int:
        """Scripts generation: bumped by a track reload so every worker reloads."""
        ...

    async def bump_generation(self) -> int: ...

    async def ping(self) -> None: ...

    async def start(self) -> None:
        """Begin background upkeep (Redis: this worker's heartbeat); called once by the lifespan."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Stored:
    expires: float  # time.monotonic()
    version: int
    ended: bool
    raw: bytes  # CallRecord.dumps()


class MemorySessions:
    """In-process sessions: dicts with expiry and one asyncio lock per call (single worker).

    Records are kept serialised, as Redis keeps them: a thousand live calls' turn histories as
    Python dicts are hundreds of thousands of objects that every full GC pass walks (pauses of
    several hundred ms measured at 1,000 calls); bytes are not tracked by the GC at all. It also
    means no caller can change a stored record by mutating what `load` returned.
    """

    kind = "memory"

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._records: dict[str, _Stored] = {}
        self._responses: dict[str, dict[str, bytes]] = {}
        self._journal: dict[str, dict[int, bytes]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._generation = 0
        self._last_sweep = time.monotonic()

    def _sweep(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep < 10:
            return
        self._last_sweep = now
        for call_id in [k for k, item in self._records.items() if item.expires < now]:
            self._records.pop(call_id, None)
            self._responses.pop(call_id, None)
            self._journal.pop(call_id, None)
        for call_id in [k for k, lock in self._locks.items() if k not in self._records and not lock.locked()]:
            del self._locks[call_id]

    def _live(self, call_id: str) -> _Stored | None:
        item = self._records.get(call_id)
        return item if item is not None and item.expires >= time.monotonic() else None

    async def load(self, call_id: str) -> CallRecord | None:
        item = self._live(call_id)
        return CallRecord.loads(item.raw) if item is not None else None

    async def response(self, call_id: str, key: str) -> bytes | None:
        if self._live(call_id) is None:
            return None
        return self._responses.get(call_id, {}).get(key)

    async def begin(self, call_id: str, key: str, wait_s: float, journal: JournalEntry | None = None) -> Begin:
        cached = await self.response(call_id, key)
        if cached is not None:
            return Begin(cached=cached)
        if self._live(call_id) is None:
            return Begin()
        if journal is not None:
            await self.journal(call_id, *journal)
        token = await self.lock(call_id, wait_s)
        cached = await self.response(call_id, key)  # a concurrent duplicate may have finished
        if cached is not None:
            if token is not None:
                await self.unlock(call_id, token)
            return Begin(cached=cached)
        if token is None:
            return Begin(record=await self.load(call_id))
        return Begin(record=await self.load(call_id), token=token, journal=dict(self._journal.get(call_id, {})))

    async def journal(self, call_id: str, seq: int, event: bytes) -> None:
        if self._live(call_id) is not None:
            self._journal.setdefault(call_id, {})[seq] = event

    async def commit(self, call_id: str, record: CallRecord | None, responses: Mapping[str, bytes],
                     expect_version: int, unlock: str | None = None) -> bool:
        try:
            self._sweep()
            current = self._live(call_id)
            if (current.version if current else 0) != expect_version:
                return False
            if record is not None:
                self._records[call_id] = _Stored(time.monotonic() + self.ttl_s, record.version,
                                                 bool(record.state.get("ended")), record.dumps())
            if responses:
                self._responses.setdefault(call_id, {}).update(responses)
            return True
        finally:
            if unlock is not None:
                await self.unlock(call_id, unlock)

    async def lock(self, call_id: str, wait_s: float) -> str | None:
        lock = self._locks.setdefault(call_id, asyncio.Lock())
        if not lock.locked():  # free: take it even when no time is left to wait
            await lock.acquire()
            return "local"
        try:
            await asyncio.wait_for(lock.acquire(), timeout=max(wait_s, 0.0))
        except TimeoutError:
            return None
        return "local"

    async def unlock(self, call_id: str, token: str) -> None:
        lock = self._locks.get(call_id)
        if lock is not None and lock.locked():
            lock.release()

    async def active_calls(self) -> int:
        now = time.monotonic()
        return sum(1 for item in self._records.values() if item.expires >= now and not item.ended)

    async def generation(self) -> int:
        return self._generation

    async def bump_generation(self) -> int:
        self._generation += 1
        return self._generation

    async def ping(self) -> None:
        return None

    async def start(self) -> None:
        return None  # one process: a lock's owner cannot die without its call state

    async def close(self) -> None:
        self._records.clear()
        self._responses.clear()
        self._journal.clear()
